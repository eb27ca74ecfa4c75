//! The outbox worker: sends the messages queued in `outbox`, at a limited rate, retrying
//! temporary failures with backoff and giving up after `max_attempts`. Each batch is claimed
//! (`sending`, committed) before anything is sent, and a row a stopped worker left in
//! `sending` is settled as `unconfirmed`, never sent again: no message goes out twice, also
//! with several instances sharing one database. [`OutboxWorker::run_once`] is one round, for
//! tests and for the loop [`OutboxWorker::spawn`] runs.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use super::{Email, MailError, Mailer};
use crate::state::Core;
use crate::store::{DbError, outbox, write_transaction};

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Rows a stopped worker left sending, settled now.
    pub unconfirmed: usize,
}

pub struct OutboxWorker {
    core: Core,
    mailer: Arc<dyn Mailer>,
    /// This worker's name in the rows it claims.
    pub id: String,
}

impl OutboxWorker {
    pub fn new(core: Core, mailer: Arc<dyn Mailer>) -> Self {
        Self { core, mailer, id: format!("worker-{}", crate::crypto::random_token(9)) }
    }

    /// Settles abandoned rows, claims one batch of due messages and sends them.
    pub async fn run_once(&self) -> Result<Round, DbError> {
        let s = self.core.settings.mail.outbox.clone();
        let now = self.core.clock.now();
        let lease = TimeDelta::seconds(i64::try_from(s.lease_secs).unwrap_or(i64::MAX / 2));
        let worker = self.id.clone();
        let (unconfirmed, batch) = self
            .core
            .db
            .run(move |c| {
                let settled = write_transaction(c, |c| outbox::settle_abandoned(c, now))?;
                let batch = write_transaction(c, |c| outbox::claim(c, &worker, now, lease, s.batch))?;
                Ok::<_, DbError>((settled, batch))
            })
            .await?;
        let mut round = Round { unconfirmed, ..Round::default() };
        let gap = Duration::from_secs_f64(1.0 / f64::from(s.rate_per_sec));
        for (i, m) in batch.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let email = Email {
                to: m.recipient.clone(),
                subject: m.subject.clone(),
                text: m.text.clone(),
                html: m.html.clone(),
            };
            let result = self.mailer.send(&email, &m.id).await;
            let now = self.core.clock.now();
            let (id, worker) = (m.id.clone(), self.id.clone());
            match result {
                Ok(()) => {
                    self.core.db.run(move |c| outbox::mark_sent(c, &id, &worker, now)).await?;
                    round.sent += 1;
                }
                Err(e @ MailError::Temporary(_)) if m.attempts < s.max_attempts => {
                    // 2^(attempts-1) × base, at most an hour.
                    let factor = 1u64 << u32::try_from(m.attempts.clamp(1, 20) - 1).unwrap_or(0);
                    let wait = s.retry_base_secs.saturating_mul(factor).min(3600);
                    let next = now + TimeDelta::seconds(i64::try_from(wait).unwrap_or(3600));
                    let why = e.to_string();
                    tracing::warn!(message = %m.id, attempts = m.attempts, error = %why, "mail not sent; will retry");
                    self.core.db.run(move |c| outbox::mark_retry(c, &id, &worker, next, &why)).await?;
                    round.retried += 1;
                }
                Err(e) => {
                    let why = e.to_string();
                    tracing::error!(message = %m.id, attempts = m.attempts, error = %why, "mail given up");
                    self.core.db.run(move |c| outbox::mark_failed(c, &id, &worker, &why)).await?;
                    round.failed += 1;
                }
            }
        }
        Ok(round)
    }

    /// Runs a round every `poll_secs` (at once again after a full batch) until aborted.
    pub fn spawn(self) -> Option<tokio::task::JoinHandle<()>> {
        tokio::runtime::Handle::try_current().ok()?;
        Some(tokio::spawn(async move {
            let poll = Duration::from_secs(self.core.settings.mail.outbox.poll_secs);
            loop {
                match self.run_once().await {
                    Ok(r) if r.sent + r.retried + r.failed > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "outbox round failed"),
                }
                tokio::time::sleep(poll).await;
            }
        }))
    }
}
