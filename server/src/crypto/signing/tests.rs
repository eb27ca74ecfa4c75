use super::*;
use serde_json::json;

fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::from_pkcs8(alg, &generate_pkcs8(alg, 2048).unwrap()).unwrap()
}

fn keys_of<'a>(ks: &'a [&'a SigningKey]) -> impl Fn(&str) -> Option<VerifyingKey> + 'a {
    move |kid| ks.iter().find(|k| k.kid() == kid).map(|k| k.verifying_key().clone())
}

/// A typical RFC 9068 §2.2 access-token claim set.
fn claims() -> serde_json::Value {
    json!({
        "iss": "https://login.example.gov.in", "sub": "registry", "aud": "https://registry.example.gov.in",
        "exp": 1_900_000_300, "iat": 1_900_000_000, "jti": "3f1c1e0e-5d0c-4d7b-9c4b-0d3c1f0e9a11",
        "client_id": "registry", "scope": "registry.read registry.write"
    })
}

fn b64json(v: &serde_json::Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

/// An Ed25519 PKCS#8 v2 document (RFC 8410 §7 / RFC 5958) from a seed and public key.
fn ed25519_pkcs8(seed: &[u8], public: &[u8]) -> Vec<u8> {
    let mut der = hex::decode("3053020101300506032b657004220420").unwrap();
    der.extend_from_slice(seed);
    der.extend_from_slice(&hex::decode("a123032100").unwrap());
    der.extend_from_slice(public);
    der
}

#[test]
fn ed25519_matches_the_rfc_8037_known_answer() {
    // RFC 8037 Appendix A.1, A.3 and A.4.
    let d = B64.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
    let x = B64.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
    let k = SigningKey::from_pkcs8(SigningAlg::EdDSA, &ed25519_pkcs8(&d, &x)).unwrap();
    assert_eq!(k.public_jwk().x.as_deref(), Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"));
    let full = B64.decode("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k").unwrap();
    assert_eq!(k.kid(), B64.encode(&full[..16]));
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    assert_eq!(
        B64.encode(k.sign_bytes(input.as_bytes()).unwrap()),
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

#[test]
fn the_kid_is_the_rfc_7638_thumbprint_cut_to_16_bytes() {
    // RFC 7638 §3.1's example key and thumbprint.
    let jwk = PublicJwk {
        kty: "RSA".into(),
        use_: "sig".into(),
        alg: SigningAlg::RS256,
        kid: "2011-04-29".into(),
        crv: None,
        x: None,
        y: None,
        n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
        e: Some("AQAB".into()),
    };
    let full = B64.decode("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
    assert_eq!(thumbprint_kid(&jwk), B64.encode(&full[..16]));
}

#[test]
fn every_algorithm_round_trips_with_a_complete_header_and_jwk() {
    for alg in SigningAlg::ALL {
        let der = generate_pkcs8(alg, 2048).unwrap();
        let k = SigningKey::from_pkcs8(alg, &der).unwrap();
        assert_eq!(SigningKey::from_pkcs8(alg, &der).unwrap().kid(), k.kid(), "kid is stable");
        assert_eq!(k.kid(), thumbprint_kid(k.public_jwk()));
        let token = k.sign_jwt("at+jwt", &claims()).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": k.kid()}));
        let got = verify_jwt(&token, Some("at+jwt"), keys_of(&[&k])).unwrap();
        assert_eq!(got, claims());
        let jwk = serde_json::to_value(k.public_jwk()).unwrap();
        for member in ["kty", "alg", "use", "kid"] {
            assert!(jwk.get(member).is_some(), "{alg}: {member} missing");
        }
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none(), "no private members");
        assert_eq!(VerifyingKey::from_jwk(k.public_jwk()).unwrap(), *k.verifying_key());
    }
}

#[test]
fn openssl_verifies_what_ring_signed() {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    for alg in [SigningAlg::RS256, SigningAlg::ES256] {
        let der = generate_pkcs8(alg, 2048).unwrap();
        let k = SigningKey::from_pkcs8(alg, &der).unwrap();
        let pkey = PKey::private_key_from_pkcs8(&der).unwrap();
        let mut sig = k.sign_bytes(b"message").unwrap();
        if alg == SigningAlg::ES256 {
            // JWS carries R || S; OpenSSL wants DER.
            let r = openssl::bn::BigNum::from_slice(&sig[..32]).unwrap();
            let s = openssl::bn::BigNum::from_slice(&sig[32..]).unwrap();
            sig = openssl::ecdsa::EcdsaSig::from_private_components(r, s).unwrap().to_der().unwrap();
        }
        let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), &pkey).unwrap();
        v.update(b"message").unwrap();
        assert!(v.verify(&sig).unwrap(), "{alg}");
    }
}

#[test]
fn a_3072_bit_rsa_key_works_and_other_sizes_are_refused() {
    let k =
        SigningKey::from_pkcs8(SigningAlg::RS256, &generate_pkcs8(SigningAlg::RS256, 3072).unwrap()).unwrap();
    assert_eq!(B64.decode(k.public_jwk().n.as_deref().unwrap()).unwrap().len(), 384);
    assert!(matches!(generate_pkcs8(SigningAlg::RS256, 1024), Err(SigningError::RsaBits(1024))));
    assert!(
        SigningKey::from_pkcs8(SigningAlg::ES256, &generate_pkcs8(SigningAlg::EdDSA, 0).unwrap()).is_err()
    );
}

#[test]
fn a_tampered_token_is_refused() {
    for alg in SigningAlg::ALL {
        let k = key(alg);
        let token = k.sign_jwt("at+jwt", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut more = claims();
        more["scope"] = json!("registry.admin");
        let forged = format!("{}.{}.{}", parts[0], b64json(&more), parts[2]);
        assert_eq!(verify_jwt(&forged, Some("at+jwt"), keys_of(&[&k])), Err(VerifyError::BadSignature));
        let mut sig = B64.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
        assert_eq!(verify_jwt(&forged, Some("at+jwt"), keys_of(&[&k])), Err(VerifyError::BadSignature));
    }
}

#[test]
fn alg_none_and_hs256_keyed_with_the_public_key_are_refused() {
    let rsa = key(SigningAlg::RS256);
    let body = b64json(&claims());
    for alg in ["none", "None", "NONE", "HS256", "RS384", "es256", ""] {
        let header = b64json(&json!({"alg": alg, "typ": "at+jwt", "kid": rsa.kid()}));
        let input = format!("{header}.{body}");
        // The classic confusion: an HMAC keyed with the published public key.
        let mac_key =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &serde_json::to_vec(rsa.public_jwk()).unwrap());
        let mac = B64.encode(ring::hmac::sign(&mac_key, input.as_bytes()));
        for token in [format!("{input}."), format!("{input}.{mac}")] {
            assert_eq!(
                verify_jwt(&token, Some("at+jwt"), keys_of(&[&rsa])),
                Err(VerifyError::UnsupportedAlg)
            );
        }
    }
}

#[test]
fn a_header_alg_that_differs_from_the_keys_alg_is_refused() {
    let (ec, rsa, ed) = (key(SigningAlg::ES256), key(SigningAlg::RS256), key(SigningAlg::EdDSA));
    let body = b64json(&claims());
    // An ES256 signature presented under the RSA key's kid, and the reverse.
    for (signer, victim) in [(&ec, &rsa), (&rsa, &ec), (&ed, &ec)] {
        let header = b64json(&json!({"alg": signer.alg().as_str(), "typ": "at+jwt", "kid": victim.kid()}));
        let input = format!("{header}.{body}");
        let token = format!("{input}.{}", B64.encode(signer.sign_bytes(input.as_bytes()).unwrap()));
        assert_eq!(
            verify_jwt(&token, Some("at+jwt"), keys_of(&[&ec, &rsa, &ed])),
            Err(VerifyError::AlgMismatch)
        );
    }
}

#[test]
fn the_type_must_match() {
    let k = key(SigningAlg::ES256);
    let at = k.sign_jwt("at+jwt", &claims()).unwrap();
    assert_eq!(verify_jwt(&at, Some("logout+jwt"), keys_of(&[&k])), Err(VerifyError::WrongType));
    assert_eq!(verify_jwt(&at, None, keys_of(&[&k])), Err(VerifyError::WrongType));
    let long = k.sign_jwt("application/AT+JWT", &claims()).unwrap();
    assert!(verify_jwt(&long, Some("at+jwt"), keys_of(&[&k])).is_ok(), "RFC 9068 §4 allows the long form");
    let jwt = k.sign_jwt("JWT", &claims()).unwrap();
    assert!(verify_jwt(&jwt, None, keys_of(&[&k])).is_ok());
    assert_eq!(verify_jwt(&jwt, Some("at+jwt"), keys_of(&[&k])), Err(VerifyError::WrongType));
}

#[test]
fn malformed_tokens_and_unknown_keys_are_refused() {
    let k = key(SigningAlg::EdDSA);
    let good = k.sign_jwt("at+jwt", &claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let header = |v: serde_json::Value| b64json(&v);
    let sign = |h: String, p: String| {
        let input = format!("{h}.{p}");
        format!("{input}.{}", B64.encode(k.sign_bytes(input.as_bytes()).unwrap()))
    };
    let h = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": k.kid()});
    let cases = [
        (String::new(), VerifyError::Malformed),
        ("a.b".into(), VerifyError::Malformed),
        (format!("{good}.x"), VerifyError::Malformed),
        (format!("!!.{}.{}", parts[1], parts[2]), VerifyError::Malformed),
        (format!("{}.{}.{}", B64.encode("not json"), parts[1], parts[2]), VerifyError::Malformed),
        (format!("{}.{}.%%", parts[0], parts[1]), VerifyError::Malformed),
        (sign(header(h.clone()), B64.encode("[1,2]")), VerifyError::Malformed),
        (sign(header(h.clone()), B64.encode("not json")), VerifyError::Malformed),
        (sign(header(json!({"alg": "EdDSA", "typ": "at+jwt"})), b64json(&claims())), VerifyError::UnknownKey),
        (
            sign(header(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "other"})), b64json(&claims())),
            VerifyError::UnknownKey,
        ),
        (
            sign(
                header(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": k.kid(), "crit": ["exp"]})),
                b64json(&claims()),
            ),
            VerifyError::Critical,
        ),
        ("a".repeat(MAX_TOKEN_BYTES + 1), VerifyError::Malformed),
    ];
    for (token, want) in cases {
        assert_eq!(verify_jwt(&token, Some("at+jwt"), keys_of(&[&k])), Err(want.clone()), "{token:.60}");
    }
}

#[test]
fn openidconnect_builds_and_verifies_id_tokens_signed_by_ring() {
    use openidconnect::core::CoreJwsSigningAlgorithm as A;
    use openidconnect::core::{CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet};
    use openidconnect::{
        Audience, ClientId, EmptyAdditionalClaims, IssuerUrl, Nonce, StandardClaims, SubjectIdentifier,
    };
    let now = chrono::Utc::now();
    for (alg, core_alg) in [
        (SigningAlg::RS256, A::RsaSsaPkcs1V15Sha256),
        (SigningAlg::ES256, A::EcdsaP256Sha256),
        (SigningAlg::EdDSA, A::EdDsa),
    ] {
        let k = key(alg);
        let issuer = IssuerUrl::new("https://login.example.gov.in".into()).unwrap();
        let claims = CoreIdTokenClaims::new(
            issuer.clone(),
            vec![Audience::new("app".into())],
            now + chrono::TimeDelta::minutes(5),
            now,
            StandardClaims::new(SubjectIdentifier::new("user-1".into())),
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new("n-0S6_WzA2Mj".into())));
        let token = CoreIdToken::new(claims, &k, core_alg.clone(), None, None).unwrap();
        let jwks = CoreJsonWebKeySet::new(vec![openidconnect::PrivateSigningKey::as_verification_key(&k)]);
        let verifier = CoreIdTokenVerifier::new_public_client(ClientId::new("app".into()), issuer, jwks)
            .set_allowed_algs(vec![core_alg.clone()]);
        let verified = token.claims(&verifier, &Nonce::new("n-0S6_WzA2Mj".into())).unwrap();
        assert_eq!(verified.subject().as_str(), "user-1");
        // And our own verifier reads what openidconnect wrote (no `typ`, as OIDC Core allows).
        let ours = verify_jwt(&token.to_string(), None, keys_of(&[&k])).unwrap();
        assert_eq!(ours["sub"], "user-1");
        // A key refuses to sign for another algorithm.
        let other = if alg == SigningAlg::ES256 { A::RsaSsaPkcs1V15Sha256 } else { A::EcdsaP256Sha256 };
        assert!(openidconnect::PrivateSigningKey::sign(&k, &other, b"x").is_err());
    }
}
