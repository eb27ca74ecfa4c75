//! The password step's rules, on the backends of this run.

use std::sync::Arc;

use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::app::test_settings;
use pramaan_server::clock::SystemClock;
use pramaan_server::crypto::{PasswordHasher, PasswordParams};
use pramaan_server::domain::{NewUser, UserStatus, Username};
use pramaan_server::login::{PasswordCheck, check_password};
use pramaan_server::state::{Core, InitMode};
use pramaan_server::store::users;
use secrecy::SecretString;

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

async fn core_with_user(hash_with: PasswordParams) -> (Core, TestDatabase, tempfile::TempDir) {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let core = Core::init(test_settings(&db, dir.path()), Arc::new(SystemClock), InitMode::Serve).unwrap();
    let hash = PasswordHasher::new(hash_with, 1).unwrap().hash(pw("correct horse battery")).await.unwrap();
    let new = NewUser {
        username: Username::parse("asha").unwrap(),
        display_name: "Asha".into(),
        phone: None,
        email: None,
        org_unit_id: None,
        password_hash: Some(hash),
        must_change_password: false,
    };
    core.db.run(move |c| users::insert(c, &new, chrono::Utc::now())).await.unwrap();
    (core, db, dir)
}

async fn stored_hash(core: &Core) -> String {
    core.db
        .run(|c| users::find_with_hash(c, &Username::parse("asha").unwrap()))
        .await
        .unwrap()
        .unwrap()
        .1
        .unwrap()
}

async fn password_changed_at(core: &Core) -> Option<chrono::DateTime<chrono::Utc>> {
    core.db
        .run(|c| users::find_by_username(c, &Username::parse("asha").unwrap()))
        .await
        .unwrap()
        .unwrap()
        .password_changed_at
}

#[tokio::test]
async fn the_right_password_passes_and_every_failure_looks_the_same() {
    let (core, _db, _dir) = core_with_user(PasswordParams::default()).await;
    assert!(
        matches!(check_password(&core, "Asha", pw("correct horse battery")).await.unwrap(), PasswordCheck::Valid(u) if u.username.as_str() == "asha")
    );
    for (user, password) in
        [("asha", "wrong"), ("nobody", "correct horse battery"), ("x", "anything"), ("", "")]
    {
        assert!(
            matches!(check_password(&core, user, pw(password)).await.unwrap(), PasswordCheck::Invalid),
            "{user}/{password}"
        );
    }
}

#[tokio::test]
async fn a_disabled_account_is_refused_even_with_the_right_password() {
    let (core, _db, _dir) = core_with_user(PasswordParams::default()).await;
    let u = core
        .db
        .run(|c| users::find_by_username(c, &Username::parse("asha").unwrap()))
        .await
        .unwrap()
        .unwrap();
    core.db
        .run(move |c| users::set_status(c, &u.id, UserStatus::Disabled, chrono::Utc::now()))
        .await
        .unwrap();
    assert!(matches!(
        check_password(&core, "asha", pw("correct horse battery")).await.unwrap(),
        PasswordCheck::Invalid
    ));
}

#[tokio::test]
async fn a_hash_made_with_old_parameters_is_upgraded_at_a_successful_login_only() {
    let old = PasswordParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
    let (core, _db, _dir) = core_with_user(old).await;
    let before = stored_hash(&core).await;
    assert!(before.contains("m=1024,t=1,p=1"), "{before}");
    let changed_before = password_changed_at(&core).await;
    assert!(changed_before.is_some());
    assert!(matches!(check_password(&core, "asha", pw("wrong")).await.unwrap(), PasswordCheck::Invalid));
    assert_eq!(stored_hash(&core).await, before, "a failed login changes nothing");
    assert!(matches!(
        check_password(&core, "asha", pw("correct horse battery")).await.unwrap(),
        PasswordCheck::Valid(_)
    ));
    let after = stored_hash(&core).await;
    assert!(after.contains("m=19456,t=2,p=1"), "{after}");
    assert_eq!(password_changed_at(&core).await, changed_before, "a rehash is not a password change");
    assert!(matches!(
        check_password(&core, "asha", pw("correct horse battery")).await.unwrap(),
        PasswordCheck::Valid(_)
    ));
}
