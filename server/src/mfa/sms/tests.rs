use super::*;
use crate::sessions::memory::MemoryStore;

struct Setup {
    store: MemoryStore,
    digester: Digester,
    settings: SmsSettings,
    dir: tempfile::TempDir,
    gateway: LogGateway,
    user: UserId,
    phone: Phone,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let gateway = LogGateway::new(dir.path().join("sms.log"));
    Setup {
        store: MemoryStore::new(10_000),
        digester: Digester::new([9; 32]),
        settings: SmsSettings::default(),
        dir,
        gateway,
        user: UserId::from_string("u1".into()),
        phone: Phone::parse("+919812345678").unwrap(),
    }
}

impl Setup {
    async fn send(&self, tx: &str, now_us: i64) -> Result<(), Refusal> {
        let to = Recipient { user: &self.user, phone: &self.phone, ip: Some("10.0.0.1".parse().unwrap()) };
        send(&self.store, &self.gateway, &self.digester, &self.settings, tx, to, Some("id.example"), now_us)
            .await
            .unwrap()
    }

    /// The code in the last line the log gateway wrote.
    fn last_code(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("sms.log")).unwrap();
        let line = log.lines().last().unwrap().to_owned();
        assert!(line.contains("+919812345678"));
        line.split('\t').nth(2).unwrap()[..6].to_owned()
    }

    async fn verify(&self, tx: &str, code: &str, now_us: i64) -> Verdict {
        verify(&self.store, &self.digester, tx, code, now_us).await.unwrap()
    }
}

const T0: i64 = 1_800_000_000_000_000;
const SEC: i64 = 1_000_000;

#[tokio::test]
async fn a_sent_code_works_once_within_its_lifetime() {
    let s = setup();
    s.send("tx1", T0).await.unwrap();
    let code = s.last_code();
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert!(code_pending(&s.store, "tx1", T0).await.unwrap());
    assert_eq!(s.verify("tx2", &code, T0).await, Verdict::NoCode, "bound to its login transaction");
    assert_eq!(s.verify("tx1", &code, T0 + 299 * SEC).await, Verdict::Right);
    assert_eq!(s.verify("tx1", &code, T0 + 299 * SEC).await, Verdict::NoCode, "used once");
}

#[tokio::test]
async fn an_expired_or_wrong_code_is_refused_and_the_message_says_how_to_use_it() {
    let s = setup();
    s.send("tx1", T0).await.unwrap();
    let code = s.last_code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(s.verify("tx1", wrong, T0).await, Verdict::Wrong);
    assert_eq!(s.verify("tx1", "12345", T0).await, Verdict::Wrong);
    assert_eq!(s.verify("tx1", &code, T0 + 301 * SEC).await, Verdict::Expired);
    let log = std::fs::read_to_string(s.dir.path().join("sms.log")).unwrap();
    assert!(log.contains(&format!("@id.example #{code}")), "origin-bound code for WebOTP");
    assert!(log.contains("5 minutes"));
}

#[tokio::test]
async fn a_resend_waits_for_the_cooldown_and_replaces_the_code() {
    let s = setup();
    s.send("tx1", T0).await.unwrap();
    let first = s.last_code();
    assert_eq!(s.send("tx1", T0 + 10 * SEC).await, Err(Refusal::Cooldown(20)));
    s.send("tx1", T0 + 30 * SEC).await.unwrap();
    let second = s.last_code();
    if first != second {
        assert_eq!(s.verify("tx1", &first, T0 + 31 * SEC).await, Verdict::Wrong, "the old code is gone");
    }
    assert_eq!(s.verify("tx1", &second, T0 + 31 * SEC).await, Verdict::Right);
}

#[tokio::test]
async fn the_hourly_caps_hold_per_account_and_per_phone() {
    let mut s = setup();
    s.settings.per_user_hourly = 3;
    for i in 0..3 {
        s.send(&format!("tx{i}"), T0 + i * 31 * SEC).await.unwrap();
    }
    assert_eq!(s.send("tx9", T0 + 200 * SEC).await, Err(Refusal::Capped("user")));
    // Another account with the same phone: the phone's cap (5) still counts the first three.
    s.user = UserId::from_string("u2".into());
    s.send("tx10", T0 + 300 * SEC).await.unwrap();
    s.send("tx11", T0 + 400 * SEC).await.unwrap();
    assert_eq!(s.send("tx12", T0 + 500 * SEC).await, Err(Refusal::Capped("phone")));
    // The next clock hour starts afresh.
    s.send("tx13", T0 + 3_600 * SEC).await.unwrap();
}

#[tokio::test]
async fn a_message_the_gateway_did_not_take_is_not_charged() {
    let mut s = setup();
    s.settings.per_user_hourly = 1;
    // A directory where the file should be: every write fails.
    std::fs::create_dir(s.dir.path().join("sms.log")).unwrap();
    for i in 0..3 {
        assert!(matches!(s.send("tx1", T0 + i * SEC).await, Err(Refusal::Delivery(_))));
    }
    assert!(!code_pending(&s.store, "tx1", T0).await.unwrap(), "no code was recorded");
    std::fs::remove_dir(s.dir.path().join("sms.log")).unwrap();
    s.gateway = LogGateway::new(s.dir.path().join("sms.log"));
    s.send("tx1", T0 + 5 * SEC).await.expect("neither the cap nor the cooldown was charged");
}

#[test]
fn codes_are_six_digits_and_spread_over_all_values() {
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..200 {
        let c = six_digits();
        assert_eq!(c.len(), 6);
        firsts.insert(c.as_bytes()[0]);
    }
    assert_eq!(firsts.len(), 10, "leading zeros are kept and every digit appears");
}

#[tokio::test]
async fn the_per_address_cap_counts_an_ipv6_network_as_one() {
    let mut s = setup();
    s.settings.per_ip_hourly = 2;
    let phones = ["+919800000101", "+919800000102", "+919800000103"];
    let ips = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::77"];
    let mut results = Vec::new();
    for (i, (phone, ip)) in phones.iter().zip(ips).enumerate() {
        let user = UserId::from_string(format!("u{i}"));
        let phone = Phone::parse(phone).unwrap();
        let to = Recipient { user: &user, phone: &phone, ip: Some(ip.parse().unwrap()) };
        let tx = format!("tx{i}");
        results.push(
            send(&s.store, &s.gateway, &s.digester, &s.settings, &tx, to, None, T0 + i as i64 * SEC)
                .await
                .unwrap(),
        );
    }
    assert!(results[0].is_ok() && results[1].is_ok());
    assert_eq!(results[2], Err(Refusal::Capped("ip")), "three addresses of one /64 are one subscriber");
    assert_eq!(network_of("10.1.2.3".parse().unwrap()), "10.1.2.3");
    assert_eq!(network_of("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3", "each IPv4 client its own");
}

#[tokio::test]
async fn parallel_sends_for_one_account_send_one_message() {
    let s = std::sync::Arc::new(setup());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.spawn(async move { s.send(&format!("tx{i}"), T0).await });
    }
    let mut sent = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => sent += 1,
            Err(Refusal::Cooldown(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, 1, "the cooldown is the account's, settled atomically");
    let log = std::fs::read_to_string(s.dir.path().join("sms.log")).unwrap();
    assert_eq!(log.lines().count(), 1);
}
