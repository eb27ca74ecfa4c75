-- Outgoing mail (issue 6). The same table on both backends.

-- One row per message, written in the transaction of the change that causes it; a worker
-- sends it. state: pending → sending (claimed: claimed_by until claimed_until, committed
-- before any byte goes to the mail server) → sent | failed; a row left in sending past its
-- lease (a worker killed between the server's acceptance and the mark) becomes unconfirmed
-- and is never sent again. The row id is the message's Message-ID.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_by      TEXT,
    claimed_until   TIMESTAMP,
    last_error      TEXT,
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
