DROP TABLE signing_keys;
ALTER TABLE clients DROP COLUMN can_introspect;
ALTER TABLE clients DROP COLUMN first_party;
ALTER TABLE clients DROP COLUMN refresh_token_ttl_secs;
ALTER TABLE clients DROP COLUMN access_token_ttl_secs;
ALTER TABLE clients DROP COLUMN jwks;
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
ALTER TABLE clients DROP COLUMN redirect_uris;
ALTER TABLE clients DROP COLUMN scopes;
ALTER TABLE clients DROP COLUMN grant_types;
ALTER TABLE clients DROP COLUMN secret_rotated_at;
ALTER TABLE clients DROP COLUMN secret_digest;
ALTER TABLE clients DROP COLUMN token_endpoint_auth_method;
ALTER TABLE clients DROP COLUMN client_type;
-- Note: SQLite refuses DROP COLUMN for a column named in a CHECK constraint (client_type,
-- token_endpoint_auth_method); rolling this migration back on SQLite means restoring a backup.
