use chrono::{DateTime, Utc};

use super::*;
use crate::domain::{
    AuthMethod, ClientCategory, ClientRegistration, ClientType, RedirectUri, UserId, Username,
};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "https://app.example/cb";

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn client() -> Client {
    Client {
        id: ClientId::from_string("app".into()),
        registration: ClientRegistration {
            name: "App".into(),
            category: ClientCategory::Government,
            client_type: ClientType::Public,
            token_endpoint_auth_method: AuthMethod::None,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: Scope::parse_list("registry.read").unwrap(),
            redirect_uris: vec![RedirectUri::parse(REDIRECT).unwrap()],
            post_logout_redirect_uris: vec![],
            jwks: None,
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 3600,
            first_party: false,
            can_introspect: false,
        },
        status: ClientStatus::Active,
        has_secret: false,
        secret_rotated_at: None,
        tokens_valid_after: t(0),
        created_at: t(0),
        updated_at: t(0),
    }
}

fn form(extra: &str) -> Form {
    let base = format!(
        "client_id=app&redirect_uri={}&response_type=code&scope=openid+registry.read&state=xyz\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    Form::parse(format!("{base}{extra}").as_bytes()).unwrap()
}

fn parse(f: &Form) -> Result<AuthorizationRequest, Rejection> {
    let c = client();
    let (c, uri) = verify_client(f, Some(&c)).map(|(c, u)| (c.clone(), u))?;
    parse_request(f, &c, uri)
}

fn redirected_error(r: Result<AuthorizationRequest, Rejection>) -> &'static str {
    match r {
        Err(Rejection::Redirect { error, state, .. }) => {
            assert_eq!(state.as_deref(), Some("xyz"), "state goes back with every redirected error");
            error.error
        }
        other => panic!("expected a redirected error, got {other:?}"),
    }
}

#[test]
fn a_good_request_parses_and_keeps_only_allowed_scopes() {
    let r = parse(&form("&scope_extra=1")).unwrap();
    assert_eq!(r.scope, Scope::parse_list("openid registry.read").unwrap());
    assert_eq!(r.code_challenge, CHALLENGE);
    assert_eq!(r.state.as_deref(), Some("xyz"));
}

#[test]
fn an_unknown_client_or_unregistered_redirect_uri_never_redirects() {
    let f = form("");
    assert!(matches!(verify_client(&f, None), Err(Rejection::Page(_))));
    let mut suspended = client();
    suspended.status = ClientStatus::Suspended;
    assert!(matches!(verify_client(&f, Some(&suspended)), Err(Rejection::Page(_))));
    for evil in ["https://evil.example/cb", "https://app.example/cb/../x", "https://app.example/cb?x=1"] {
        let q = format!(
            "client_id=app&response_type=code&redirect_uri={}",
            form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
        );
        let f = Form::parse(q.as_bytes()).unwrap();
        assert!(matches!(verify_client(&f, Some(&client())), Err(Rejection::Page(_))), "{evil}");
    }
    let f = Form::parse(b"client_id=app&response_type=code").unwrap();
    assert!(
        matches!(verify_client(&f, Some(&client())), Err(Rejection::Page(_))),
        "redirect_uri is required"
    );
}

#[test]
fn pkce_s256_is_required_and_plain_refused() {
    let without = Form::parse(
        format!(
            "client_id=app&redirect_uri={}&response_type=code&scope=openid&state=xyz",
            form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(redirected_error(parse(&without)), "invalid_request");
    let plain = Form::parse(
        format!(
            "client_id=app&redirect_uri={}&response_type=code&scope=openid&state=xyz&code_challenge={CHALLENGE}\
             &code_challenge_method=plain",
            form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(redirected_error(parse(&plain)), "invalid_request");
}

#[test]
fn protocol_errors_are_redirected_with_their_codes() {
    assert_eq!(redirected_error(parse(&form("&prompt=none+login"))), "invalid_request");
    assert_eq!(redirected_error(parse(&form("&prompt=select_account"))), "invalid_request");
    assert_eq!(redirected_error(parse(&form("&max_age=-1"))), "invalid_request");
    assert_eq!(redirected_error(parse(&form("&request=eyJ"))), "request_not_supported");
    assert_eq!(redirected_error(parse(&form("&response_mode=fragment"))), "invalid_request");
    let token = form("").get("redirect_uri").map(|_| ()).map(|_| {
        Form::parse(
            format!(
                "client_id=app&redirect_uri={}&response_type=token&state=xyz",
                form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
            )
            .as_bytes(),
        )
        .unwrap()
    });
    assert_eq!(redirected_error(parse(&token.unwrap())), "unsupported_response_type");
    let mut no_code = client();
    no_code.registration.grant_types = vec![GrantType::ClientCredentials];
    let f = form("");
    let (c, uri) = verify_client(&f, Some(&no_code)).unwrap();
    assert_eq!(redirected_error(parse_request(&f, c, uri)), "unauthorized_client");
}

#[test]
fn a_scope_entirely_outside_the_client_is_invalid_scope() {
    let f = Form::parse(
        format!(
            "client_id=app&redirect_uri={}&response_type=code&scope=registry.admin&state=xyz\
             &code_challenge={CHALLENGE}&code_challenge_method=S256",
            form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(redirected_error(parse(&f)), "invalid_scope");
}

fn user(must_change: bool) -> User {
    User {
        id: UserId::from_string("u1".into()),
        username: Username::parse("asha").unwrap(),
        display_name: "Asha".into(),
        phone: None,
        email: None,
        org_unit_id: None,
        status: UserStatus::Active,
        has_password: true,
        password_changed_at: None,
        must_change_password: must_change,
        tokens_valid_after: t(100),
        failed_logins: 0,
        locked_until: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn auth(at: i64) -> Authenticated {
    Authenticated {
        user_id: UserId::from_string("u1".into()),
        sid: "s".into(),
        auth_time_us: at * 1_000_000,
        amr: vec!["pwd".into()],
        acr: Acr::Password.as_str().into(),
    }
}

fn st<'a>(auth: Option<&'a Authenticated>, user: Option<&'a User>) -> Standing<'a> {
    Standing { auth, user, half_at_us: None, required: Acr::Password }
}

fn pending(extra: &str, created_at: i64) -> Pending {
    Pending {
        id: "p".into(),
        created_at_us: created_at * 1_000_000,
        purpose: Purpose::Client(parse(&form(extra)).unwrap()),
        consented: false,
    }
}

#[test]
fn the_next_step_follows_login_freshness_password_change_and_consent() {
    let all = Scope::parse_list("openid registry.read").unwrap();
    let u = user(false);
    // No login: the login page, or login_required for prompt=none.
    assert_eq!(next_step(&pending("", 500), &st(None, None), &all, false, 500_000_000), Next::Login);
    assert!(matches!(
        next_step(&pending("&prompt=none", 500), &st(None, None), &all, false, 500_000_000),
        Next::Fail(RedirectError { error: "login_required", .. })
    ));
    // A standing login with consent given: issue.
    assert_eq!(
        next_step(&pending("", 500), &st(Some(&auth(200)), Some(&u)), &all, false, 500_000_000),
        Next::Issue
    );
    // prompt=login: a login from before the request does not count; one after it does.
    assert_eq!(
        next_step(&pending("&prompt=login", 500), &st(Some(&auth(200)), Some(&u)), &all, false, 500_000_000),
        Next::Login
    );
    assert_eq!(
        next_step(&pending("&prompt=login", 500), &st(Some(&auth(500)), Some(&u)), &all, false, 501_000_000),
        Next::Issue
    );
    // max_age: too old a login must be repeated.
    assert_eq!(
        next_step(&pending("&max_age=60", 500), &st(Some(&auth(200)), Some(&u)), &all, false, 500_000_000),
        Next::Login
    );
    assert_eq!(
        next_step(&pending("&max_age=600", 500), &st(Some(&auth(200)), Some(&u)), &all, false, 500_000_000),
        Next::Issue
    );
    // A required password change comes before anything is issued.
    assert_eq!(
        next_step(&pending("", 500), &st(Some(&auth(200)), Some(&user(true))), &all, false, 500_000_000),
        Next::ChangePassword
    );
    // Consent: asked for scopes not yet agreed, skipped for first-party clients.
    assert_eq!(
        next_step(&pending("", 500), &st(Some(&auth(200)), Some(&u)), &[], false, 500_000_000),
        Next::Consent
    );
    assert_eq!(
        next_step(&pending("", 500), &st(Some(&auth(200)), Some(&u)), &[], true, 500_000_000),
        Next::Issue
    );
    assert!(matches!(
        next_step(&pending("&prompt=none", 500), &st(Some(&auth(200)), Some(&u)), &[], false, 500_000_000),
        Next::Fail(RedirectError { error: "consent_required", .. })
    ));
    let mut asked = pending("&prompt=consent", 500);
    assert_eq!(next_step(&asked, &st(Some(&auth(200)), Some(&u)), &all, false, 500_000_000), Next::Consent);
    asked.consented = true;
    assert_eq!(next_step(&asked, &st(Some(&auth(200)), Some(&u)), &all, false, 500_000_000), Next::Issue);
}

#[test]
fn a_login_stands_only_while_the_account_is_active_and_not_cut_off() {
    let u = user(false);
    assert!(standing_login(Some(&auth(200)), Some(&u)).is_some());
    assert!(standing_login(Some(&auth(99)), Some(&u)).is_none(), "cut off after the login");
    let mut disabled = user(false);
    disabled.status = UserStatus::Disabled;
    assert!(standing_login(Some(&auth(200)), Some(&disabled)).is_none());
    assert!(standing_login(Some(&auth(200)), None).is_none());
}

#[test]
fn query_parameters_are_appended_encoded() {
    assert_eq!(with_query("https://a/cb", &[("code", "x y")]), "https://a/cb?code=x+y");
    assert_eq!(with_query("https://a/cb?k=1", &[("state", "&")]), "https://a/cb?k=1&state=%26");
}

#[test]
fn a_half_finished_login_goes_to_its_second_factor_and_nowhere_else() {
    let all = Scope::parse_list("openid registry.read").unwrap();
    let half =
        |at: i64| Standing { auth: None, user: None, half_at_us: Some(at * 1_000_000), required: Acr::Mfa };
    assert_eq!(next_step(&pending("", 500), &half(501), &all, true, 501_000_000), Next::SecondFactor);
    // prompt=none cannot ask for the code.
    assert!(matches!(
        next_step(&pending("&prompt=none", 500), &half(501), &all, true, 501_000_000),
        Next::Fail(_)
    ));
    // A password proven before a prompt=login request does not count for it.
    assert_eq!(next_step(&pending("&prompt=login", 500), &half(400), &all, true, 501_000_000), Next::Login);
    assert_eq!(next_step(&pending("&max_age=10", 500), &half(400), &all, true, 501_000_000), Next::Login);
}

#[test]
fn a_login_weaker_than_the_account_or_the_request_needs_starts_again() {
    let all = Scope::parse_list("openid registry.read").unwrap();
    let u = user(false);
    let pwd = auth(200);
    let mut mfa = auth(200);
    mfa.acr = Acr::Mfa.as_str().into();
    let with = |a, required| Standing { auth: Some(a), user: Some(&u), half_at_us: None, required };
    // The account's roles now want a second factor: a password-only login no longer serves.
    assert_eq!(next_step(&pending("", 500), &with(&pwd, Acr::Mfa), &all, true, 500_000_000), Next::Login);
    assert_eq!(next_step(&pending("", 500), &with(&mfa, Acr::Mfa), &all, true, 500_000_000), Next::Issue);
    // The client asks for one.
    let asks = "&acr_values=urn:pramaan:acr:mfa";
    assert_eq!(
        next_step(&pending(asks, 500), &with(&pwd, Acr::Password), &all, true, 500_000_000),
        Next::Login
    );
    assert_eq!(
        next_step(&pending(asks, 500), &with(&mfa, Acr::Password), &all, true, 500_000_000),
        Next::Issue
    );
    assert!(matches!(
        next_step(
            &pending(&format!("{asks}&prompt=none"), 500),
            &with(&pwd, Acr::Password),
            &all,
            true,
            500_000_000
        ),
        Next::Fail(RedirectError { error: "login_required", .. })
    ));
    // Either class will do: the weaker one is enough.
    let either = "&acr_values=urn:pramaan:acr:mfa%20urn:pramaan:acr:password";
    assert_eq!(
        next_step(&pending(either, 500), &with(&pwd, Acr::Password), &all, true, 500_000_000),
        Next::Issue
    );
}

#[test]
fn acr_values_none_of_which_we_know_are_refused_at_once() {
    let err = parse(&form("&acr_values=urn:gold%20loa-9")).unwrap_err();
    match err {
        Rejection::Redirect { error, .. } => assert_eq!(error.error, "unmet_authentication_requirements"),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse(&form("&acr_values=loa-9%20urn:pramaan:acr:mfa")).unwrap().acr, Some(Acr::Mfa));
    assert_eq!(parse(&form("")).unwrap().acr, None);
}

#[test]
fn max_age_is_compared_to_the_microsecond_and_zero_always_means_a_new_login() {
    let all = Scope::parse_list("openid registry.read").unwrap();
    let u = user(false);
    let a = auth(200);
    let at = |now_us: i64, extra: &str| {
        next_step(&pending(extra, 500), &st(Some(&a), Some(&u)), &all, true, now_us)
    };
    // Exactly 60 s old: still within max_age=60; a microsecond later it is not.
    assert_eq!(at(260_000_000, "&max_age=60"), Next::Issue);
    assert_eq!(at(260_000_001, "&max_age=60"), Next::Login);
    // max_age=0 is met by no earlier login, not even one in the same second or microsecond.
    assert_eq!(at(200_000_000, "&max_age=0"), Next::Login);
    assert_eq!(at(200_999_999, "&max_age=0"), Next::Login);
    // …only by one made after the request arrived.
    let fresh = auth(501);
    let after = next_step(&pending("&max_age=0", 500), &st(Some(&fresh), Some(&u)), &all, true, 501_000_000);
    assert_eq!(after, Next::Issue);
}

#[test]
fn a_login_of_someone_other_than_the_id_token_hint_does_not_count() {
    let all = Scope::parse_list("openid registry.read").unwrap();
    let u = user(false);
    let hinted = |sub: &str, extra: &str, created: i64| {
        let mut p = pending(extra, created);
        if let Purpose::Client(r) = &mut p.purpose {
            r.hint_sub = Some(sub.into());
        }
        p
    };
    let a = auth(200);
    // The signed-in person is the one named: nothing changes.
    assert_eq!(
        next_step(&hinted("u1", "", 500), &st(Some(&a), Some(&u)), &all, true, 500_000_000),
        Next::Issue
    );
    // Someone else: prompt=none fails with login_required, otherwise a new login.
    assert!(matches!(
        next_step(&hinted("u2", "&prompt=none", 500), &st(Some(&a), Some(&u)), &all, true, 500_000_000),
        Next::Fail(RedirectError { error: "login_required", .. })
    ));
    assert_eq!(
        next_step(&hinted("u2", "", 500), &st(Some(&a), Some(&u)), &all, true, 500_000_000),
        Next::Login
    );
    // The person chose to sign in anew for this request: that login stands.
    let fresh = auth(501);
    assert_eq!(
        next_step(&hinted("u2", "", 500), &st(Some(&fresh), Some(&u)), &all, true, 501_000_000),
        Next::Issue
    );
}
