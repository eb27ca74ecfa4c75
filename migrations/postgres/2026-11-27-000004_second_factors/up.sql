-- Second factors (issue 4). The same tables on both backends.

-- A user's authenticator app (RFC 6238). The secret is sealed under the key-encryption key
-- (AES-256-GCM, bound to the user id), never stored or shown in the clear after enrollment.
-- last_step is the newest time step accepted: a code of that step or an older one is a
-- replay and refused. One conditional UPDATE advances it, so of two parallel uses of one
-- code exactly one wins.
CREATE TABLE totp_factors (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    last_step    BIGINT NOT NULL,
    enrolled_at  TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);

-- Single-use recovery codes, made at TOTP enrollment and shown once; only keyed digests are
-- kept. A code is spent by setting used_at, once.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    PRIMARY KEY (user_id, digest)
);
