//! Recovery codes: ten single-use codes made when an authenticator app is enrolled, shown once,
//! kept only as keyed digests bound to the account. Each is 10 characters from an alphabet
//! without look-alikes (50 bits), printed as two groups of five; typing is forgiving about
//! case, spaces and the dash.

use zeroize::Zeroizing;

use crate::crypto::Digester;
use crate::domain::UserId;

/// How many codes an enrollment makes.
pub const COUNT: usize = 10;
/// Crockford's base32 alphabet: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 10;

/// A fresh set of codes, formatted for display (`ABCDE-FGHJK`).
pub fn generate() -> Zeroizing<Vec<String>> {
    let mut out = Zeroizing::new(Vec::with_capacity(COUNT));
    while out.len() < COUNT {
        let raw = crate::crypto::random_bytes(LEN);
        let code: String = raw.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
        let shown = format!("{}-{}", &code[..5], &code[5..]);
        if !out.contains(&shown) {
            out.push(shown);
        }
    }
    out
}

/// The canonical form of a typed code, if it can be one: upper case, no separators, Crockford's
/// look-alikes mapped (O→0, I/L→1).
pub fn normalize(typed: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(LEN));
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || out.len() >= LEN {
            return None;
        }
        out.push(c);
    }
    (out.len() == LEN).then_some(out)
}

/// The stored digest of a (normalized) code for `user`: bound to the account, so a code
/// cannot be moved to another one.
pub fn digest(digester: &Digester, user: &UserId, normalized: &str) -> String {
    hex::encode(digester.digest_parts(&[b"recovery-code", user.as_str().as_bytes(), normalized.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_in_the_display_form() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        for c in codes.iter() {
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            assert!(normalize(c).is_some(), "{c}");
        }
        let mut sorted = codes.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), COUNT);
    }

    #[test]
    fn typing_is_forgiving_but_the_code_must_be_whole() {
        assert_eq!(normalize("abcde-fghjk").unwrap().as_str(), "ABCDEFGHJK");
        assert_eq!(normalize(" ab cde fghjk ").unwrap().as_str(), "ABCDEFGHJK");
        assert_eq!(normalize("0oO1i-L2222").unwrap().as_str(), "0001112222");
        assert!(normalize("ABCDE-FGHJ").is_none(), "too short");
        assert!(normalize("ABCDE-FGHJKM").is_none(), "too long");
        assert!(normalize("ABCDE-FGHJU").is_none(), "U is not in the alphabet");
        assert!(normalize("ABCDE-FGHJ✓").is_none());
    }

    #[test]
    fn a_digest_is_bound_to_its_account() {
        let d = Digester::new([7; 32]);
        let a = UserId::from_string("a".into());
        let b = UserId::from_string("b".into());
        assert_ne!(digest(&d, &a, "ABCDEFGHJK"), digest(&d, &b, "ABCDEFGHJK"));
        assert_eq!(digest(&d, &a, "ABCDEFGHJK"), digest(&d, &a, "ABCDEFGHJK"));
    }
}
