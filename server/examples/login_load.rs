//! The load generator of `bench/login.sh`: password + authenticator-app logins through the
//! real pages of a running Pramaan, as a browser makes them (authorize, login page, password,
//! second-factor page, code), and the raw argon2id rate they are compared with.
//!
//!   login_load seed N                  insert N staff accounts `bench-<i>` (role vaccinator,
//!                                      password $BENCH_PASSWORD) through the library, with the
//!                                      server's PRAMAAN__* environment
//!   login_load argon2 SECONDS          argon2id verifications per second, one per core at once
//!   login_load run URL CLIENT N C SECS enroll every account's app at its first login, then
//!                                      sign in for SECS seconds with C concurrent browsers
//!
//! Each account can sign in once per 30-second TOTP step (a code is never accepted twice), so
//! N must exceed 30 × the login rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pramaan_server::clock::SystemClock;
use pramaan_server::crypto::{PasswordHasher, PasswordParams};
use pramaan_server::domain::{NewUser, RoleName, Username};
use pramaan_server::mfa::totp;
use pramaan_server::state::{Core, InitMode};
use pramaan_server::store::{roles, users, write_transaction};
use secrecy::SecretString;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn password() -> String {
    std::env::var("BENCH_PASSWORD").unwrap_or_else(|_| "bench lantern orbit 42".into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["seed", n] => seed(n.parse()?).await,
        ["argon2", secs] => argon2(secs.parse()?).await,
        ["run", url, client, n, c, secs] => run(url, client, n.parse()?, c.parse()?, secs.parse()?).await,
        _ => {
            Err("usage: login_load seed N | argon2 SECONDS | run URL CLIENT_ID N CONCURRENCY SECONDS".into())
        }
    }
}

async fn seed(n: usize) -> Result<(), Error> {
    let settings = pramaan_server::config::load(None, std::env::vars())?;
    let core = Core::init(settings, Arc::new(SystemClock), InitMode::Command)?;
    // One hash for all: each account still verifies it with full argon2 work at login.
    let hash = core.passwords.hash(SecretString::from(password())).await?;
    let new = (0..n)
        .map(|i| {
            Ok(NewUser {
                username: Username::parse(&format!("bench-{i}"))?,
                display_name: format!("Bench {i}"),
                phone: None,
                email: None,
                org_unit_id: None,
                password_hash: Some(hash.clone()),
                must_change_password: false,
            })
        })
        .collect::<Result<Vec<_>, pramaan_server::domain::Invalid>>()?;
    let role = RoleName::parse("vaccinator")?;
    let now = chrono::Utc::now();
    core.db
        .run(move |c| {
            write_transaction(c, |c| {
                let ids = users::insert_many(c, &new, now)?;
                let pairs: Vec<_> = ids.into_iter().map(|id| (id, role.clone())).collect();
                roles::assign_many(c, &pairs, now)
            })
        })
        .await?;
    println!("seeded {n} accounts");
    Ok(())
}

async fn argon2(secs: u64) -> Result<(), Error> {
    let settings = pramaan_server::config::load(None, std::env::vars())?;
    let p = &settings.password;
    let params = PasswordParams {
        memory_kib: p.argon2_memory_kib,
        iterations: p.argon2_iterations,
        parallelism: p.argon2_parallelism,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hasher = Arc::new(PasswordHasher::new(params, cores)?);
    let stored = hasher.hash(SecretString::from(password())).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cores {
        let (hasher, stored, done) = (hasher.clone(), stored.clone(), done.clone());
        tasks.spawn(async move {
            while Instant::now() < until {
                let _ = hasher.verify(Some(stored.clone()), SecretString::from(password())).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    println!("argon2id verifications/s: {:.1}", done.load(Ordering::Relaxed) as f64 / secs as f64);
    Ok(())
}

/// One browser's login: returns `Ok(())` once the client's redirect URI carries a code.
/// `enroll` answers the setup page (first login) and returns the key it showed.
async fn login(base: &str, client: &str, user: &str, key: Option<&str>) -> Result<String, Error> {
    let http =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = format!(
        "{base}/authorize?response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb\
         &scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256"
    );
    let page = follow(&http, base, http.get(&authorize).send().await?).await?;
    let html = page.text().await?;
    let form = [
        ("csrf", hidden(&html, "csrf")?),
        ("request", hidden(&html, "request")?),
        ("username", user.to_owned()),
        ("password", password()),
    ];
    let page = follow(&http, base, http.post(format!("{base}/login")).form(&form).send().await?).await?;
    let html = page.text().await?;
    let (csrf, request) = (hidden(&html, "csrf")?, hidden(&html, "request")?);
    let now = chrono::Utc::now().timestamp();
    let (key, path, method) = match key {
        Some(k) => (k.to_owned(), "/login/factor", "totp"),
        None => (manual_key(&html)?, "/login/factor/enroll", "totp"),
    };
    let code = totp::code_for_key(&key, now).ok_or("no code")?;
    let form = [("csrf", csrf), ("request", request), ("method", method.to_owned()), ("code", code)];
    let resp = http.post(format!("{base}{path}")).form(&form).send().await?;
    let resp = if resp.status().is_success() {
        // The recovery codes after a setup: continue.
        let html = resp.text().await?;
        let next = html.split("class=\"button\" href=\"").nth(1).and_then(|s| s.split('"').next());
        let next = next.ok_or("no continue link")?.replace("&amp;", "&");
        http.get(format!("{base}{next}")).send().await?
    } else {
        resp
    };
    let last = follow(&http, base, resp).await?;
    let to = last.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if to.contains("code=") {
        Ok(key)
    } else {
        Err(format!("no code for {user}: {} {to}", last.status()).into())
    }
}

async fn follow(
    http: &reqwest::Client,
    base: &str,
    mut resp: reqwest::Response,
) -> Result<reqwest::Response, Error> {
    for _ in 0..8 {
        let Some(to) = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
            return Ok(resp);
        };
        if to.starts_with("http") {
            return Ok(resp);
        }
        resp = http.get(format!("{base}{to}")).send().await?;
    }
    Err("too many redirects".into())
}

fn hidden(html: &str, name: &str) -> Result<String, Error> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).ok_or_else(|| format!("no field {name}"))? + marker.len();
    let end = html[start..].find('"').ok_or("unterminated value")? + start;
    Ok(html[start..end].to_owned())
}

fn manual_key(html: &str) -> Result<String, Error> {
    let start = html.find("<code id=\"manual-key\">").ok_or("no setup page")? + 22;
    let end = html[start..].find("</code>").ok_or("unterminated key")? + start;
    Ok(html[start..end].to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(base: &str, client: &str, n: usize, concurrency: usize, secs: u64) -> Result<(), Error> {
    // First logins: every account sets up its app (not measured).
    let keys: Arc<Vec<std::sync::Mutex<Option<String>>>> =
        Arc::new((0..n).map(|_| std::sync::Mutex::new(None)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (keys, next, base, client) = (keys.clone(), next.clone(), base.to_owned(), client.to_owned());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys.len() {
                    return Ok::<_, Error>(());
                }
                let key = login(&base, &client, &format!("bench-{i}"), None).await?;
                *keys[i].lock().map_err(|_| "poisoned")? = Some(key);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    eprintln!("login_load: {n} apps set up");
    // Each setup used its step: start measuring in a fresh one.
    let now = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs((30 - now % 30) as u64 + 1)).await;
    let last_step: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let keys: Arc<Vec<Option<String>>> =
        Arc::new(keys.iter().map(|k| k.lock().ok().and_then(|k| k.clone())).collect());
    println!("# logins alone");
    window(base, client, &keys, &last_step, concurrency, secs).await?;
    // Tells bench/login.sh to start the token traffic that runs beside the second window.
    if let Ok(mark) = std::env::var("BENCH_MARK") {
        std::fs::write(mark, b"measuring\n")?;
    }
    println!("# logins beside token traffic");
    window(base, client, &keys, &last_step, concurrency, secs).await?;
    Ok(())
}

/// `secs` seconds of logins by `concurrency` browsers; prints the rate and latencies.
async fn window(
    base: &str,
    client: &str,
    keys: &Arc<Vec<Option<String>>>,
    last_step: &Arc<Vec<AtomicI64>>,
    concurrency: usize,
    secs: u64,
) -> Result<(), Error> {
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let server = std::env::var("BENCH_SERVER_PID").ok();
    let cpu0 = (server.as_deref().map(cpu_ms), cpu_ms("self"));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (keys, last_step, base, client) =
            (keys.clone(), last_step.clone(), base.to_owned(), client.to_owned());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let mut i = w;
            while Instant::now() < until {
                let step = chrono::Utc::now().timestamp() / 30;
                i = (i + concurrency) % keys.len();
                // An account already signed in during this step waits for the next.
                if last_step[i].swap(step, Ordering::Relaxed) == step {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let key = keys[i].clone().ok_or("no key")?;
                let t0 = Instant::now();
                match login(&base, &client, &format!("bench-{i}"), Some(&key)).await {
                    Ok(_) => latencies.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        failures += 1;
                        if failures < 3 {
                            eprintln!("login_load: {e}");
                        }
                    }
                }
            }
            Ok::<_, Error>((latencies, failures))
        });
    }
    let (mut all, mut failures) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, f) = r??;
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_login = |a: f64, b: f64| if all.is_empty() { 0.0 } else { (b - a) / all.len() as f64 };
    let generator_ms = per_login(cpu0.1, cpu_ms("self"));
    let server_ms = match (cpu0.0, server.as_deref()) {
        (Some(a), Some(pid)) => per_login(a, cpu_ms(pid)),
        _ => 0.0,
    };
    all.sort_by(f64::total_cmp);
    println!(
        "logins/s: {:.1}\nlogins: {}\nfailures: {failures}\np50 ms: {:.0}\np99 ms: {:.0}\n\
         server cpu ms/login: {server_ms:.1}\ngenerator cpu ms/login: {generator_ms:.1}",
        all.len() as f64 / elapsed,
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    Ok(())
}

/// User + system CPU time of process `pid` ("self" for this one), in milliseconds.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
    // USER_HZ is 100 on Linux: a tick is 10 ms.
    ticks * 10.0
}
