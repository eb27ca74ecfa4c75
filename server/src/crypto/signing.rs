//! Token signatures: compact JWS (RFC 7515) made and checked with ring only, for ES256, RS256
//! and EdDSA. RSA keys are generated with OpenSSL (ring cannot generate them) and then loaded
//! into ring; the `rsa` crate is never used (RUSTSEC-2023-0071, a timing leak of the key).
//!
//! Pure: no clock, no storage. Expiry, issuer and audience are the caller's to check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};

/// Largest token `verify_jwt` will look at: a bound on the work an attacker can ask for.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A JWS algorithm this server signs with (RFC 7518 §3.1 names; EdDSA from RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [Self; 3] = [Self::ES256, Self::RS256, Self::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Exact, case-sensitive names (RFC 7515 §4.1.1: `alg` values are case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("RSA keys must be 2048 or 3072 bits, not {0}")]
    RsaBits(u32),
    #[error("key generation failed: {0}")]
    Generate(String),
    /// The PKCS#8 document is not a key of the expected algorithm.
    #[error("stored {alg} key is not usable: {reason}")]
    BadKey { alg: SigningAlg, reason: String },
    #[error("signing failed")]
    Sign,
    #[error("claims do not serialise: {0}")]
    Claims(String),
}

/// A public key as a JWK (RFC 7517 §4; members for EC/RSA from RFC 7518 §6, OKP from
/// RFC 8037 §2). Never carries private members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: SigningAlg,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key loaded into ring, with its `kid` and public JWK.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    jwk: PublicJwk,
    verifying: VerifyingKey,
    oidc_jwk: openidconnect::core::CoreJsonWebKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// A new private key as PKCS#8 DER, for the caller to seal and store.
pub fn generate_pkcs8(alg: SigningAlg, rsa_bits: u32) -> Result<Vec<u8>, SigningError> {
    let rng = SystemRandom::new();
    let gen_err = |e: &dyn std::fmt::Display| SigningError::Generate(e.to_string());
    match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| gen_err(&e)),
        SigningAlg::EdDSA => {
            Ed25519KeyPair::generate_pkcs8(&rng).map(|d| d.as_ref().to_vec()).map_err(|e| gen_err(&e))
        }
        SigningAlg::RS256 => {
            if !matches!(rsa_bits, 2048 | 3072) {
                return Err(SigningError::RsaBits(rsa_bits));
            }
            // OpenSSL only generates; the signing key is loaded into ring below.
            let rsa = openssl::rsa::Rsa::generate(rsa_bits).map_err(|e| gen_err(&e))?;
            let pkey = openssl::pkey::PKey::from_rsa(rsa).map_err(|e| gen_err(&e))?;
            pkey.private_key_to_pkcs8().map_err(|e| gen_err(&e))
        }
    }
}

fn b64_uint(bytes: &[u8]) -> String {
    // RFC 7518 §6.3.1.1 / §2 (Base64urlUInt): the minimal big-endian octets.
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    B64.encode(&bytes[first..])
}

impl SigningKey {
    /// Loads a PKCS#8 DER key of `alg`; the kid is derived from the public key.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, SigningError> {
        let rng = SystemRandom::new();
        let bad = |reason: String| SigningError::BadKey { alg, reason };
        let (pair, mut jwk) = match alg {
            SigningAlg::ES256 => {
                let p = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|e| bad(e.to_string()))?;
                // ring gives the uncompressed point 0x04 || X || Y (SEC1 §2.3.3).
                let point = p.public_key().as_ref();
                let (x, y) = match point {
                    [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(bad("unexpected public point".into())),
                };
                // RFC 7518 §6.2.1: x and y are the full-length coordinates.
                let jwk = jwk_shell("EC", alg, Some("P-256"), Some(B64.encode(x)), Some(B64.encode(y)));
                (Pair::Ec(p), jwk)
            }
            SigningAlg::EdDSA => {
                let p = Ed25519KeyPair::from_pkcs8(der).map_err(|e| bad(e.to_string()))?;
                // RFC 8037 §2: kty OKP, crv Ed25519, x the public key.
                let jwk =
                    jwk_shell("OKP", alg, Some("Ed25519"), Some(B64.encode(p.public_key().as_ref())), None);
                (Pair::Ed(p), jwk)
            }
            SigningAlg::RS256 => {
                let p = RsaKeyPair::from_pkcs8(der).map_err(|e| bad(e.to_string()))?;
                // RFC 7518 §3.3: a key of 2048 bits or more is required for RS256.
                if p.public().modulus_len() < 256 {
                    return Err(bad("RSA modulus shorter than 2048 bits".into()));
                }
                let c: sig::RsaPublicKeyComponents<Vec<u8>> = p.public().into();
                let mut jwk = jwk_shell("RSA", alg, None, None, None);
                jwk.n = Some(b64_uint(&c.n));
                jwk.e = Some(b64_uint(&c.e));
                (Pair::Rsa(p), jwk)
            }
        };
        jwk.kid = thumbprint_kid(&jwk);
        let verifying = VerifyingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        let oidc_jwk = serde_json::to_value(&jwk)
            .and_then(serde_json::from_value)
            .map_err(|e| bad(format!("JWK not accepted by openidconnect: {e}")))?;
        Ok(Self { kid: jwk.kid.clone(), alg, pair, jwk, verifying, oidc_jwk, rng })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Signs `message` (a JWS signing input) with this key's algorithm.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match &self.pair {
            // RFC 7518 §3.4: the ECDSA signature is R || S, 32 octets each (ring's FIXED form).
            Pair::Ec(p) => {
                p.sign(&self.rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| SigningError::Sign)
            }
            Pair::Ed(p) => Ok(p.sign(message).as_ref().to_vec()),
            Pair::Rsa(p) => {
                // RFC 7518 §3.3: RSASSA-PKCS1-v1_5 with SHA-256.
                let mut out = vec![0; p.public().modulus_len()];
                p.sign(&sig::RSA_PKCS1_SHA256, &self.rng, message, &mut out)
                    .map_err(|_| SigningError::Sign)?;
                Ok(out)
            }
        }
    }

    /// A compact JWS (RFC 7515 §7.1) over `claims` with header `{alg, typ, kid}`.
    pub fn sign_jwt<C: Serialize + ?Sized>(&self, typ: &str, claims: &C) -> Result<String, SigningError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header { alg: self.alg.as_str(), typ, kid: &self.kid })
            .map_err(|e| SigningError::Claims(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| SigningError::Claims(e.to_string()))?;
        let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 360);
        B64.encode_string(&header, &mut out);
        out.push('.');
        B64.encode_string(&payload, &mut out);
        let signature = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        B64.encode_string(signature, &mut out);
        Ok(out)
    }
}

fn jwk_shell(
    kty: &str,
    alg: SigningAlg,
    crv: Option<&str>,
    x: Option<String>,
    y: Option<String>,
) -> PublicJwk {
    PublicJwk {
        kty: kty.into(),
        use_: "sig".into(),
        alg,
        kid: String::new(),
        crv: crv.map(Into::into),
        x,
        y,
        n: None,
        e: None,
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace;
/// the kid is the first 16 bytes of it, base64url.
pub fn thumbprint_kid(jwk: &PublicJwk) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    // RFC 7638 §3.2 (EC, RSA) and RFC 8037 §2 (OKP) name the required members. A BTreeMap
    // keeps them in lexicographic order (§3.3) and serde_json writes no whitespace.
    let members: std::collections::BTreeMap<&str, String> = match jwk.kty.as_str() {
        "EC" => [("crv", o(&jwk.crv)), ("kty", jwk.kty.clone()), ("x", o(&jwk.x)), ("y", o(&jwk.y))].into(),
        "RSA" => [("e", o(&jwk.e)), ("kty", jwk.kty.clone()), ("n", o(&jwk.n))].into(),
        _ => [("crv", o(&jwk.crv)), ("kty", jwk.kty.clone()), ("x", o(&jwk.x))].into(),
    };
    // A map of strings always serialises.
    let bytes = serde_json::to_vec(&members).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    B64.encode(&digest.as_ref()[..16])
}

/// A public key that checks signatures of one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    alg: SigningAlg,
    kid: String,
    /// EC: the uncompressed point; Ed25519: the 32-byte key.
    point: Vec<u8>,
    rsa: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("token is malformed")]
    Malformed,
    /// `none`, HS256 or anything else this server does not sign with.
    #[error("token algorithm is not accepted")]
    UnsupportedAlg,
    #[error("token has no kid or an unknown one")]
    UnknownKey,
    /// The header's alg is not the one the key is for (RFC 8725 §3.1).
    #[error("token algorithm does not match its key")]
    AlgMismatch,
    #[error("token type is wrong")]
    WrongType,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token uses critical header extensions")]
    Critical,
}

impl VerifyingKey {
    /// From a published JWK; refuses members that do not fit its `alg`.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, VerifyError> {
        let dec =
            |v: &Option<String>| v.as_deref().and_then(|s| B64.decode(s).ok()).ok_or(VerifyError::Malformed);
        let (point, rsa) = match (jwk.alg, jwk.kty.as_str(), jwk.crv.as_deref()) {
            (SigningAlg::ES256, "EC", Some("P-256")) => {
                let mut p = vec![4u8];
                p.extend(dec(&jwk.x)?);
                p.extend(dec(&jwk.y)?);
                (p, None)
            }
            (SigningAlg::EdDSA, "OKP", Some("Ed25519")) => (dec(&jwk.x)?, None),
            (SigningAlg::RS256, "RSA", None) => (Vec::new(), Some((dec(&jwk.n)?, dec(&jwk.e)?))),
            _ => return Err(VerifyError::Malformed),
        };
        Ok(Self { alg: jwk.alg, kid: jwk.kid.clone(), point, rsa })
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        let r = match (self.alg, &self.rsa) {
            (SigningAlg::ES256, _) => sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, &self.point)
                .verify(message, signature),
            (SigningAlg::EdDSA, _) => {
                sig::UnparsedPublicKey::new(&sig::ED25519, &self.point).verify(message, signature)
            }
            (SigningAlg::RS256, Some((n, e))) => sig::RsaPublicKeyComponents { n, e }.verify(
                &sig::RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            ),
            (SigningAlg::RS256, None) => return Err(VerifyError::BadSignature),
        };
        r.map_err(|_| VerifyError::BadSignature)
    }
}

/// Checks a compact JWS and returns its claims. `keys` finds a key by `kid`. With
/// `expected_typ = Some(t)` the header's `typ` must be `t` (RFC 9068 §4 for `at+jwt`); with
/// `None` it must be absent or `JWT` (ID tokens, OIDC Core §2). Expiry, issuer and audience
/// are not checked here: callers do that with their own `now`.
pub fn verify_jwt(
    token: &str,
    expected_typ: Option<&str>,
    keys: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<serde_json::Value, VerifyError> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
        typ: Option<String>,
        crit: Option<serde_json::Value>,
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed);
    };
    let header_bytes = B64.decode(h).map_err(|_| VerifyError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| VerifyError::Malformed)?;
    // Never `none` (RFC 8725 §3.2), never an algorithm chosen by the token alone.
    let alg = SigningAlg::parse(&header.alg).ok_or(VerifyError::UnsupportedAlg)?;
    // RFC 7515 §4.1.11: we understand no extension, so a token that requires one is refused.
    if header.crit.is_some() {
        return Err(VerifyError::Critical);
    }
    let key = header.kid.as_deref().and_then(&keys).ok_or(VerifyError::UnknownKey)?;
    if key.alg != alg {
        return Err(VerifyError::AlgMismatch);
    }
    if !typ_matches(header.typ.as_deref(), expected_typ) {
        return Err(VerifyError::WrongType);
    }
    let signature = B64.decode(s).map_err(|_| VerifyError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    key.verify(signing_input.as_bytes(), &signature)?;
    let payload = B64.decode(p).map_err(|_| VerifyError::Malformed)?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    if !claims.is_object() {
        return Err(VerifyError::Malformed);
    }
    Ok(claims)
}

/// RFC 7515 §4.1.9: media types compare case-insensitively and `application/` may be left out
/// (RFC 9068 §4 allows `application/at+jwt` too).
fn typ_matches(got: Option<&str>, expected: Option<&str>) -> bool {
    let norm = |t: &str| {
        let t = t.to_ascii_lowercase();
        t.strip_prefix("application/").map(str::to_owned).unwrap_or(t)
    };
    match (got, expected) {
        (got, Some(want)) => got.is_some_and(|g| norm(g) == norm(want)),
        (None, None) => true,
        (Some(g), None) => norm(g) == "jwt",
    }
}

/// Lets openidconnect sign ID tokens (`CoreIdToken::new`) with ring.
impl openidconnect::PrivateSigningKey for SigningKey {
    type VerificationKey = openidconnect::core::CoreJsonWebKey;

    fn sign(
        &self,
        signature_alg: &openidconnect::core::CoreJwsSigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, openidconnect::SigningError> {
        use openidconnect::core::CoreJwsSigningAlgorithm as A;
        let wanted = match signature_alg {
            A::EcdsaP256Sha256 => Some(SigningAlg::ES256),
            A::RsaSsaPkcs1V15Sha256 => Some(SigningAlg::RS256),
            A::EdDsa => Some(SigningAlg::EdDSA),
            _ => None,
        };
        if wanted != Some(self.alg) {
            return Err(openidconnect::SigningError::UnsupportedAlg(format!("{signature_alg:?}")));
        }
        self.sign_bytes(message).map_err(|_| openidconnect::SigningError::CryptoError)
    }

    fn as_verification_key(&self) -> openidconnect::core::CoreJsonWebKey {
        self.oidc_jwk.clone()
    }
}

#[cfg(test)]
mod tests;
