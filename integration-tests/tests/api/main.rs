//! The one integration-test binary: it only declares modules. Every suite runs against the
//! backends named by `PRAMAAN_TEST_DATABASE_URL` / `PRAMAAN_TEST_REDIS_URL` (see
//! `pramaan_integration_tests`), so `.ci/run` runs it once embedded and once on real services.

mod account;
mod admin_api;
mod admin_resources;
mod audit;
mod backends;
mod browser_login;
mod campaigns;
mod cli;
mod client_credentials;
mod clients;
mod code_flow;
mod discovery;
mod guards_admin;
mod guards_tokens;
mod health;
mod hostile;
mod import;
mod introspection;
mod keys;
mod kill_switch;
mod login_hints;
mod mail;
mod migrations;
mod outbox;
mod password_login;
mod password_reset;
mod policies;
mod policy_reload;
mod private_key_jwt;
mod repositories;
mod scope_policy;
mod session_store;
mod status_lists;
mod tls;
mod two_factor;
mod user_tokens;
