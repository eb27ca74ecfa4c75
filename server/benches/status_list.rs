//! Criterion: encoding the token status list (zlib DEFLATE, base64url) for 1,000,000 issued
//! tokens, with 0.1 %, 1 % and 10 % of them revoked, and decoding it as a verifier does. Prints
//! each list's encoded size once.

use criterion::{Criterion, criterion_group, criterion_main};
use pramaan_server::oidc::status_list::StatusBits;

/// `n` tokens, every `every`-th revoked (spread like revocations of unrelated tokens).
fn list(n: usize, every: usize) -> StatusBits {
    let mut s = StatusBits::new(n);
    // A fixed pseudo-random spread (xorshift), so the bits do not compress like a pattern.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..n / every {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = s.set(usize::try_from(x % n as u64).unwrap_or(0));
    }
    s
}

fn bench(c: &mut Criterion) {
    for (label, every) in [("0.1%", 1000), ("1%", 100), ("10%", 10)] {
        let s = list(1_000_000, every);
        let lst = s.encode();
        println!("status list, 1,000,000 tokens, {label} revoked: lst is {} bytes", lst.len());
        c.bench_function(&format!("status_list/encode_1m_{label}"), |b| b.iter(|| s.encode()));
        c.bench_function(&format!("status_list/decode_1m_{label}"), |b| b.iter(|| StatusBits::decode(&lst)));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
