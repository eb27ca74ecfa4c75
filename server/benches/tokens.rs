//! Token signing and verification per algorithm, over a typical RFC 9068 access-token claim
//! set. `cargo bench -p pramaan-server --bench tokens`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use pramaan_server::crypto::signing::generate_pkcs8;
use pramaan_server::crypto::{SigningAlg, SigningKey, verify_jwt};
use serde_json::json;

/// RFC 9068 §2.2: what a client-credentials access token carries.
fn claims() -> serde_json::Value {
    json!({
        "iss": "https://login.example.gov.in",
        "sub": "registry-sync",
        "aud": "https://registry.example.gov.in",
        "exp": 1_900_000_300,
        "iat": 1_900_000_000,
        "jti": "3f1c1e0e-5d0c-4d7b-9c4b-0d3c1f0e9a11",
        "client_id": "registry-sync",
        "scope": "registry.read registry.write"
    })
}

fn tokens(c: &mut Criterion) {
    let claims = claims();
    for alg in SigningAlg::ALL {
        let key = SigningKey::from_pkcs8(alg, &generate_pkcs8(alg, 2048).unwrap()).unwrap();
        let verifying = key.verifying_key().clone();
        let token = key.sign_jwt("at+jwt", &claims).unwrap();
        c.bench_function(&format!("sign_jwt/{alg}"), |b| {
            b.iter(|| key.sign_jwt("at+jwt", std::hint::black_box(&claims)).unwrap())
        });
        c.bench_function(&format!("verify_jwt/{alg}"), |b| {
            b.iter(|| {
                verify_jwt(std::hint::black_box(&token), Some("at+jwt"), |kid| {
                    (kid == verifying.kid()).then(|| verifying.clone())
                })
                .unwrap()
            })
        });
    }
}

criterion_group!(benches, tokens);
criterion_main!(benches);
