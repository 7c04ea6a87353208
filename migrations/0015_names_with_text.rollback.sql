alter table api_keys drop constraint api_keys_name_check1;
alter table agents drop constraint agents_name_check1;
alter table tenants drop constraint tenants_tenant_name_check1;
alter table users drop constraint users_username_check1;
