//! The reset-campaign benchmark (issue 6): creates N users (default 1,000,000) with email
//! addresses in 100 districts, launches a campaign over all of them through
//! `campaigns::launch` (the code path of the API and the CLI), checks every one is flagged
//! and cut off, then measures the outbox drain rate against the tests' SMTP sink.
//!
//! Backend as in the tests: PostgreSQL when `PRAMAAN_TEST_DATABASE_URL` is set, else SQLite.
//! Run with a release build: `bench/campaign.sh` (both backends).
//!
//!   campaign_bench [USERS] [DRAIN_SECONDS]

use std::sync::Arc;
use std::time::Instant;

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Timestamp};
use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::app::test_settings;
use pramaan_integration_tests::smtp_sink::{SmtpSink, smtp_settings};
use pramaan_server::campaigns::{self, LaunchRequest, Launched};
use pramaan_server::clock::SystemClock;
use pramaan_server::mail::outbox::OutboxWorker;
use pramaan_server::mail::{Mailer, SmtpMailer};
use pramaan_server::state::{Core, InitMode};
use pramaan_server::store::campaigns::{AudienceFilter, CampaignKind};
use pramaan_server::store::{AnyConnection, DbError};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(c: &mut AnyConnection, sql: &str, at: chrono::NaiveDateTime) -> Result<i64, DbError> {
    let rows: Vec<Count> = match c {
        AnyConnection::Postgresql(c) => {
            diesel::sql_query(sql.replace('?', "$1")).bind::<Timestamp, _>(at).load(c)?
        }
        AnyConnection::Sqlite(c) => diesel::sql_query(sql).bind::<Timestamp, _>(at).load(c)?,
    };
    Ok(rows.first().map_or(0, |r| r.n))
}

/// 1 country, 10 states, 100 districts; `n` users spread over the districts.
fn populate(c: &mut AnyConnection, n: i64, at: chrono::NaiveDateTime) -> Result<(), DbError> {
    let mut unit_rows = vec![("o-in".to_owned(), None, "in".to_owned(), "national")];
    for s in 0..10 {
        unit_rows.push((format!("o-s{s}"), Some("o-in".to_owned()), format!("in/s{s}"), "state"));
        for d in 0..10 {
            unit_rows.push((
                format!("o-s{s}-d{d}"),
                Some(format!("o-s{s}")),
                format!("in/s{s}/d{d}"),
                "district",
            ));
        }
    }
    for (id, parent, path, kind) in unit_rows {
        let parent = parent.map_or("NULL".to_owned(), |p| format!("'{p}'"));
        let sql = format!(
            "INSERT INTO org_units (id, parent_id, path, name, kind, created_at) \
             VALUES ('{id}', {parent}, '{path}', '{path}', '{kind}', ?)"
        );
        match c {
            AnyConnection::Postgresql(c) => {
                diesel::sql_query(sql.replace('?', "$1")).bind::<Timestamp, _>(at).execute(c)?;
            }
            AnyConnection::Sqlite(c) => {
                diesel::sql_query(sql).bind::<Timestamp, _>(at).execute(c)?;
            }
        }
    }
    let insert = "INSERT INTO users (id, username, display_name, phone, email, org_unit_id, status, \
                  password_hash, password_changed_at, must_change_password, tokens_valid_after, \
                  failed_logins, locked_until, created_at, updated_at) ";
    match c {
        AnyConnection::Postgresql(c) => {
            diesel::sql_query(format!(
                "{insert} SELECT 'u' || lpad(g::text, 8, '0'), 'user' || g, 'User ' || g, NULL, \
                 'user' || g || '@example.org', 'o-s' || (g % 10) || '-d' || ((g / 10) % 10), 'active', \
                 NULL, $1, FALSE, $1, 0, NULL, $1, $1 FROM generate_series(0, $2 - 1) AS g"
            ))
            .bind::<Timestamp, _>(at)
            .bind::<BigInt, _>(n)
            .execute(c)?;
            diesel::sql_query("ANALYZE").execute(c)?;
        }
        AnyConnection::Sqlite(c) => {
            diesel::sql_query(format!(
                "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < ?2) \
                 {insert} SELECT printf('u%08d', g), 'user' || g, 'User ' || g, NULL, \
                 'user' || g || '@example.org', 'o-s' || (g % 10) || '-d' || ((g / 10) % 10), 'active', \
                 NULL, ?1, FALSE, ?1, 0, NULL, ?1, ?1 FROM s"
            ))
            .bind::<Timestamp, _>(at)
            .bind::<BigInt, _>(n)
            .execute(c)?;
            diesel::sql_query("ANALYZE").execute(c)?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let users: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let drain_secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let db = TestDatabase::create();
    let data = tempfile::tempdir().expect("temp dir");
    let sink = SmtpSink::start().await;
    let mut settings = test_settings(&db, data.path());
    settings.mail = smtp_settings(sink.port);
    settings.mail.outbox.batch = 1000;
    settings.mail.outbox.rate_per_sec = 1_000_000;
    settings.mail.outbox.concurrency =
        std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    settings.database.max_connections = 4;
    let core = Core::init(settings, Arc::new(SystemClock), InitMode::Serve).expect("core starts");
    println!("backend: {}, outbox concurrency {}", db.backend, core.settings.mail.outbox.concurrency);

    let at = chrono::Utc::now().naive_utc();
    let started = Instant::now();
    core.db.run(move |c| populate(c, users, at)).await.expect("users created");
    println!("created {users} users in {:.1} s", started.elapsed().as_secs_f64());

    let request = LaunchRequest {
        kind: CampaignKind::Breach,
        audience: AudienceFilter { all: true, ..AudienceFilter::default() },
        reason: "benchmark".into(),
        dry_run: false,
        launched_by: "cli:bench".into(),
        org_unit_id: None,
        decision: serde_json::json!("benchmark"),
    };
    let started = Instant::now();
    let launched = campaigns::launch(&core, request).await.expect("launch");
    let took = started.elapsed().as_secs_f64();
    let Launched::Launched(campaign) = launched else { unreachable!("not a dry run") };
    let cut = pramaan_server::clock::truncate_micros(campaign.launched_at).naive_utc();
    let flagged = core
        .db
        .run(move |c| {
            count(
                c,
                "SELECT COUNT(*) AS n FROM users WHERE must_change_password = TRUE AND tokens_valid_after >= ?",
                cut,
            )
        })
        .await
        .expect("count");
    println!(
        "launch over all: targeted {} — {flagged} flagged and cut off — in {took:.1} s ({:.0} accounts/s)",
        campaign.targeted,
        f64::from(u32::try_from(campaign.targeted).unwrap_or(u32::MAX)) / took
    );
    assert_eq!(flagged, users, "every user is flagged and cut off");
    assert_eq!(campaign.targeted, users);

    let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(core.settings.mail.clone()).expect("mailer"));
    let worker = OutboxWorker::new(core.clone(), mailer, "https://id.example.org");
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed().as_secs() < drain_secs {
        sent += worker.run_once().await.expect("a round").sent;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "outbox drain (one worker, SMTP sink on loopback): {sent} messages in {secs:.1} s = {:.0} messages/s; sink got {}",
        f64::from(u32::try_from(sent).unwrap_or(u32::MAX)) / secs,
        sink.received().len()
    );
}
