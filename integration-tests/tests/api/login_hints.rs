//! `id_token_hint` and `max_age` at the authorization endpoint (OIDC Core §3.1.2.1), with the
//! `openidconnect` crate as the relying party and a clock the test moves: a hint is verified
//! (our signature, our issuer; an expired one still names its person), a login of anyone else
//! does not stand in for the person it names, and `max_age` is compared to the microsecond.

use std::time::Duration;

use chrono::TimeDelta;
use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    ProviderMetadataWithLogout, RedirectUrl, Scope,
};
use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, create_user, location, query_param, register_client,
};
use pramaan_integration_tests::two_factor::fixed_clock;
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;

type Rp = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn rp_http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn relying_party(app: &TestApp) -> Rp {
    let reg = register_client(
        app,
        &[
            "--name",
            "Vaccination portal",
            "--category",
            "government",
            "--first-party",
            "--grant",
            "authorization_code",
            "--scope",
            "registry.read",
            "--redirect-uri",
            REDIRECT,
        ],
    )
    .await;
    let metadata =
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &rp_http())
            .await
            .expect("discovery validates");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(reg.id),
        Some(ClientSecret::new(reg.secret.unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

/// What an authorization request came back to the client with.
#[derive(Debug)]
enum Back {
    /// A code was issued.
    Code,
    Error(String),
    /// It stopped at a page of this server (the login page).
    Page(String),
}

/// What the client adds to its authorization request.
#[derive(Default)]
struct Ask<'a> {
    prompt_none: bool,
    hint: Option<&'a CoreIdToken>,
    /// A hint sent as it is (malformed or forged).
    raw_hint: Option<String>,
    max_age: Option<Duration>,
}

/// Sends `browser` through an authorization request with `ask`, following this server's
/// redirects, and says where it ended.
async fn authorize(rp: &Rp, browser: &Browser, ask: Ask<'_>) -> Back {
    let (challenge, _verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    if ask.prompt_none {
        req = req.add_prompt(CoreAuthPrompt::None);
    }
    if let Some(h) = ask.hint {
        req = req.set_id_token_hint(h);
    }
    if let Some(h) = ask.raw_hint {
        req = req.add_extra_param("id_token_hint", h);
    }
    if let Some(m) = ask.max_age {
        req = req.set_max_age(m);
    }
    let (url, _, _) = req.url();
    let resp = browser.follow(browser.get(url.as_str()).await).await;
    if !resp.status().is_redirection() {
        return Back::Page(resp.url().path().to_owned());
    }
    let to = location(&resp);
    assert!(to.starts_with(REDIRECT), "{to}");
    match (query_param(&to, "code"), query_param(&to, "error")) {
        (Some(_), _) => Back::Code,
        (None, Some(e)) => Back::Error(e),
        _ => panic!("neither a code nor an error: {to}"),
    }
}

/// Signs `username` in through the login page and returns the ID token of the login.
async fn id_token_of(rp: &Rp, browser: &Browser, username: &str) -> CoreIdToken {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let back = browser.sign_in(url.as_str(), username, PASSWORD).await;
    let code = query_param(&location(&back), "code").expect("a code");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
        .expect("the code is exchanged");
    openidconnect::TokenResponse::id_token(&tokens).expect("an ID token").clone()
}

struct World {
    app: TestApp,
    clock: FixedClock,
    rp: Rp,
}

async fn world() -> World {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    create_user(&app, "asha", PASSWORD, false).await;
    create_user(&app, "ravi", PASSWORD, false).await;
    let rp = relying_party(&app).await;
    World { app, clock, rp }
}

#[tokio::test]
async fn an_id_token_hint_naming_someone_else_is_login_required_under_prompt_none_and_a_new_login_otherwise()
{
    let w = world().await;
    let asha = Browser::new(&w.app);
    let asha_token = id_token_of(&w.rp, &asha, "asha").await;
    let ravi_token = id_token_of(&w.rp, &Browser::new(&w.app), "ravi").await;
    // Time passes between the logins and the requests below (the fixed clock would make them
    // simultaneous, and a login no older than the request counts as made for it).
    w.clock.advance(TimeDelta::seconds(1));
    // The browser is signed in as Asha, the client believes it is Ravi: no code for Asha.
    let back =
        authorize(&w.rp, &asha, Ask { prompt_none: true, hint: Some(&ravi_token), ..Ask::default() }).await;
    assert!(matches!(&back, Back::Error(e) if e == "login_required"), "{back:?}");
    // Without prompt=none, the person is asked to sign in again.
    let back = authorize(&w.rp, &asha, Ask { hint: Some(&ravi_token), ..Ask::default() }).await;
    assert!(matches!(&back, Back::Page(p) if p == "/login"), "{back:?}");
    // A hint naming the signed-in person changes nothing.
    let back =
        authorize(&w.rp, &asha, Ask { prompt_none: true, hint: Some(&asha_token), ..Ask::default() }).await;
    assert!(matches!(back, Back::Code), "{back:?}");
    // An expired hint still names its person (OIDC Core §3.1.2.1).
    w.clock.advance(TimeDelta::hours(2));
    let back =
        authorize(&w.rp, &asha, Ask { prompt_none: true, hint: Some(&asha_token), ..Ask::default() }).await;
    assert!(matches!(back, Back::Code), "an expired hint is accepted for its sub: {back:?}");
}

#[tokio::test]
async fn a_malformed_or_forged_id_token_hint_is_an_invalid_request() {
    let w = world().await;
    let asha = Browser::new(&w.app);
    let token = id_token_of(&w.rp, &asha, "asha").await.to_string();
    // The signature no longer matches the claims.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for hint in ["garbage", "a.b.c", forged.as_str()] {
        let ask = Ask { prompt_none: true, raw_hint: Some(hint.to_owned()), ..Ask::default() };
        let back = authorize(&w.rp, &asha, ask).await;
        assert!(matches!(&back, Back::Error(e) if e == "invalid_request"), "{hint}: {back:?}");
    }
    // The unaltered token passes.
    let ask = Ask { prompt_none: true, raw_hint: Some(token), ..Ask::default() };
    assert!(matches!(authorize(&w.rp, &asha, ask).await, Back::Code));
}

#[tokio::test]
async fn max_age_is_held_to_the_microsecond_and_zero_always_asks_for_a_new_login() {
    let w = world().await;
    let asha = Browser::new(&w.app);
    id_token_of(&w.rp, &asha, "asha").await;
    let none =
        |secs: u64| Ask { prompt_none: true, max_age: Some(Duration::from_secs(secs)), ..Ask::default() };
    // A microsecond after the login, in the same second, max_age=0 is still a new login (it
    // used to pass: seconds were compared).
    w.clock.advance(TimeDelta::microseconds(1));
    let back = authorize(&w.rp, &asha, none(0)).await;
    assert!(matches!(&back, Back::Error(e) if e == "login_required"), "{back:?}");
    // Exactly 60 s after the login max_age=60 holds; one microsecond more and it does not.
    w.clock.advance(TimeDelta::seconds(60) - TimeDelta::microseconds(1));
    assert!(matches!(authorize(&w.rp, &asha, none(60)).await, Back::Code));
    w.clock.advance(TimeDelta::microseconds(1));
    let back = authorize(&w.rp, &asha, none(60)).await;
    assert!(matches!(&back, Back::Error(e) if e == "login_required"), "{back:?}");
    // Without prompt=none, the person signs in again.
    let back = authorize(&w.rp, &asha, Ask { max_age: Some(Duration::ZERO), ..Ask::default() }).await;
    assert!(matches!(&back, Back::Page(p) if p == "/login"), "{back:?}");
}
