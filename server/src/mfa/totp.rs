//! Authenticator apps (RFC 6238 TOTP: HMAC-SHA1, 6 digits, 30-second steps — what every app
//! understands). A code is accepted for the current step and one step either side (§5.2's
//! allowance for clock drift), and only if its step is newer than the last one the account
//! accepted: a code seen once is worthless afterwards (§5.2, "MUST NOT accept the second
//! attempt"). The caller stores the accepted step atomically.

use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// The step, digits and algorithm every authenticator app supports.
const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
/// 160 bits, the length RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;

/// Why a TOTP value could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TOTP: {0}")]
pub struct TotpError(String);

/// A fresh random secret.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(crate::crypto::random_bytes(SECRET_BYTES))
}

fn totp(secret: &[u8], account: &str, issuer: &str) -> Result<Totp, TotpError> {
    // The otpauth label may not hold ':' (Key URI format); our usernames never do, an
    // issuer name might.
    let issuer = issuer.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        // The window is ours (see `verify`); each check looks at exactly one step.
        .with_skew(0)
        .with_step_duration(STEP_SECS)
        .with_secret(Secret::from(secret.to_vec()))
        .with_account_name(account.replace(':', " "))
        .with_issuer(Some(issuer))
        .build()
        .map_err(|e| TotpError(e.to_string()))
}

/// What the enrollment page shows: the `otpauth://` URI, its QR code as a PNG, and the secret
/// in base32 for typing in by hand.
#[derive(Debug)]
pub struct Enrollment {
    pub uri: Zeroizing<String>,
    pub qr_png: Vec<u8>,
    pub manual_key: Zeroizing<String>,
}

pub fn enrollment(secret: &[u8], account: &str, issuer: &str) -> Result<Enrollment, TotpError> {
    let t = totp(secret, account, issuer)?;
    let uri = Zeroizing::new(t.to_url().map_err(|e| TotpError(e.to_string()))?);
    let qr_png = t.to_qr_png().map_err(|e| TotpError(e.to_string()))?;
    let manual = Secret::from(secret.to_vec()).to_base32();
    // Groups of four, as authenticator apps display and accept them.
    let grouped: String = manual
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Enrollment { uri, qr_png, manual_key: Zeroizing::new(grouped) })
}

/// Keeps only the digits of what the person typed ("123 456" and "123-456" are fine).
pub fn normalize(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The time step `code` belongs to, if it is right for `now_secs` (± one step) and its step is
/// newer than `last_step` (the newest already accepted). The comparison of codes is constant
/// time (totp-rs compares tokens so).
pub fn verify(secret: &[u8], code: &str, now_secs: i64, last_step: i64) -> Option<i64> {
    let code = normalize(code)?;
    let now = u64::try_from(now_secs).ok()?;
    let t = totp(secret, "x", "x").ok()?;
    let origin = now / STEP_SECS;
    // Every step of the window is computed, so the time taken says nothing about which matched.
    let mut matched = None;
    for step in origin.saturating_sub(1)..=origin + 1 {
        if t.check(&code, step * STEP_SECS).is_some_and(|s| s == step) && matched.is_none() {
            matched = Some(step);
        }
    }
    let step = i64::try_from(matched?).ok()?;
    (step > last_step).then_some(step)
}

/// The code of `secret` at `now_secs` (tests and the CLI's self-check produce codes with it).
pub fn code_at(secret: &[u8], now_secs: i64) -> Option<String> {
    let t = totp(secret, "x", "x").ok()?;
    Some(t.generate(u64::try_from(now_secs).ok()?).to_string())
}

/// The code at `now_secs` of the secret typed as `manual_key` (base32, spaces allowed): what
/// an authenticator app shows. For tests and for checking a key by hand.
pub fn code_for_key(manual_key: &str, now_secs: i64) -> Option<String> {
    let compact: String = manual_key.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = Secret::try_from_base32(compact).ok()?;
    code_at(secret.as_ref(), now_secs)
}

/// The step a time falls in.
pub fn step_of(now_secs: i64) -> i64 {
    now_secs.div_euclid(STEP_SECS as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 column: the seed "12345678901234567890" and 8 digits.
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn the_rfc_6238_test_vectors_hold() {
        let t = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_skew(0)
            .with_step_duration(30)
            .with_secret(Secret::from(RFC_SEED.to_vec()))
            .build_noncompliant();
        for (time, expected) in RFC_VECTORS {
            assert_eq!(t.generate(time).to_string(), expected, "T = {time}");
        }
    }

    #[test]
    fn our_six_digit_codes_are_the_rfc_codes_truncated() {
        // RFC 4226 §5.3: a d-digit code is the value modulo 10^d, so the 6-digit code is the
        // last six digits of the 8-digit one.
        for (time, expected) in RFC_VECTORS {
            let code = code_at(RFC_SEED, time as i64).unwrap();
            assert_eq!(code, expected[2..], "T = {time}");
            assert_eq!(verify(RFC_SEED, &code, time as i64, 0), Some(step_of(time as i64)));
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_no_further() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let code = code_at(&secret, now).unwrap();
        assert!(verify(&secret, &code, now - 30, 0).is_some(), "one step late");
        assert!(verify(&secret, &code, now + 30, 0).is_some(), "one step early");
        assert!(verify(&secret, &code, now + 60, 0).is_none(), "two steps away");
        assert!(verify(&secret, &code, now - 60, 0).is_none(), "two steps away");
    }

    #[test]
    fn a_step_already_used_or_older_is_refused() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let code = code_at(&secret, now).unwrap();
        let step = verify(&secret, &code, now, 0).unwrap();
        assert_eq!(verify(&secret, &code, now, step), None, "the same code again");
        assert_eq!(verify(&secret, &code, now, step + 1), None, "an older code");
        let next = code_at(&secret, now + 30).unwrap();
        assert_eq!(verify(&secret, &next, now + 30, step), Some(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused_and_spacing_is_forgiven() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let code = code_at(&secret, now).unwrap();
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(verify(&secret, &spaced, now, 0).is_some());
        for bad in ["", "12345", "1234567", "abcdef", "12345x", "１２３４５６"] {
            assert_eq!(verify(&secret, bad, now, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn enrollment_offers_a_uri_a_png_and_a_typed_key() {
        let secret = new_secret();
        let e = enrollment(&secret, "asha.v", "Pramaan: Health").unwrap();
        assert!(e.uri.starts_with("otpauth://totp/"));
        assert!(e.uri.contains("issuer=Pramaan"));
        assert!(e.uri.contains("secret="));
        assert_eq!(&e.qr_png[..8], b"\x89PNG\r\n\x1a\n");
        let typed: String = e.manual_key.chars().filter(|c| *c != ' ').collect();
        assert_eq!(Secret::try_from_base32(&typed).unwrap(), Secret::from(secret.to_vec()));
    }
}
