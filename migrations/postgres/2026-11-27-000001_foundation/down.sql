DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE clients;
DROP TABLE user_roles;
DROP TABLE roles;
DROP TABLE users;
DROP TABLE org_units;
DROP TABLE server_meta;
