-- Password resets and reset campaigns (issue 6). The same tables on both backends.

-- A campaign: who launched it, why, for whom (the audience filter as JSON), and its state:
-- launching (members being flagged, batch by batch) → running → completed (everyone set a new
-- password) | cancelled (no further mail; nothing revoked comes back). kind: breach |
-- onboarding. The counters are kept in the transactions that move them, so progress is read
-- without counting a million rows.
CREATE TABLE reset_campaigns (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    audience     TEXT NOT NULL,
    org_unit_id  TEXT REFERENCES org_units (id),
    launched_by  TEXT NOT NULL,
    launched_at  TIMESTAMP NOT NULL,
    targeted     BIGINT NOT NULL,
    completed    BIGINT NOT NULL,
    milestone    INTEGER NOT NULL,
    finished_at  TIMESTAMP,
    cancelled_by TEXT
);

-- The lists of an audience (roles, usernames), one row per value, so the audience is one
-- fixed query however long its lists are.
CREATE TABLE campaign_audience (
    campaign_id TEXT NOT NULL REFERENCES reset_campaigns (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (campaign_id, kind, value)
);

-- Who a campaign targeted, and when each of them set a new password.
CREATE TABLE campaign_members (
    campaign_id  TEXT NOT NULL REFERENCES reset_campaigns (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    completed_at TIMESTAMP,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_members_user ON campaign_members (user_id);

-- A reset link or code: only its keyed digest, single use, until expires_at. Made when its
-- mail or text message is sent (so the link's half hour starts then, and no link sits in the
-- outbox). failed_tries counts wrong second-factor codes typed with it; at the limit it is
-- burnt.
CREATE TABLE password_resets (
    id           TEXT PRIMARY KEY,
    digest       TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    campaign_id  TEXT REFERENCES reset_campaigns (id) ON DELETE SET NULL,
    channel      TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    used_at      TIMESTAMP,
    failed_tries INTEGER NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Mail about an account (a reset link, a campaign's) is written without its body: the worker
-- renders it, and makes the link, when it sends. priority 0 (a person waiting) goes before 1
-- (a campaign's million).
ALTER TABLE outbox ADD COLUMN campaign_id TEXT;
ALTER TABLE outbox ADD COLUMN user_id TEXT;
ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (state, priority, next_attempt_at, id);
CREATE INDEX outbox_campaign ON outbox (campaign_id, state);
