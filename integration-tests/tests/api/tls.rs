//! HTTPS end to end with rustls: a certificate chain made here (CA and server certificate),
//! the client trusting only that CA.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use pramaan_integration_tests::browser::{REDIRECT, authorize_url, pkce, public_client};
use pramaan_integration_tests::spawn_app_with;

fn key() -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap())
        .unwrap()
}

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, ca: bool) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(if ca { 1 } else { 2 }).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name())).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap()).unwrap();
    } else {
        let ctx = b.x509v3_context(issuer.map(|(c, _)| &**c), None);
        let san = SubjectAlternativeName::new().ip("127.0.0.1").dns("localhost").build(&ctx).unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap()).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256()).unwrap();
    b.build()
}

#[tokio::test]
async fn the_server_speaks_https_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = key();
    let ca = cert("Pramaan test CA", &ca_key, None, true);
    let server_key = key();
    let server = cert("127.0.0.1", &server_key, Some((&ca, &ca_key)), false);
    let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_file, server.to_pem().unwrap()).unwrap();
    std::fs::write(&key_file, server_key.private_key_to_pem_pkcs8().unwrap()).unwrap();

    let app = spawn_app_with(|s| {
        s.http.tls_certificate = Some(cert_file.clone());
        s.http.tls_private_key = Some(key_file.clone());
    })
    .await;
    assert!(app.address.starts_with("https://127.0.0.1:"), "{}", app.address);
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca.to_pem().unwrap()).unwrap())
        .build()
        .unwrap();
    let r = trusting.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // RFC 6797: an https issuer pins browsers to https, on every response (errors too).
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let missing = trusting.get(format!("{}/no-such-page", app.address)).send().await.unwrap();
    assert_eq!(missing.headers()["strict-transport-security"], "max-age=31536000");
    let meta: serde_json::Value = trusting
        .get(format!("{}/.well-known/oauth-authorization-server", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.address.as_str(), "the issuer is https");
    // A client that does not trust the CA refuses the connection; plain HTTP gets nowhere.
    assert!(reqwest::Client::new().get(format!("{}/healthz", app.address)).send().await.is_err());
    let plain = format!("http://127.0.0.1:{}/healthz", app.port);
    let plain_ok = reqwest::Client::new().get(plain).send().await.is_ok_and(|r| r.status().is_success());
    assert!(!plain_ok, "plain HTTP must not be served on the TLS port");

    // On an https issuer the session cookie is __Host- prefixed and Secure.
    let c = public_client(&app, &[]).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &c.id, REDIRECT, "openid", &challenge, &[]);
    let no_redirects = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca.to_pem().unwrap()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-pramaan="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Domain="), "__Host- cookies have no Domain");
}
