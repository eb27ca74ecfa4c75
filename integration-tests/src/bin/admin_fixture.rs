//! A running Pramaan with a national administrator signed in, for tools that exercise the
//! admin API from outside (schemathesis in `.ci/run`). It prints one JSON line,
//! `{"base": …, "openapi": …, "token": …}`, and serves until its standard input closes. The
//! backends are the test suite's (`PRAMAAN_TEST_DATABASE_URL`, `PRAMAAN_TEST_REDIS_URL`), and
//! the clock stands still, so the token neither expires nor ages past a step-up.

use pramaan_integration_tests::admin::{console_client, first_admin_login, staff_in};
use pramaan_integration_tests::spawn_app_at;
use pramaan_integration_tests::two_factor::fixed_clock;

#[tokio::main]
async fn main() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    // The only national admin: the tool may try to disable or demote it through the API and
    // meets the anti-lockout rule (409); some staff for the lists to show.
    staff_in(&app, "dadmin-blr", &["district_admin"], "in/ka/blr").await;
    staff_in(&app, "vacc-blr", &["vaccinator"], "in/ka/blr/phc-1").await;
    let console = console_client(&app).await.id;
    let login = first_admin_login(&app, &clock, &console, "nadmin").await;
    let line = serde_json::json!({
        "base": format!("{}/admin/api/v1", app.address),
        "openapi": format!("{}/admin/api/v1/openapi.json", app.address),
        "token": login.access_token,
    });
    println!("{line}");
    let _ = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut rest = Vec::new();
        std::io::stdin().read_to_end(&mut rest)
    })
    .await;
    drop(app);
}
