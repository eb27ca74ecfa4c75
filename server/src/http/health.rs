//! `/healthz` (the process is alive) and `/readyz` (it can serve: database and session store
//! answer, and the session store is not near its limit).

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
    let (db, sessions, usage) = tokio::join!(
        tokio::time::timeout(limit, state.core.db.ping()),
        tokio::time::timeout(limit, state.sessions.ping()),
        tokio::time::timeout(limit, state.sessions.usage()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let sessions_ok = matches!(sessions, Ok(Ok(())));
    // A store near its limit still answers, but its writes (sign-ins) will soon fail. This
    // instance's own store: a load balancer should send new visitors elsewhere. A shared one
    // is every instance's condition: reported, but draining them all would only make it worse.
    let near_full = matches!(usage, Ok(Ok(Some(u))) if u.near_full());
    let drain = matches!(usage, Ok(Ok(Some(u))) if u.near_full() && u.per_instance);
    if !db_ok {
        tracing::warn!(error = ?db, "readiness: database unreachable");
    }
    if !sessions_ok {
        tracing::warn!(error = ?sessions, "readiness: session store unreachable");
    }
    if near_full {
        tracing::warn!(usage = ?usage, "readiness: session store near its limit");
    }
    let word = |ok| if ok { "ok" } else { "unreachable" };
    let sessions_word = if !sessions_ok {
        "unreachable"
    } else if near_full {
        "near_full"
    } else {
        "ok"
    };
    let ready = db_ok && sessions_ok && !drain;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": word(db_ok),
        "sessions": sessions_word,
    });
    let mut resp = if ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    resp.insert_header(("cache-control", "no-store")).json(body)
}
