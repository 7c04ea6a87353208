-- Issue 14: a name is something a person can read. The 1–100 character checks of 0001 let a
-- name of only spaces or newlines through; maim_db refuses those before SQL (ids.check_name),
-- and these checks hold the same line for whatever writes without it (psql, a service's own
-- SQL): at least one character that is not white space, and no control characters.
--
-- NOT VALID: rows written before this migration are not checked (a deployment holding such a
-- name still migrates); every row inserted or updated from now on is. `maimdb audit` does not
-- need them validated; `alter table … validate constraint …` does it once old names are fixed.
alter table users
    add constraint users_username_check1
        check (username ~ '[^[:space:]]' and username !~ '[\x01-\x1f\x7f-\x9f]') not valid;

alter table tenants
    add constraint tenants_tenant_name_check1
        check (tenant_name ~ '[^[:space:]]' and tenant_name !~ '[\x01-\x1f\x7f-\x9f]') not valid;

alter table agents
    add constraint agents_name_check1
        check (name ~ '[^[:space:]]' and name !~ '[\x01-\x1f\x7f-\x9f]') not valid;

alter table api_keys
    add constraint api_keys_name_check1
        check (name ~ '[^[:space:]]' and name !~ '[\x01-\x1f\x7f-\x9f]') not valid;
