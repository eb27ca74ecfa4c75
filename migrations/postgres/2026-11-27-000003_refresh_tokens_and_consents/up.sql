-- Refresh tokens and remembered consents (OIDC browser flow). Identical on both backends.

-- A refresh token is stored only as a keyed digest. Every rotation inserts a new row in the
-- same family and marks the old one used; presenting a used token again revokes the whole
-- family (OAuth 2.0 Security BCP §4.14.2). access_jti/access_exp name the access token issued
-- with the row, so revoking the family revokes those too.
CREATE TABLE refresh_tokens (
    digest      TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid         TEXT NOT NULL,
    scope       TEXT NOT NULL,
    nonce       TEXT,
    auth_time   TIMESTAMP NOT NULL,
    amr         TEXT NOT NULL,
    acr         TEXT NOT NULL,
    issued_at   TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    revoked_at  TIMESTAMP,
    access_jti  TEXT NOT NULL,
    access_exp  TIMESTAMP NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);

-- What a user agreed a (third-party) client may receive; the consent page is skipped when
-- the requested scopes are all in here.
CREATE TABLE consents (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    granted_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
