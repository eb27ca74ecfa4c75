//! `/healthz` (the process is alive) and `/readyz` (it can serve: database and session store
//! answer).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({"status": "ok"}))
}

#[tracing::instrument(skip_all)]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let limit = Duration::from_secs(2);
    let (db, sessions) = tokio::join!(
        tokio::time::timeout(limit, state.core.db.ping()),
        tokio::time::timeout(limit, state.sessions.ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let sessions_ok = matches!(sessions, Ok(Ok(())));
    if !db_ok {
        tracing::warn!(error = ?db, "readiness: database unreachable");
    }
    if !sessions_ok {
        tracing::warn!(error = ?sessions, "readiness: session store unreachable");
    }
    let word = |ok| if ok { "ok" } else { "unreachable" };
    let body = json!({
        "status": if db_ok && sessions_ok { "ready" } else { "unavailable" },
        "database": word(db_ok),
        "sessions": word(sessions_ok),
    });
    let mut resp = if db_ok && sessions_ok { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    resp.insert_header(("cache-control", "no-store")).json(body)
}
