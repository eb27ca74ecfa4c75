//! One-time codes by text message: six digits, kept only as a keyed digest in the session
//! store, bound to one login transaction, valid for `sms.code_ttl_secs`, used once. Sending
//! is limited by a resend cooldown and hourly caps per account, per phone number and per
//! client address (SMS pumping); a message the gateway did not take is not charged against
//! any of them.

mod gateway;

pub use gateway::{HttpGateway, LogGateway, SmsError, SmsGateway, mask};

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SmsSettings;
use crate::crypto::{Digester, constant_time_eq};
use crate::domain::{Phone, UserId};
use crate::sessions::{SessionStore, StoreError};

/// The code in the store: its digest, and when it was sent and stops working (app clock, so
/// tests can move time; the store's own TTL only cleans up).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sent {
    digest: String,
    sent_at_us: i64,
    expires_at_us: i64,
}

fn code_key(tx: &str) -> String {
    format!("sms-code:{tx}")
}

/// Why no code was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A code was sent less than the cooldown ago; try again in this many seconds.
    Cooldown(u64),
    /// An hourly cap was reached (which one is for the audit trail only).
    Capped(&'static str),
    /// The gateway did not take the message.
    Delivery(SmsError),
}

/// What [`send`] needs to know about where and to whom.
pub struct Recipient<'a> {
    pub user: &'a UserId,
    pub phone: &'a Phone,
    pub ip: Option<IpAddr>,
}

fn message(code: &str, ttl_secs: u64, host: Option<&str>) -> String {
    let mut m = format!(
        "{code} is your Pramaan sign-in code. It works for {} minutes. Never share it; Pramaan staff will never ask for it.",
        ttl_secs.div_ceil(60)
    );
    // WebOTP / origin-bound one-time codes: lets a phone's browser offer the code for this site
    // only.
    if let Some(h) = host {
        m.push_str(&format!("\n\n@{h} #{code}"));
    }
    m
}

/// Sends a fresh code for login transaction `tx`, replacing any earlier one of it.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    store: &dyn SessionStore,
    gateway: &dyn SmsGateway,
    digester: &Digester,
    settings: &SmsSettings,
    tx: &str,
    to: Recipient<'_>,
    host: Option<&str>,
    now_us: i64,
) -> Result<Result<(), Refusal>, StoreError> {
    // One send at a time per account: parallel requests that would all pass the checks below
    // are settled by this atomic claim (held only while this send runs).
    let sending = format!("sms-sending:{}", to.user);
    if !store.put_if_absent(&sending, b"1", Duration::from_secs(30)).await? {
        return Ok(Err(Refusal::Cooldown(settings.resend_cooldown_secs)));
    }
    let outcome = send_claimed(store, gateway, digester, settings, tx, &to, host, now_us).await;
    store.delete(&sending).await?;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn send_claimed(
    store: &dyn SessionStore,
    gateway: &dyn SmsGateway,
    digester: &Digester,
    settings: &SmsSettings,
    tx: &str,
    to: &Recipient<'_>,
    host: Option<&str>,
    now_us: i64,
) -> Result<Result<(), Refusal>, StoreError> {
    // The wait is the account's (a new login does not reset it), by the app's clock.
    let cooldown_us = i64::try_from(settings.resend_cooldown_secs).unwrap_or(300) * 1_000_000;
    let last_key = format!("sms-last:{}", to.user);
    let last = store.get(&last_key).await?.and_then(|b| String::from_utf8(b).ok()?.parse::<i64>().ok());
    if let Some(at) = last {
        let wait_us = at + cooldown_us - now_us;
        if wait_us > 0 {
            return Ok(Err(Refusal::Cooldown(u64::try_from(wait_us).unwrap_or(0).div_ceil(1_000_000))));
        }
    }
    // Caps per clock hour of the app's clock; the counters themselves expire after an hour.
    let hour = now_us.div_euclid(3_600_000_000);
    let phone = digester.digest("sms-phone", to.phone.as_str().as_bytes());
    let mut caps = vec![
        (format!("sms-cap:user:{}:{hour}", to.user), settings.per_user_hourly, "user"),
        (format!("sms-cap:phone:{phone}:{hour}"), settings.per_phone_hourly, "phone"),
    ];
    if let Some(ip) = to.ip {
        caps.push((format!("sms-cap:ip:{}:{hour}", network_of(ip)), settings.per_ip_hourly, "ip"));
    }
    let window = Duration::from_secs(3_600);
    let mut charged = Vec::new();
    for (key, cap, name) in &caps {
        let n = store.increment(key, window).await?;
        charged.push(key.clone());
        if n > *cap {
            refund(store, &charged).await?;
            return Ok(Err(Refusal::Capped(name)));
        }
    }
    let code = six_digits();
    let sent = gateway.send(to.phone, &message(&code, settings.code_ttl_secs, host)).await;
    // A message that timed out may still arrive: it stays charged, and the wait starts.
    if sent.is_ok() || matches!(sent, Err(SmsError::TimedOut)) {
        let ttl = Duration::from_secs(settings.resend_cooldown_secs + 60);
        store.put(&last_key, now_us.to_string().as_bytes(), ttl).await?;
    }
    if let Err(e) = sent {
        if !matches!(e, SmsError::TimedOut) {
            refund(store, &charged).await?;
        }
        return Ok(Err(Refusal::Delivery(e)));
    }
    let ttl_us = i64::try_from(settings.code_ttl_secs).unwrap_or(900) * 1_000_000;
    let sent = Sent {
        digest: digester.digest("sms-code", format!("{tx}:{code}").as_bytes()),
        sent_at_us: now_us,
        expires_at_us: now_us + ttl_us,
    };
    let bytes = serde_json::to_vec(&sent).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    store.put(&code_key(tx), &bytes, Duration::from_secs(settings.code_ttl_secs + 60)).await?;
    Ok(Ok(()))
}

async fn refund(store: &dyn SessionStore, keys: &[String]) -> Result<(), StoreError> {
    for k in keys {
        store.decrement(k).await?;
    }
    Ok(())
}

async fn load(store: &dyn SessionStore, tx: &str) -> Result<Option<Sent>, StoreError> {
    Ok(store.get(&code_key(tx)).await?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Whether a code was sent in transaction `tx` and is still usable at `now_us`.
pub async fn code_pending(store: &dyn SessionStore, tx: &str, now_us: i64) -> Result<bool, StoreError> {
    Ok(load(store, tx).await?.is_some_and(|s| s.expires_at_us >= now_us))
}

/// The outcome of checking a typed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Right,
    Wrong,
    /// The code's time is up (a new one can be sent).
    Expired,
    /// No code was sent in this login, or it was already used.
    NoCode,
}

/// Checks `typed` against the code of transaction `tx` and, if right, uses it up: of two
/// parallel right answers exactly one is `Right`. The caller counts wrong answers (they burn
/// the whole login transaction after `mfa.max_tries`).
pub async fn verify(
    store: &dyn SessionStore,
    digester: &Digester,
    tx: &str,
    typed: &str,
    now_us: i64,
) -> Result<Verdict, StoreError> {
    let Some(sent) = load(store, tx).await? else { return Ok(Verdict::NoCode) };
    if now_us > sent.expires_at_us {
        return Ok(Verdict::Expired);
    }
    let typed: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Verdict::Wrong);
    }
    let digest = digester.digest("sms-code", format!("{tx}:{typed}").as_bytes());
    if !constant_time_eq(digest.as_bytes(), sent.digest.as_bytes()) {
        return Ok(Verdict::Wrong);
    }
    // Single use: only the caller whose `take` removes it wins.
    Ok(if store.take(&code_key(tx)).await?.is_some() { Verdict::Right } else { Verdict::NoCode })
}

/// Forgets the code of `tx` (the transaction ended or was burnt).
pub async fn discard(store: &dyn SessionStore, tx: &str) -> Result<(), StoreError> {
    store.delete(&code_key(tx)).await.map(|_| ())
}

/// The address a per-IP cap counts, as a key part ([`crate::domain::network_of`]).
pub(crate) fn network_of(ip: IpAddr) -> String {
    match crate::domain::network_of(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Six uniformly random digits (rejection sampling: no modulo bias).
fn six_digits() -> String {
    loop {
        let b = crate::crypto::random_bytes(4);
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        // 4_294_000_000 is the largest multiple of 10^6 below 2^32.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

#[cfg(test)]
mod tests;
