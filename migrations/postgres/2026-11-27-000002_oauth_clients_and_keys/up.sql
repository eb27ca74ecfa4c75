-- OAuth client registration (RFC 7591 field names where they exist) and signing keys.
-- Identical on both backends.

ALTER TABLE clients ADD COLUMN client_type TEXT NOT NULL DEFAULT 'confidential'
    CHECK (client_type IN ('confidential', 'public'));
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic'
    CHECK (token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'));
-- Keyed HMAC-SHA256 digest of the secret; the secret itself is shown once and never stored.
ALTER TABLE clients ADD COLUMN secret_digest TEXT;
ALTER TABLE clients ADD COLUMN secret_rotated_at TIMESTAMP;
-- Space-separated lists, as in OAuth's own wire format.
ALTER TABLE clients ADD COLUMN grant_types TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
-- JSON arrays of exact URIs.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
-- A JWK Set (JSON) for private_key_jwt clients.
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN access_token_ttl_secs INTEGER NOT NULL DEFAULT 300;
ALTER TABLE clients ADD COLUMN refresh_token_ttl_secs INTEGER NOT NULL DEFAULT 28800;
-- First-party clients skip the consent page.
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT FALSE;
-- May call the introspection endpoint (the registry).
ALTER TABLE clients ADD COLUMN can_introspect BOOLEAN NOT NULL DEFAULT FALSE;

-- Token signing keys. The private key is sealed under the key-encryption key. A key is
-- published in the JWKS from created_at, signs from signs_from (pre-publication lets caches
-- learn it first), stops signing at retired_at, and leaves the JWKS at unpublish_at, after
-- every token it signed has expired.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    alg           TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256', 'EdDSA')),
    private_key   TEXT NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    signs_from    TIMESTAMP NOT NULL,
    retired_at    TIMESTAMP,
    unpublish_at  TIMESTAMP
);
CREATE INDEX signing_keys_alg ON signing_keys (alg, signs_from);
