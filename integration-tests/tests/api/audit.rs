//! The audit suite: the chain holds, tampering is named, the database refuses edits, and
//! concurrent writers never fork the chain.

use std::sync::Arc;

use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::app::test_settings;
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_server::clock::SystemClock;
use pramaan_server::domain::{AuditEvent, Outcome};
use pramaan_server::state::{Core, InitMode};

struct Fixture {
    core: Core,
    db: TestDatabase,
    dir: tempfile::TempDir,
    /// Events the start itself recorded (the first signing keys, `keys.create`).
    baseline: u64,
}

fn fixture() -> Fixture {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let core = Core::init(test_settings(&db, dir.path()), Arc::new(SystemClock), InitMode::Serve).unwrap();
    println!("audit suite on {}", db.backend);
    let baseline = core
        .db
        .run_blocking(|c| pramaan_server::store::audit_events::page(c, &Default::default(), 1000))
        .unwrap()
        .len() as u64;
    Fixture { core, db, dir, baseline }
}

async fn append_events(core: &Core, n: usize) {
    for i in 0..n {
        core.audit
            .append(
                AuditEvent::new("cli:tester", "user.create", Outcome::Success)
                    .target(format!("user:u{i}"))
                    .details(serde_json::json!({"i": i, "roles": ["vaccinator"]})),
            )
            .await
            .unwrap();
    }
}

/// What an operator with raw database access would run to change a row, bypassing the
/// append-only triggers.
fn tamper(db: &TestDatabase, sql: &str) {
    let wrapped = if db.is_postgres() {
        format!("SET session_replication_role = replica; {sql}; SET session_replication_role = origin;")
    } else {
        format!("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; {sql};")
    };
    db.execute_raw(&wrapped).unwrap();
}

#[tokio::test]
async fn an_untouched_chain_verifies() {
    let f = fixture();
    append_events(&f.core, 20).await;
    let report = f.core.audit.verify().await.unwrap();
    assert_eq!(report.verified, f.baseline + 20);
    assert!(report.broken.is_none());
    assert_eq!(report.head_digest.len(), 64);
}

#[tokio::test]
async fn altering_one_event_is_named_by_audit_verify() {
    let f = fixture();
    append_events(&f.core, 10).await;
    tamper(&f.db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7");
    let report = f.core.audit.verify().await.unwrap();
    let broken = report.broken.expect("tampering must be found");
    assert_eq!(broken.seq, 7);
    assert!(broken.reason.contains("altered"), "{}", broken.reason);
    assert_eq!(report.verified, 6);

    let run = run_cli(&["audit", "verify"], &env_for(&f.db.url, f.dir.path()), "").await;
    assert!(!run.ok(), "audit verify must exit non-zero on a broken chain");
    assert!(run.stderr.contains("broken at event 7"), "{}", run.stderr);
}

#[tokio::test]
async fn changing_details_or_time_is_found_too() {
    let f = fixture();
    append_events(&f.core, 5).await;
    tamper(
        &f.db,
        "UPDATE audit_events SET details = '{\"i\":2,\"roles\":[\"national_admin\"]}' WHERE seq = 3",
    );
    assert_eq!(f.core.audit.verify().await.unwrap().broken.unwrap().seq, 3);
}

#[tokio::test]
async fn rewriting_stored_text_is_found_even_when_it_parses_to_the_same_value() {
    let f = fixture();
    append_events(&f.core, 4).await;
    // Same JSON value, different text: the digest covers the text as stored.
    tamper(
        &f.db,
        "UPDATE audit_events SET details = '{\"i\": 1, \"roles\": [\"vaccinator\"]}' WHERE seq = 2",
    );
    assert_eq!(f.core.audit.verify().await.unwrap().broken.unwrap().seq, 2);
}

#[tokio::test]
async fn an_outcome_rewritten_to_an_unknown_word_is_found() {
    let f = fixture();
    append_events(&f.core, 3).await;
    tamper(&f.db, "UPDATE audit_events SET outcome = 'whatever' WHERE seq = 1");
    assert_eq!(f.core.audit.verify().await.unwrap().broken.unwrap().seq, 1);
}

#[tokio::test]
async fn floats_in_details_verify() {
    let f = fixture();
    f.core
        .audit
        .append(
            AuditEvent::new("system", "test.float", Outcome::Success)
                .details(serde_json::json!({"x": 0.1, "y": 1e-7, "z": 123456.789})),
        )
        .await
        .unwrap();
    assert!(f.core.audit.verify().await.unwrap().broken.is_none());
}

#[tokio::test]
async fn deleting_an_event_from_the_middle_is_found() {
    let f = fixture();
    append_events(&f.core, 8).await;
    tamper(&f.db, "DELETE FROM audit_events WHERE seq = 4");
    let broken = f.core.audit.verify().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 4);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_audit_events() {
    let f = fixture();
    append_events(&f.core, 3).await;
    let update = f.db.execute_raw("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2");
    assert!(update.as_ref().is_err_and(|e| e.contains("append-only")), "{update:?}");
    let delete = f.db.execute_raw("DELETE FROM audit_events WHERE seq = 1");
    assert!(delete.as_ref().is_err_and(|e| e.contains("append-only")), "{delete:?}");
    assert!(f.core.audit.verify().await.unwrap().broken.is_none());
}

/// Two `Core`s with their own pools stand for two server instances on one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_on_two_instances_leave_one_intact_chain() {
    let f = fixture();
    let second =
        Core::init(test_settings(&f.db, f.dir.path()), Arc::new(SystemClock), InitMode::Serve).unwrap();
    let writers = 8;
    let per_writer = 500;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let audit = if w % 2 == 0 { f.core.audit.clone() } else { second.audit.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                audit
                    .append(
                        AuditEvent::new(format!("writer:{w}"), "test.append", Outcome::Success)
                            .details(serde_json::json!({"i": i})),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("audit chain on {}: {} appends in {:?}", f.db.backend, writers * per_writer, started.elapsed());
    let report = f.core.audit.verify().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.verified, f.baseline + (writers * per_writer) as u64);
    let all = f.core.audit.page(Default::default(), 10_000).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at), "times rise with seq");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_written_together_come_back_to_each_caller_in_order() {
    let f = fixture();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32 {
        let audit = f.core.audit.clone();
        tasks.spawn(async move {
            let events = (0..3)
                .map(|i| {
                    AuditEvent::new(format!("writer:{w}"), "test.batch", Outcome::Success)
                        .details(serde_json::json!({ "i": i }))
                })
                .collect();
            (w, audit.append_many(events).await.unwrap())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (w, records) = r.unwrap();
        // Each caller's events, in its order, one after another in the chain.
        assert_eq!(records.len(), 3);
        for (i, rec) in records.iter().enumerate() {
            assert_eq!(rec.actor, format!("writer:{w}"));
            assert_eq!(rec.details, format!("{{\"i\":{i}}}"));
        }
        assert!(records.windows(2).all(|p| p[1].seq == p[0].seq + 1 && p[1].prev_digest == p[0].digest));
    }
    let report = f.core.audit.verify().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.verified, f.baseline + 96);
}

#[tokio::test]
async fn export_writes_json_lines_in_order_and_is_itself_audited() {
    let f = fixture();
    append_events(&f.core, 3).await;
    let env = env_for(&f.db.url, f.dir.path());
    let run = run_cli(&["audit", "export"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    let lines: Vec<serde_json::Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let total = f.baseline as i64 + 3;
    assert_eq!(
        lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(lines[1]["prev_digest"], lines[0]["digest"]);
    let future = run_cli(&["audit", "export", "--since", "2999-01-01T00:00:00Z"], &env, "").await;
    assert!(future.ok() && future.stdout.is_empty(), "{}", future.stdout);
    let bad = run_cli(&["audit", "export", "--since", "yesterday"], &env, "").await;
    assert!(!bad.ok() && bad.stderr.contains("--since"), "{}", bad.stderr);
    let last = f.core.audit.page(Default::default(), 100).await.unwrap();
    assert_eq!(
        last.iter().filter(|r| r.action == "audit.export").count(),
        2,
        "each successful export is audited"
    );
}
