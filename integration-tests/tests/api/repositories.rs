//! The repository suite: every repository's contract, on whichever database this run uses.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::app::test_settings;
use pramaan_server::clock::{Clock, FixedClock};
use pramaan_server::domain::{
    AuthMethod, ClientCategory, ClientId, ClientRegistration, ClientStatus, ClientType, GrantType, NewUser,
    OrgPath, Phone, RedirectUri, RoleName, Scope, UserStatus, Username,
};
use pramaan_server::state::{Core, InitMode};
use pramaan_server::store::users::UserFilter;
use pramaan_server::store::{DbError, clients, meta, org_units, roles, users, write_transaction};

struct Fixture {
    core: Core,
    clock: FixedClock,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let clock = FixedClock::new(Utc::now());
    let core = Core::init(test_settings(&db, dir.path()), Arc::new(clock.clone()), InitMode::Serve).unwrap();
    println!("repository suite on {}", db.backend);
    Fixture { core, clock, _db: db, _dir: dir }
}

fn path(p: &str) -> OrgPath {
    OrgPath::parse(p).unwrap()
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        display_name: format!("User {name}"),
        phone: Some(Phone::parse("+919812345678").unwrap()),
        email: None,
        org_unit_id: None,
        password_hash: None,
        must_change_password: true,
    }
}

#[test]
fn org_units_form_a_tree_listed_by_subtree() {
    let f = fixture();
    let now = f.clock.now();
    f.core
        .db
        .run_blocking(|c| {
            org_units::create(c, &path("national"), "National", "national", now)?;
            org_units::create(c, &path("national/ka"), "Karnataka", "state", now)?;
            org_units::create(c, &path("national/ka/blr"), "Bengaluru", "district", now)?;
            org_units::create(c, &path("national/kar"), "Not Karnataka", "state", now)?;
            let ka = org_units::find_by_path(c, &path("national/ka"))?.unwrap();
            let blr = org_units::find_by_path(c, &path("national/ka/blr"))?.unwrap();
            assert_eq!(blr.parent_id.as_ref(), Some(&ka.id));
            let sub: Vec<String> =
                org_units::list(c, Some(&path("national/ka")))?.iter().map(|u| u.path.to_string()).collect();
            assert_eq!(sub, ["national/ka", "national/ka/blr"], "prefix must respect segment boundaries");
            assert_eq!(org_units::list(c, None)?.len(), 4);
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_org_unit_needs_its_parent_and_a_free_path() {
    let f = fixture();
    let now = f.clock.now();
    f.core
        .db
        .run_blocking(|c| {
            let err = org_units::create(c, &path("national/ka"), "Karnataka", "state", now).unwrap_err();
            assert!(matches!(&err, DbError::Conflict(m) if m.contains("'national' does not exist")), "{err}");
            org_units::create(c, &path("national"), "National", "national", now)?;
            let err = org_units::create(c, &path("national"), "Again", "national", now).unwrap_err();
            assert!(matches!(err, DbError::Conflict(_)));
            assert_eq!(org_units::list(c, None)?.len(), 1);
            Ok(())
        })
        .unwrap();
}

#[test]
fn users_round_trip_with_exact_timestamps_and_unique_usernames() {
    let f = fixture();
    let now = f.clock.now();
    f.core
        .db
        .run_blocking(|c| {
            let created = users::insert(c, &new_user("asha"), now)?;
            assert_eq!(created.created_at, now, "times must round-trip to the microsecond");
            // A new account cuts off nothing: its cut-off is the start of its first second.
            assert_eq!(created.tokens_valid_after.timestamp(), now.timestamp());
            assert_eq!(created.tokens_valid_after.timestamp_subsec_nanos(), 0);
            assert_eq!(created.status, UserStatus::Active);
            assert!(!created.has_password && created.must_change_password);
            assert_eq!(users::find(c, &created.id)?.unwrap(), created);
            assert_eq!(users::find_by_username(c, &Username::parse("ASHA").unwrap())?.unwrap(), created);
            let err = users::insert(c, &new_user("asha"), now).unwrap_err();
            assert!(matches!(err, DbError::Conflict(_)), "{err:?}");
            assert_eq!(users::count(c)?, 1);
            Ok(())
        })
        .unwrap();
}

#[test]
fn disabling_kills_old_tokens_and_enabling_revives_none_of_them() {
    let f = fixture();
    let t0 = f.clock.now();
    let user = f.core.db.run_blocking(|c| users::insert(c, &new_user("ravi"), t0)).unwrap();
    f.clock.advance(TimeDelta::minutes(5));
    let t1 = f.clock.now();
    let disabled =
        f.core.db.run_blocking(|c| users::set_status(c, &user.id, UserStatus::Disabled, t1)).unwrap();
    assert_eq!(disabled.status, UserStatus::Disabled);
    assert_eq!(disabled.tokens_valid_after, t1);
    f.clock.advance(TimeDelta::minutes(5));
    let t2 = f.clock.now();
    let enabled = f.core.db.run_blocking(|c| users::set_status(c, &user.id, UserStatus::Active, t2)).unwrap();
    assert_eq!(enabled.status, UserStatus::Active);
    assert_eq!(enabled.tokens_valid_after, t2, "enabling moves the cut-off again: nothing old revives");
    let missing = pramaan_server::domain::UserId::generate();
    assert!(matches!(
        f.core.db.run_blocking(|c| users::set_status(c, &missing, UserStatus::Active, t2)),
        Err(DbError::NotFound)
    ));
}

#[test]
fn a_password_change_clears_the_must_change_flag_but_a_rehash_does_not() {
    let f = fixture();
    let now = f.clock.now();
    f.core
        .db
        .run_blocking(|c| {
            let u = users::insert(c, &new_user("meena"), now)?;
            users::set_password_hash(c, &u.id, "$argon2id$old", false, now)?;
            let (after_rehash, hash) = users::find_with_hash(c, &u.username)?.unwrap();
            assert_eq!(hash.as_deref(), Some("$argon2id$old"));
            assert!(after_rehash.must_change_password);
            assert_eq!(after_rehash.password_changed_at, None);
            users::set_password_hash(c, &u.id, "$argon2id$new", true, now)?;
            let (after_change, _) = users::find_with_hash(c, &u.username)?.unwrap();
            assert!(!after_change.must_change_password);
            assert_eq!(after_change.password_changed_at, Some(now));
            Ok(())
        })
        .unwrap();
}

#[test]
fn user_lists_filter_and_page_by_username() {
    let f = fixture();
    let now = f.clock.now();
    f.core
        .db
        .run_blocking(|c| {
            let ka = org_units::create(c, &path("ka"), "Karnataka", "state", now)?;
            let blr = org_units::create(c, &path("ka/blr"), "Bengaluru", "district", now)?;
            let kar = org_units::create(c, &path("kar"), "Not inside ka", "state", now)?;
            let homes = [Some(&ka), None, Some(&blr), None, Some(&kar)];
            for (name, home) in ["anil", "bina", "chitra", "dev_k", "devika"].iter().zip(homes) {
                let mut u = new_user(name);
                u.org_unit_id = home.map(|o| o.id.clone());
                users::insert(c, &u, now)?;
            }
            let first = users::list(c, &UserFilter::default(), 2)?;
            let names: Vec<&str> = first.iter().map(|u| u.username.as_str()).collect();
            assert_eq!(names, ["anil", "bina"]);
            let next = users::list(
                c,
                &UserFilter { after_username: Some("bina".into()), ..Default::default() },
                10,
            )?;
            assert_eq!(next.len(), 3);
            let in_ka =
                users::list(c, &UserFilter { org_subtree: Some(path("ka")), ..Default::default() }, 10)?;
            assert_eq!(
                in_ka.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
                ["anil", "chitra"],
                "the subtree holds ka and ka/blr, not kar"
            );
            // '_' is a LIKE wildcard: a search for "dev_" must not match "devika".
            let found = users::list(c, &UserFilter { text: Some("dev_".into()), ..Default::default() }, 10)?;
            assert_eq!(found.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["dev_k"]);
            let by_name =
                users::list(c, &UserFilter { text: Some("USER CHI".into()), ..Default::default() }, 10)?;
            assert_eq!(by_name.len(), 1);
            Ok(())
        })
        .unwrap();
}

#[test]
fn roles_are_seeded_and_granting_twice_changes_nothing() {
    let f = fixture();
    let now = f.clock.now();
    f.core
        .db
        .run_blocking(|c| {
            let all: Vec<String> = roles::list(c)?.into_iter().map(|(r, _)| r.to_string()).collect();
            for expected in [
                "vaccinator",
                "verifier",
                "facility_admin",
                "district_admin",
                "state_admin",
                "national_admin",
                "auditor",
                "helpdesk",
            ] {
                assert!(all.contains(&expected.to_owned()), "{expected} missing from {all:?}");
            }
            let u = users::insert(c, &new_user("kiran"), now)?;
            let vacc = RoleName::parse("vaccinator").unwrap();
            roles::assign(c, &u.id, &vacc, now)?;
            roles::assign(c, &u.id, &vacc, now)?;
            roles::assign(c, &u.id, &RoleName::parse("auditor").unwrap(), now)?;
            assert_eq!(
                roles::roles_of(c, &u.id)?.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                ["auditor", "vaccinator"]
            );
            assert_eq!(roles::holders(c, &vacc)?, 1);
            let err = roles::assign(c, &u.id, &RoleName::parse("no_such_role").unwrap(), now).unwrap_err();
            assert!(matches!(err, DbError::Conflict(_)), "foreign keys must be on: {err:?}");
            Ok(())
        })
        .unwrap();
}

fn registration(category: ClientCategory) -> ClientRegistration {
    ClientRegistration {
        name: "Partner".into(),
        category,
        client_type: ClientType::Confidential,
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: Scope::parse_list("registry.read").unwrap(),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        jwks: None,
        access_token_ttl_secs: 300,
        refresh_token_ttl_secs: 28_800,
        first_party: false,
        can_introspect: false,
    }
}

#[test]
fn clients_round_trip_with_every_registration_field() {
    let f = fixture();
    let now = f.clock.now();
    let mut reg = registration(ClientCategory::Government);
    reg.client_type = ClientType::Public;
    reg.token_endpoint_auth_method = AuthMethod::None;
    reg.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    reg.redirect_uris = vec![RedirectUri::parse("http://127.0.0.1:8765/cb").unwrap()];
    reg.post_logout_redirect_uris = vec![RedirectUri::parse("https://app.example.org/bye").unwrap()];
    reg.first_party = true;
    let id = ClientId::from_string("spa".into());
    let stored = f.core.db.run_blocking(|c| clients::insert(c, &id, &reg, None, now)).unwrap();
    assert_eq!(stored.registration, reg);
    assert!(!stored.has_secret);
    let (found, digest) = f.core.db.run_blocking(|c| clients::find_with_secret(c, &id)).unwrap().unwrap();
    assert_eq!((found, digest), (stored, None));
    assert!(matches!(
        f.core.db.run_blocking(|c| clients::insert(c, &id, &reg, None, now)),
        Err(DbError::Conflict(_))
    ));
    f.core.db.run_blocking(|c| clients::delete(c, &id)).unwrap();
    assert!(matches!(f.core.db.run_blocking(|c| clients::delete(c, &id)), Err(DbError::NotFound)));
}

#[test]
fn suspending_and_resuming_a_client_both_move_its_token_cutoff() {
    let f = fixture();
    let t0 = f.clock.now();
    let id = ClientId::from_string("partner-1".into());
    let reg = registration(ClientCategory::Private);
    f.core.db.run_blocking(|c| clients::insert(c, &id, &reg, Some("digest"), t0)).unwrap();
    let gov = registration(ClientCategory::Government);
    f.core
        .db
        .run_blocking(|c| clients::insert(c, &ClientId::from_string("gov-1".into()), &gov, Some("d2"), t0))
        .unwrap();
    f.clock.advance(TimeDelta::seconds(30));
    let t1 = f.clock.now();
    let s = f.core.db.run_blocking(|c| clients::set_status(c, &id, ClientStatus::Suspended, t1)).unwrap();
    assert_eq!((s.status, s.tokens_valid_after), (ClientStatus::Suspended, t1));
    f.clock.advance(TimeDelta::seconds(30));
    let r =
        f.core.db.run_blocking(|c| clients::set_status(c, &id, ClientStatus::Active, f.clock.now())).unwrap();
    assert_eq!(r.status, ClientStatus::Active);
    assert!(r.tokens_valid_after > t1, "resuming moves the cut-off again: nothing old revives");
    let private = f.core.db.run_blocking(|c| clients::list(c, Some(ClientCategory::Private))).unwrap();
    assert_eq!(private.len(), 1);
    let t2 = f.clock.now();
    let rotated = f.core.db.run_blocking(|c| clients::set_secret_digest(c, &id, "digest2", t2)).unwrap();
    assert_eq!(rotated.secret_rotated_at, Some(t2));
    let (_, digest) = f.core.db.run_blocking(|c| clients::find_with_secret(c, &id)).unwrap().unwrap();
    assert_eq!(digest.as_deref(), Some("digest2"));
}

#[test]
fn a_failed_write_transaction_leaves_nothing_behind() {
    let f = fixture();
    let now = f.clock.now();
    let result: Result<(), DbError> = f.core.db.run_blocking(|c| {
        write_transaction(c, |c| {
            users::insert(c, &new_user("ghost"), now)?;
            // A nested step that fails rolls back only itself (a savepoint)...
            let inner: Result<(), DbError> = write_transaction(c, |c| {
                users::insert(c, &new_user("inner"), now)?;
                Err(DbError::Conflict("stop".into()))
            });
            assert!(inner.is_err());
            assert!(users::find_by_username(c, &Username::parse("inner").unwrap())?.is_none());
            assert!(users::find_by_username(c, &Username::parse("ghost").unwrap())?.is_some());
            // ...and a failure of the outer one rolls back everything.
            Err(DbError::Conflict("abort".into()))
        })
    });
    assert!(result.is_err());
    assert_eq!(f.core.db.run_blocking(users::count).unwrap(), 0);
    // The connection went back to the pool usable, not stuck in a transaction.
    for _ in 0..10 {
        f.core.db.run_blocking(|c| users::insert(c, &new_user(&format!("u{}", uuid_like())), now)).unwrap();
    }
}

fn uuid_like() -> String {
    pramaan_server::crypto::random_token(6).to_lowercase().replace(['-', '_'], "x")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_epoch_bumps_are_never_lost() {
    let f = fixture();
    let start = f.core.db.run(meta::revocation_epoch).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let db = f.core.db.clone();
        tasks.push(tokio::spawn(async move {
            db.run(|c| write_transaction(c, meta::bump_revocation_epoch)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(f.core.db.run(meta::revocation_epoch).await.unwrap(), start + 16);
}
