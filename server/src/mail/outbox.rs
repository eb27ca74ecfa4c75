//! The outbox worker: sends the messages queued in `outbox`, at a limited rate, retrying
//! temporary failures with backoff and giving up after `max_attempts`. Each batch is claimed
//! (`sending`, committed) before anything is sent, and a row a stopped worker left in
//! `sending` is settled as `unconfirmed`, never sent again: no message goes out twice, also
//! with several instances sharing one database. [`OutboxWorker::run_once`] is one round, for
//! tests and for the loop [`OutboxWorker::spawn`] runs.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use super::templates::{Purpose, ResetMail};
use super::{Email, MailError, Mailer};
use crate::state::Core;
use crate::store::campaigns::{self, CampaignKind};
use crate::store::outbox::OutboxMessage;
use crate::store::{DbError, outbox, password_resets, users, write_transaction};

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Rows a stopped worker left sending, settled now.
    pub unconfirmed: usize,
    /// Messages no longer needed (cancelled campaign, password already set).
    pub skipped: usize,
    /// Messages whose claim ran out before they were sent (left as settled).
    pub lost: usize,
}

#[derive(Clone)]
pub struct OutboxWorker {
    core: Core,
    mailer: Arc<dyn Mailer>,
    /// The server's external base URL, for the links in messages.
    public_url: String,
    /// This worker's name in the rows it claims.
    pub id: String,
}

/// What became of one message.
enum Delivered {
    Sent,
    Retried,
    Failed,
    Skipped,
    /// The claim ran out before it was sent (another worker settled it): not sent.
    Lost,
}

/// What to do with a claimed message.
enum Prepared {
    Send(Email),
    /// It no longer needs sending; why.
    Skip(&'static str),
}

/// The keyed digest a reset link's token is stored as.
pub fn reset_digest(digester: &crate::crypto::Digester, token: &str) -> String {
    digester.digest("password-reset-link", token.as_bytes())
}

impl OutboxWorker {
    pub fn new(core: Core, mailer: Arc<dyn Mailer>, public_url: &str) -> Self {
        Self {
            core,
            mailer,
            public_url: public_url.trim_end_matches('/').to_owned(),
            id: format!("worker-{}", crate::crypto::random_token(9)),
        }
    }

    /// The message to send for a claimed row. Mail about an account (a reset link) is
    /// rendered now: the link is made here, its digest stored with a fresh expiry, and the
    /// message goes to the account's current address. A campaign's mail to someone who has
    /// meanwhile set a new password, or of a cancelled campaign, is not sent.
    async fn prepare(&self, m: &OutboxMessage) -> Result<Prepared, DbError> {
        let Some(user_id) = m.user_id.clone() else {
            return Ok(Prepared::Send(Email {
                to: m.recipient.clone(),
                subject: m.subject.clone(),
                text: m.text.clone(),
                html: m.html.clone(),
            }));
        };
        let token = crate::crypto::random_token(32);
        let digest = reset_digest(&self.core.keys.digester, &token);
        let now = self.core.clock.now();
        let ttl = self.core.settings.password.reset_link_ttl_secs;
        let expires = now + TimeDelta::seconds(i64::try_from(ttl).unwrap_or(1800));
        let campaign_id = m.campaign_id.clone();
        let found = self
            .core
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let id = crate::domain::UserId::from_string(user_id.clone());
                    let Some(user) = users::find(c, &id)? else { return Ok(Err("the account is gone")) };
                    if user.status != crate::domain::UserStatus::Active {
                        return Ok(Err("the account is disabled"));
                    }
                    let Some(email) = user.email.clone() else { return Ok(Err("the account has no email")) };
                    let mut purpose = Purpose::Reset;
                    if let Some(cid) = &campaign_id {
                        let Some(campaign) = campaigns::find(c, cid)? else {
                            return Ok(Err("the campaign is gone"));
                        };
                        if campaign.state == "cancelled" {
                            return Ok(Err("the campaign was cancelled"));
                        }
                        if campaigns::member_completed(c, cid, &user_id)? {
                            return Ok(Err("the account already set a new password"));
                        }
                        purpose = match campaign.kind {
                            CampaignKind::Breach => Purpose::Breach,
                            CampaignKind::Onboarding => Purpose::Onboarding,
                        };
                    }
                    password_resets::create(
                        c,
                        &password_resets::NewReset {
                            digest: &digest,
                            user_id: &user_id,
                            campaign_id: campaign_id.as_deref(),
                            channel: "email",
                            expires_at: expires,
                        },
                        now,
                    )?;
                    Ok(Ok((user, email, purpose)))
                })
            })
            .await?;
        let (user, email, purpose) = match found {
            Ok(v) => v,
            Err(why) => return Ok(Prepared::Skip(why)),
        };
        let link = format!("{}/password/reset?token={token}", self.public_url);
        let mail = ResetMail {
            purpose,
            organisation: &self.core.settings.mail.organisation_name,
            to: email.as_str(),
            display_name: &user.display_name,
            username: user.username.as_str(),
            link: &link,
            ttl_secs: ttl,
        };
        match mail.render() {
            Ok(e) => Ok(Prepared::Send(e)),
            Err(e) => {
                tracing::error!(error = ?e, "a message failed to render");
                Ok(Prepared::Skip("the message failed to render"))
            }
        }
    }

    /// Settles abandoned rows, claims one batch of due messages and sends them: at most
    /// `rate_per_sec` started a second, at most `concurrency` at a time (an SMTP connection
    /// each, from the transport's pool).
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
        let permits = Arc::new(tokio::sync::Semaphore::new(s.concurrency.max(1)));
        let mut sending = tokio::task::JoinSet::new();
        for (i, m) in batch.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let w = self.clone();
            sending.spawn(async move {
                let outcome = w.deliver(m).await;
                drop(permit);
                outcome
            });
        }
        let mut first_error = None;
        while let Some(done) = sending.join_next().await {
            match done {
                Ok(Ok(Delivered::Sent)) => round.sent += 1,
                Ok(Ok(Delivered::Retried)) => round.retried += 1,
                Ok(Ok(Delivered::Failed)) => round.failed += 1,
                Ok(Ok(Delivered::Skipped)) => round.skipped += 1,
                Ok(Ok(Delivered::Lost)) => round.lost += 1,
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                // A panicked send leaves its row `sending`: settled as unconfirmed after the
                // lease, never sent twice.
                Err(e) => first_error = first_error.or(Some(DbError::Join(e.to_string()))),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(round),
        }
    }

    /// Sends one claimed message and marks it.
    async fn deliver(&self, m: OutboxMessage) -> Result<Delivered, DbError> {
        let s = &self.core.settings.mail.outbox;
        let (id, worker) = (m.id.clone(), self.id.clone());
        // The batch may have waited (rate, concurrency): the claim is renewed for one more
        // lease before anything is sent, or the message is left alone if it was lost.
        let until = self.core.clock.now() + TimeDelta::seconds(i64::try_from(s.lease_secs).unwrap_or(300));
        let (i, w) = (id.clone(), worker.clone());
        if !self.core.db.run(move |c| outbox::renew_claim(c, &i, &w, until)).await? {
            return Ok(Delivered::Lost);
        }
        let prepared = match self.prepare(&m).await {
            Ok(p) => p,
            Err(e) => {
                // Nothing was sent: try again later (a row left `sending` would be settled as
                // perhaps delivered), or give up after the last attempt.
                let why = format!("could not prepare the message: {e}");
                if m.attempts >= s.max_attempts {
                    self.core.db.run(move |c| outbox::mark_failed(c, &id, &worker, &why)).await?;
                    return Ok(Delivered::Failed);
                }
                let next = self.core.clock.now()
                    + TimeDelta::seconds(i64::try_from(s.retry_base_secs).unwrap_or(30));
                self.core.db.run(move |c| outbox::mark_retry(c, &id, &worker, next, &why)).await?;
                return Ok(Delivered::Retried);
            }
        };
        let email = match prepared {
            Prepared::Send(e) => e,
            Prepared::Skip(why) => {
                self.core.db.run(move |c| outbox::mark_skipped(c, &id, &worker, why)).await?;
                return Ok(Delivered::Skipped);
            }
        };
        let result = self.mailer.send(&email, &m.id).await;
        let now = self.core.clock.now();
        match result {
            Ok(()) => {
                self.core.db.run(move |c| outbox::mark_sent(c, &id, &worker, now)).await?;
                Ok(Delivered::Sent)
            }
            Err(e @ MailError::Temporary(_)) if m.attempts < s.max_attempts => {
                // 2^(attempts-1) × base, at most an hour.
                let factor = 1u64 << u32::try_from(m.attempts.clamp(1, 20) - 1).unwrap_or(0);
                let wait = s.retry_base_secs.saturating_mul(factor).min(3600);
                let next = now + TimeDelta::seconds(i64::try_from(wait).unwrap_or(3600));
                let why = e.to_string();
                tracing::warn!(message = %m.id, attempts = m.attempts, error = %why, "mail not sent; will retry");
                self.core.db.run(move |c| outbox::mark_retry(c, &id, &worker, next, &why)).await?;
                Ok(Delivered::Retried)
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(message = %m.id, attempts = m.attempts, error = %why, "mail given up");
                self.core.db.run(move |c| outbox::mark_failed(c, &id, &worker, &why)).await?;
                Ok(Delivered::Failed)
            }
        }
    }

    /// Runs a round every `poll_secs` (at once again after a full batch) until aborted.
    pub fn spawn(self) -> Option<tokio::task::JoinHandle<()>> {
        tokio::runtime::Handle::try_current().ok()?;
        Some(tokio::spawn(async move {
            let poll = Duration::from_secs(self.core.settings.mail.outbox.poll_secs);
            loop {
                match self.run_once().await {
                    Ok(r) if r.sent + r.retried + r.failed + r.skipped > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "outbox round failed"),
                }
                tokio::time::sleep(poll).await;
            }
        }))
    }
}
