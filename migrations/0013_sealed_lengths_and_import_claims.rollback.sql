drop table import_claims;

alter table api_provider_configs
    drop constraint api_provider_configs_base_url_check,
    add constraint api_provider_configs_base_url_check check (char_length(base_url) <= 500),
    drop constraint api_provider_configs_api_key_check,
    add constraint api_provider_configs_api_key_check check (char_length(api_key) <= 500);
