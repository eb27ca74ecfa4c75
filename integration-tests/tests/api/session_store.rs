//! The `SessionStore` contract, run against the backend `session_store_under_test()` picks
//! (memory by default, Redis with `PRAMAAN_TEST_REDIS_URL`). Expiry tests sleep through real
//! TTLs: the stores read their own clocks (Redis has no other), so that is the only way.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pramaan_integration_tests::sessions::{backend_name, session_store_under_test};
use pramaan_server::sessions::{SessionStore, Throttle};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(150);
/// Comfortably past `SHORT`, even on a busy machine.
const PAST_SHORT: Duration = Duration::from_millis(400);

fn key(name: &str) -> String {
    format!("{name}:{}", uuid::Uuid::new_v4())
}

fn sorted(mut members: Vec<String>) -> Vec<String> {
    members.sort();
    members
}

/// Runs `n` copies of `op` that all start together, and collects their results.
async fn concurrently<T, F, Fut>(store: &Arc<dyn SessionStore>, n: usize, op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn SessionStore>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let barrier = Arc::clone(&barrier);
        let work = op(Arc::clone(store), i);
        tasks.spawn(async move {
            barrier.wait().await;
            work.await
        });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_value_can_be_read_back_and_deleted() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let k = key("session");

    assert_eq!(store.get(&k).await.unwrap(), None);
    store.put(&k, b"\x00binary\xffvalue", LONG).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"\x00binary\xffvalue"[..]));

    assert!(store.delete(&k).await.unwrap(), "deleting a live value reports it");
    assert_eq!(store.get(&k).await.unwrap(), None);
    assert!(!store.delete(&k).await.unwrap(), "deleting a missing key reports nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_both_the_value_and_the_ttl() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let lengthened = key("lengthened");
    let shortened = key("shortened");

    store.put(&lengthened, b"first", SHORT).await.unwrap();
    store.put(&lengthened, b"second", LONG).await.unwrap();
    store.put(&shortened, b"first", LONG).await.unwrap();
    store.put(&shortened, b"second", SHORT).await.unwrap();
    assert_eq!(store.get(&lengthened).await.unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(store.get(&shortened).await.unwrap().as_deref(), Some(&b"second"[..]));

    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.get(&lengthened).await.unwrap().as_deref(),
        Some(&b"second"[..]),
        "the second put's longer TTL replaced the first"
    );
    assert_eq!(store.get(&shortened).await.unwrap(), None, "the second put's shorter TTL applies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_fifty_concurrent_put_if_absent_calls_exactly_one_wins() {
    let test = session_store_under_test().await;
    let k = key("jti");

    let results = concurrently(&test.store, 50, |store, i| {
        let k = k.clone();
        async move {
            let won = store.put_if_absent(&k, format!("caller-{i}").as_bytes(), LONG).await.unwrap();
            (i, won)
        }
    })
    .await;

    let winners: Vec<usize> = results.iter().filter(|(_, won)| *won).map(|(i, _)| *i).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        test.store.get(&k).await.unwrap(),
        Some(format!("caller-{}", winners[0]).into_bytes()),
        "the stored value is the winner's"
    );
    assert!(!test.store.put_if_absent(&k, b"late", LONG).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_and_then_behave_as_missing() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let plain = key("plain");
    let marker = key("marker");
    let code = key("code");
    let zero = key("zero");

    store.put(&plain, b"v", SHORT).await.unwrap();
    assert!(store.put_if_absent(&marker, b"v", SHORT).await.unwrap());
    store.put(&code, b"v", SHORT).await.unwrap();
    store.put(&zero, b"v", Duration::ZERO).await.unwrap();
    assert!(store.get(&plain).await.unwrap().is_some(), "live before its TTL");

    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get(&plain).await.unwrap(), None);
    assert!(!store.delete(&plain).await.unwrap(), "an expired value is not 'deleted'");
    assert_eq!(store.take(&code).await.unwrap(), None);
    assert_eq!(store.get(&zero).await.unwrap(), None, "a zero TTL is one millisecond");
    assert!(
        store.put_if_absent(&marker, b"again", LONG).await.unwrap(),
        "an expired marker no longer blocks"
    );
    assert_eq!(store.get(&marker).await.unwrap().as_deref(), Some(&b"again"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_returns_the_value_exactly_once() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let k = key("code");

    store.put(&k, b"grant", LONG).await.unwrap();
    assert_eq!(store.take(&k).await.unwrap().as_deref(), Some(&b"grant"[..]));
    assert_eq!(store.take(&k).await.unwrap(), None);
    assert_eq!(store.get(&k).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_fifty_concurrent_takers_exactly_one_gets_the_value() {
    let test = session_store_under_test().await;
    let k = key("code");
    test.store.put(&k, b"grant", LONG).await.unwrap();

    let results = concurrently(&test.store, 50, |store, _| {
        let k = k.clone();
        async move { store.take(&k).await.unwrap() }
    })
    .await;

    let got: Vec<Vec<u8>> = results.into_iter().flatten().collect();
    assert_eq!(got, vec![b"grant".to_vec()]);
    assert_eq!(test.store.get(&k).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tasks_of_twenty_parallel_increments_count_exactly_one_thousand() {
    let test = session_store_under_test().await;
    let k = key("rate");

    let per_task = concurrently(&test.store, 50, |store, _| {
        let k = k.clone();
        async move {
            let mut increments = JoinSet::new();
            for _ in 0..20 {
                let (store, k) = (Arc::clone(&store), k.clone());
                increments.spawn(async move { store.increment(&k, LONG).await });
            }
            increments.join_all().await
        }
    })
    .await;

    let counts: Vec<u64> = per_task.into_iter().flatten().map(Result::unwrap).collect();
    assert_eq!(counts.len(), 1000);
    let distinct: BTreeSet<u64> = counts.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=1000).collect::<BTreeSet<u64>>(),
        "every increment saw its own count: none lost, none repeated"
    );
    assert_eq!(test.store.increment(&k, LONG).await.unwrap(), 1001);
}

#[tokio::test]
async fn a_decrement_takes_back_one_count_keeps_the_window_and_never_creates_a_counter() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let k = key("refund");
    store.decrement(&k).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), None, "a missing counter stays missing");
    assert_eq!(store.increment(&k, SHORT).await.unwrap(), 1);
    assert_eq!(store.increment(&k, SHORT).await.unwrap(), 2);
    store.decrement(&k).await.unwrap();
    assert_eq!(store.increment(&k, SHORT).await.unwrap(), 2, "one count taken back");
    for _ in 0..5 {
        store.decrement(&k).await.unwrap();
    }
    assert_eq!(store.increment(&k, LONG).await.unwrap(), 1, "never below zero");
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get(&k).await.unwrap(), None, "the window set by the first hit still ends it");
    store.decrement(&k).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_window_is_fixed_by_its_first_hit() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let k = key("rate");
    let ttl = Duration::from_millis(500);

    let first_hit = Instant::now();
    assert_eq!(store.increment(&k, ttl).await.unwrap(), 1);
    // Keep hitting for half the window: were any of these to extend the TTL, the counter
    // would live until at least 250 + 500 ms.
    let mut count = 1;
    let mut last_hit = first_hit;
    while first_hit.elapsed() < Duration::from_millis(250) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last_hit = Instant::now();
        count += 1;
        assert_eq!(store.increment(&k, ttl).await.unwrap(), count);
    }
    assert!(count >= 3, "only {count} hits inside the window");

    tokio::time::sleep_until((first_hit + Duration::from_millis(650)).into()).await;
    assert!(
        last_hit.elapsed() < ttl,
        "the machine stalled: the check ran after a TTL measured from the last hit had passed"
    );
    assert_eq!(store.get(&k).await.unwrap(), None, "the window ended 500 ms after the first hit");
    assert_eq!(store.increment(&k, ttl).await.unwrap(), 1, "a new window starts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_lists_its_live_members_and_deletes_them_all() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let user = key("user-sessions");
    let (a, b, short, deleted) = (key("s"), key("s"), key("s"), key("s"));

    store.put_indexed(&user, &a, b"a", LONG).await.unwrap();
    store.put_indexed(&user, &b, b"b", LONG).await.unwrap();
    store.put_indexed(&user, &short, b"short", SHORT).await.unwrap();
    store.put_indexed(&user, &deleted, b"deleted", LONG).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().as_deref(), Some(&b"a"[..]), "put_indexed stores");
    assert!(store.delete(&deleted).await.unwrap());
    assert_eq!(
        sorted(store.index_members(&user).await.unwrap()),
        sorted(vec![a.clone(), b.clone(), short.clone()])
    );

    // The index lives as long as its longest-lived member, not as long as the last one added.
    let other = key("user-sessions");
    let (early, late) = (key("s"), key("s"));
    store.put_indexed(&other, &late, b"l", LONG).await.unwrap();
    store.put_indexed(&other, &early, b"e", SHORT).await.unwrap();

    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        sorted(store.index_members(&user).await.unwrap()),
        sorted(vec![a.clone(), b.clone()]),
        "an expired member disappears from the index"
    );
    assert_eq!(store.index_members(&other).await.unwrap(), vec![late.clone()]);

    assert_eq!(store.delete_index(&user).await.unwrap(), 2, "counts live members only");
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.get(&b).await.unwrap(), None);
    assert!(store.index_members(&user).await.unwrap().is_empty());
    assert_eq!(store.delete_index(&user).await.unwrap(), 0);
    assert_eq!(store.get(&late).await.unwrap().as_deref(), Some(&b"l"[..]), "other indexes are untouched");
    assert!(store.index_members(&key("never-written")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_with_different_prefixes_do_not_see_each_others_keys() {
    let first = session_store_under_test().await;
    let second = session_store_under_test().await;
    let (one, two) = (&first.store, &second.store);

    one.put("session:shared-name", b"first", LONG).await.unwrap();
    assert_eq!(two.get("session:shared-name").await.unwrap(), None);
    assert!(two.put_if_absent("session:shared-name", b"second", LONG).await.unwrap());
    assert_eq!(one.increment("rate:shared-name", LONG).await.unwrap(), 1);
    assert_eq!(two.increment("rate:shared-name", LONG).await.unwrap(), 1);
    one.put_indexed("user:shared", "session:in-first", b"x", LONG).await.unwrap();
    assert!(two.index_members("user:shared").await.unwrap().is_empty());
    assert_eq!(two.delete_index("user:shared").await.unwrap(), 0);

    assert_eq!(two.take("session:shared-name").await.unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(one.get("session:shared-name").await.unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(one.get("session:in-first").await.unwrap().as_deref(), Some(&b"x"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_store_answers_ping() {
    let test = session_store_under_test().await;
    assert_eq!(test.backend, backend_name());
    test.store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_hundred_parallel_requests_against_a_limit_of_ten_exactly_ten_pass() {
    let test = session_store_under_test().await;
    let k = key("gcra");
    // Ten a minute; every request at the same instant of the caller's clock.
    let (now, interval, burst) = (1_900_000_000_000_000i64, 6_000_000i64, 60_000_000i64);
    let answers = concurrently(&test.store, 100, |store, _| {
        let k = k.clone();
        async move { store.throttle(&k, now, interval, burst).await.unwrap() }
    })
    .await;
    let mut ahead: Vec<Duration> = answers
        .iter()
        .filter_map(|a| if let Throttle::Passed { ahead } = a { Some(*ahead) } else { None })
        .collect();
    ahead.sort();
    assert_eq!(
        ahead,
        (1..=10).map(|i| Duration::from_secs(6 * i)).collect::<Vec<_>>(),
        "exactly the burst passes"
    );
    for a in &answers {
        if let Throttle::Refused { wait } = a {
            assert_eq!(*wait, Duration::from_secs(6), "the refused wait one interval");
        }
    }
    // One interval later exactly one more passes; refused requests counted nothing.
    let at = |t: i64| test.store.throttle(&k, t, interval, burst);
    assert_eq!(at(now + interval - 1).await.unwrap(), Throttle::Refused { wait: Duration::from_micros(1) });
    assert_eq!(at(now + interval).await.unwrap(), Throttle::Passed { ahead: Duration::from_secs(60) });
    assert!(matches!(at(now + interval).await.unwrap(), Throttle::Refused { .. }));
    // Another key is another limit.
    let other = test.store.throttle(&key("gcra"), now, interval, burst).await.unwrap();
    assert_eq!(other, Throttle::Passed { ahead: Duration::from_secs(6) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_are_counted_one_by_one_and_the_key_goes_with_the_last() {
    let test = session_store_under_test().await;
    let k = key("holders");
    test.store.release(&k).await.unwrap();
    assert_eq!(test.store.get(&k).await.unwrap(), None, "letting go of nothing creates nothing");
    let counts = concurrently(&test.store, 200, |store, _| {
        let k = k.clone();
        async move { store.hold(&k, LONG).await.unwrap() }
    })
    .await;
    assert_eq!(
        counts.into_iter().collect::<BTreeSet<_>>(),
        (1..=200).collect::<BTreeSet<_>>(),
        "every holder saw its own count: none lost, none repeated"
    );
    concurrently(&test.store, 199, |store, _| {
        let k = k.clone();
        async move { store.release(&k).await.unwrap() }
    })
    .await;
    assert_eq!(test.store.hold(&k, LONG).await.unwrap(), 2, "one holder left, and this one");
    test.store.release(&k).await.unwrap();
    test.store.release(&k).await.unwrap();
    assert_eq!(test.store.get(&k).await.unwrap(), None, "the last holder took the key with it");
    test.store.release(&k).await.unwrap();
    assert_eq!(test.store.hold(&k, LONG).await.unwrap(), 1, "never below zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hold_renews_the_expiry_and_a_forgotten_holder_is_dropped_after_it() {
    let test = session_store_under_test().await;
    let store = &test.store;
    let k = key("renewed");
    let ttl = Duration::from_millis(800);
    assert_eq!(store.hold(&k, ttl).await.unwrap(), 1);
    // Holders keep coming for twice the TTL: each renews it, so the first one's count stays.
    for n in 2..=6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.hold(&k, ttl).await.unwrap(), n, "the count outlives the first holder's TTL");
    }
    // None of them let go (their instance died): forgotten one TTL after the last.
    tokio::time::sleep(ttl + PAST_SHORT).await;
    assert_eq!(store.get(&k).await.unwrap(), None);
    assert_eq!(store.hold(&k, ttl).await.unwrap(), 1);
}
