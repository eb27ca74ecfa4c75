//! The outbox on both backends, against the tests' SMTP sink: each message is sent once and
//! marked; a worker stopped between sending and marking leaves a message that is never sent
//! again (nor lost); temporary failures wait and retry, permanent ones fail; two workers on one
//! database never send one message twice.

use chrono::TimeDelta;
use pramaan_integration_tests::smtp_sink::{SmtpSink, smtp_settings, worker};
use pramaan_integration_tests::two_factor::fixed_clock;
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;
use pramaan_server::mail::outbox::Round;
use pramaan_server::mail::{Email, Mailer, SmtpMailer};
use pramaan_server::store::{outbox, write_transaction};

async fn app_mailing(port: u16) -> (TestApp, FixedClock) {
    let clock = fixed_clock();
    (spawn_app_at(clock.clone(), |s| s.mail = smtp_settings(port)).await, clock)
}

async fn enqueue(app: &TestApp, n: usize) -> Vec<String> {
    let now = app.core.clock.now();
    app.core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                (0..n)
                    .map(|i| {
                        let to = format!("user{i}@example.org");
                        let m = outbox::NewMessage {
                            kind: "test",
                            recipient: &to,
                            subject: "Hello",
                            text: "Hello.",
                            html: "<p>Hello.</p>",
                        };
                        outbox::enqueue(c, &m, now)
                    })
                    .collect()
            })
        })
        .await
        .unwrap()
}

async fn counts(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    app.core.db.run(outbox::counts).await.unwrap()
}

#[tokio::test]
async fn each_message_is_sent_once_and_marked() {
    let sink = SmtpSink::start().await;
    let (app, _) = app_mailing(sink.port).await;
    let ids = enqueue(&app, 3).await;
    let w = worker(&app);
    assert_eq!(w.run_once().await.unwrap(), Round { sent: 3, ..Round::default() });
    assert_eq!(w.run_once().await.unwrap(), Round::default(), "nothing is due any more");
    let got = sink.received();
    assert_eq!(got.len(), 3);
    for id in &ids {
        assert_eq!(got.iter().filter(|m| m.data.contains(&format!("Message-ID: <{id}@"))).count(), 1, "{id}");
    }
    assert_eq!(counts(&app).await.get("sent"), Some(&3));
}

#[tokio::test]
async fn a_worker_stopped_between_sending_and_marking_leaves_a_message_sent_once() {
    let sink = SmtpSink::start().await;
    let (app, clock) = app_mailing(sink.port).await;
    let ids = enqueue(&app, 1).await;
    // A worker claims the message and the server takes it; then the worker dies before marking.
    let now = app.core.clock.now();
    let claimed = app
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| outbox::claim(c, "dead-worker", now, TimeDelta::seconds(60), 10))
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mailer = SmtpMailer::new(app.core.settings.mail.clone()).unwrap();
    let m = &claimed[0];
    let email = Email {
        to: m.recipient.clone(),
        subject: m.subject.clone(),
        text: m.text.clone(),
        html: m.html.clone(),
    };
    mailer.send(&email, &m.id).await.unwrap();
    // The restarted worker, while the dead one's lease runs, and after it ran out.
    let w = worker(&app);
    assert_eq!(w.run_once().await.unwrap(), Round::default(), "a claimed row is left alone");
    clock.advance(TimeDelta::seconds(61));
    assert_eq!(w.run_once().await.unwrap(), Round { unconfirmed: 1, ..Round::default() });
    assert_eq!(w.run_once().await.unwrap(), Round::default());
    assert_eq!(sink.received().len(), 1, "no second mail");
    assert!(sink.received()[0].data.contains(&ids[0]), "and none lost");
    assert_eq!(counts(&app).await.get("unconfirmed"), Some(&1));
}

#[tokio::test]
async fn temporary_failures_wait_and_retry_and_refusals_fail() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (app, clock) = app_mailing(closed).await;
    enqueue(&app, 1).await;
    let w = worker(&app);
    assert_eq!(w.run_once().await.unwrap(), Round { retried: 1, ..Round::default() });
    assert_eq!(w.run_once().await.unwrap(), Round::default(), "not due before its backoff");
    // 30 s after the first attempt, then 60, 120, 240: the fifth attempt gives up.
    for wait in [30, 60, 120] {
        clock.advance(TimeDelta::seconds(wait));
        assert_eq!(w.run_once().await.unwrap(), Round { retried: 1, ..Round::default() }, "after {wait} s");
    }
    clock.advance(TimeDelta::seconds(240));
    assert_eq!(w.run_once().await.unwrap(), Round { failed: 1, ..Round::default() });
    assert_eq!(counts(&app).await.get("failed"), Some(&1));

    let sink = SmtpSink::start().await;
    sink.refuse_recipients();
    let (app, _) = app_mailing(sink.port).await;
    enqueue(&app, 1).await;
    assert_eq!(
        worker(&app).run_once().await.unwrap(),
        Round { failed: 1, ..Round::default() },
        "550 is for good"
    );
}

#[tokio::test]
async fn two_workers_on_one_database_never_send_a_message_twice() {
    let sink = SmtpSink::start().await;
    let (app, _) = app_mailing(sink.port).await;
    let ids = enqueue(&app, 40).await;
    let (a, b) = (worker(&app), worker(&app));
    let mut total = Round::default();
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        for r in [ra.unwrap(), rb.unwrap()] {
            total.sent += r.sent;
        }
    }
    assert_eq!(total.sent, 40);
    let got = sink.received();
    assert_eq!(got.len(), 40);
    for id in &ids {
        assert_eq!(got.iter().filter(|m| m.data.contains(&format!("<{id}@"))).count(), 1, "{id}");
    }
}
