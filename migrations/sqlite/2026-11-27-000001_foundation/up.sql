-- Foundation schema. Kept column-for-column identical to migrations/sqlite (a test checks
-- that the folder names match; the repository suites run on both). Portable types only:
-- ids and JSON as TEXT, times as TIMESTAMP holding UTC with microsecond precision.

-- Facts about this deployment the server checks at every start: fingerprints of the keys
-- the data was written with (a wrong key is refused instead of silently forking the audit
-- chain or sealing secrets nobody can open), and whether the first admin was created.
CREATE TABLE server_meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE org_units (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES org_units (id),
    path        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX org_units_parent ON org_units (parent_id);

CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    username              TEXT NOT NULL UNIQUE,
    display_name          TEXT NOT NULL,
    phone                 TEXT,
    email                 TEXT,
    org_unit_id           TEXT REFERENCES org_units (id),
    status                TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    password_hash         TEXT,
    password_changed_at   TIMESTAMP,
    must_change_password  BOOLEAN NOT NULL,
    tokens_valid_after    TIMESTAMP NOT NULL,
    failed_logins         INTEGER NOT NULL DEFAULT 0,
    locked_until          TIMESTAMP,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL
);
CREATE INDEX users_org_unit ON users (org_unit_id);
CREATE INDEX users_password_changed ON users (password_changed_at);

CREATE TABLE roles (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL
);
INSERT INTO roles (name, description) VALUES
    ('vaccinator',     'Records vaccinations at a facility'),
    ('verifier',       'Verifies beneficiaries and certificates'),
    ('facility_admin', 'Administers the staff of one facility'),
    ('district_admin', 'Administers the accounts of one district'),
    ('state_admin',    'Administers the accounts of one state'),
    ('national_admin', 'Administers the whole programme'),
    ('auditor',        'Reads the audit trail'),
    ('helpdesk',       'Helps staff with logins and factors');

CREATE TABLE user_roles (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_name   TEXT NOT NULL REFERENCES roles (name),
    granted_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, role_name)
);
CREATE INDEX user_roles_role ON user_roles (role_name);

CREATE TABLE clients (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    category            TEXT NOT NULL CHECK (category IN ('government', 'private', 'internal')),
    status              TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    tokens_valid_after  TIMESTAMP NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX clients_category ON clients (category, status);

-- The audit trail: a hash chain. seq is assigned by the appender under a lock, so it is
-- gap-free and the chain never forks; digest = HMAC-SHA256(audit key, canonical event ‖ prev).
CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY,
    occurred_at  TIMESTAMP NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT,
    outcome      TEXT NOT NULL,
    client_ip    TEXT,
    user_agent   TEXT,
    details      TEXT NOT NULL,
    prev_digest  TEXT NOT NULL,
    digest       TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_target ON audit_events (target, seq);

-- Append-only: the application never updates or deletes audit rows, so the database refuses to.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;
