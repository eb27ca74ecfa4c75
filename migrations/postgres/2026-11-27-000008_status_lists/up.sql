-- Token status lists (issue 7). The same tables on both backends.

-- Every access token carries an index in its client's status list (draft-ietf-oauth-status-
-- list). Indexes are handed out in blocks: an instance takes block `next_block` of the client
-- (one upsert here per block, never a write per client-credentials token) and numbers its
-- tokens from it. List n of a client holds blocks n * blocks_per_list onwards. The counter is
-- never reset, so an index is never given twice.
CREATE TABLE status_list_counters (
    client_id  TEXT PRIMARY KEY,
    next_block BIGINT NOT NULL
);

-- When each block was taken. An instance stops using a block once its client's
-- tokens_valid_after moves past it (a suspension, a resume), so every token of a block taken
-- before the cut-off was issued before it: the list sets the whole block. Old blocks (their
-- tokens long expired) are deleted.
CREATE TABLE status_list_blocks (
    client_id    TEXT NOT NULL,
    block_no     BIGINT NOT NULL,
    allocated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, block_no)
);

-- Tokens whose status depends on more than their client: a person's tokens (their account may
-- be disabled or cut off by a campaign: user_id, auth_time; their login may end: sid, by a
-- logout, or at session_ends), and revoked tokens (revoked). A row lives until its token
-- expires.
CREATE TABLE status_list_entries (
    client_id    TEXT NOT NULL,
    list_no      BIGINT NOT NULL,
    idx          BIGINT NOT NULL,
    jti          TEXT NOT NULL,
    user_id      TEXT,
    auth_time    TIMESTAMP,
    sid          TEXT,
    session_ends TIMESTAMP,
    revoked      BOOLEAN NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, list_no, idx)
);
CREATE INDEX status_list_entries_jti ON status_list_entries (jti);
CREATE INDEX status_list_entries_sid ON status_list_entries (sid);
CREATE INDEX status_list_entries_expiry ON status_list_entries (client_id, expires_at);
