//! Building and running the HTTP server.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use tracing_actix_web::TracingLogger;

use super::access_log::AccessLog;
use super::client_ip::TrustedProxies;
use super::intake::{self, ConnectionTracker, Limits};
use super::problem::Problem;
use super::{health, problem, request_id, tls};
use crate::oidc::Issuer;
use crate::state::{AppState, StartError, num_cpus};

/// A bound, not yet running server. `build` binds the listener itself so tests can ask for
/// port 0 and read the real port back.
pub struct Application {
    port: u16,
    url: String,
    server: Server,
    /// Re-reads the signing keys; stops with the server.
    key_refresh: AbortOnDrop,
    /// Writes client-credentials issuance tallies to the audit trail each minute.
    issuance_flush: AbortOnDrop,
    /// Polls the revocation epoch.
    epoch_poll: AbortOnDrop,
    /// Keeps this instance's copy of the revoked-token list.
    revocation_feed: AbortOnDrop,
    /// Picks up policy sets reloaded anywhere; reloads on SIGHUP.
    policy_watch: AbortOnDrop,
    policy_hangup: AbortOnDrop,
    /// Sends the outbox (`[mail.outbox] worker`).
    outbox_worker: AbortOnDrop,
    /// Writes rate-limit refusal tallies to the audit trail each minute.
    limits_flush: AbortOnDrop,
    state: AppState,
}

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl Application {
    pub fn build(state: AppState) -> Result<Self, StartError> {
        let settings = state.core.settings.clone();
        let addr = settings.listen_addr()?;
        let listener = TcpListener::bind(addr).map_err(StartError::Bind)?;
        let bound = listener.local_addr().map_err(StartError::Bind)?;
        let url = settings.public_url(bound);
        let max_body = settings.http.max_body_bytes;
        let workers = if settings.http.workers == 0 { num_cpus() } else { settings.http.workers };
        // Started here, inside the runtime that will run the server, so a key rotation made by
        // the CLI or another instance reaches this one within `tokens.key_refresh_secs`.
        let key_refresh = AbortOnDrop(state.core.keyring.spawn_refresh());
        let issuance_flush = AbortOnDrop(tokio::runtime::Handle::try_current().ok().map(|_| {
            state.issuance.spawn_flusher(
                state.core.audit.clone(),
                state.core.clock.clone(),
                std::time::Duration::from_secs(15),
            )
        }));
        let limits_flush = AbortOnDrop(tokio::runtime::Handle::try_current().ok().map(|_| {
            state.limits.spawn_flusher(state.core.audit.clone(), std::time::Duration::from_secs(15))
        }));
        let epoch_poll = AbortOnDrop(state.clients.spawn_poller());
        let policy_watch = AbortOnDrop(crate::policy::reload::spawn_poller(state.core.clone()));
        let policy_hangup = AbortOnDrop(crate::policy::reload::spawn_on_hangup(state.core.clone()));
        let revocation_feed = AbortOnDrop(crate::oidc::revocation_feed::RevocationFeed::spawn(state.clone()));
        let outbox_worker = AbortOnDrop(if settings.mail.outbox.worker {
            let mailer =
                crate::mail::mailer(&settings.mail, &settings.data_dir).map_err(StartError::Other)?;
            crate::mail::outbox::OutboxWorker::new(state.core.clone(), mailer, &url).spawn()
        } else {
            None
        });
        let issuer = web::Data::new(Issuer {
            audience: settings.tokens.access_token_audience.clone().unwrap_or_else(|| url.clone()),
            issuer: url.clone(),
        });
        let metadata =
            web::Data::new(crate::oidc::discovery::Metadata::new(&issuer, settings.tokens.id_token_alg));
        let proxies = web::Data::new(TrustedProxies(settings.trusted_proxies()));
        let tls = match (&settings.http.tls_certificate, &settings.http.tls_private_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        let kept = state.clone();
        let data = web::Data::new(state);
        let limits = web::Data::new(Limits {
            max_body_bytes: max_body,
            body_read_timeout: Duration::from_secs(settings.http.body_read_timeout_secs),
        });
        let total = connection_cap(settings.http.max_connections);
        // One address never holds more than a quarter of what the process may hold.
        let per_address = settings.http.max_connections_per_address.min((total / 4).max(1));
        let tracker = ConnectionTracker::new(per_address, settings.trusted_proxies());
        // RFC 6797: only an https issuer may pin browsers to https (a loopback http default
        // must not).
        let hsts = url.starts_with("https://");
        let max_connections = total.div_ceil(workers).max(1);
        let server = HttpServer::new(move || {
            let mut headers = DefaultHeaders::new()
                .add(("x-content-type-options", "nosniff"))
                .add(("referrer-policy", "no-referrer"));
            if hsts {
                headers = headers.add(("strict-transport-security", "max-age=31536000"));
            }
            App::new()
                .wrap(from_fn(intake::intake))
                .wrap(from_fn(request_id::echo_request_id))
                .wrap(TracingLogger::<AccessLog>::new())
                .wrap(headers)
                .app_data(limits.clone())
                .app_data(data.clone())
                .app_data(issuer.clone())
                .app_data(metadata.clone())
                .app_data(proxies.clone())
                .configure(|c| problem::configure(c, max_body))
                .configure(health::configure)
                .configure(crate::oidc::configure)
                .configure(crate::login::configure)
                .configure(crate::admin::configure)
                .default_service(web::to(not_found))
        })
        .on_connect(move |conn, data| tracker.on_connect(conn, data))
        .workers(workers)
        .max_connections(max_connections)
        .client_request_timeout(Duration::from_secs(settings.http.request_head_timeout_secs))
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(settings.http.shutdown_timeout_secs);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(StartError::Bind)?
        .run();
        Ok(Self {
            port: bound.port(),
            url,
            server,
            key_refresh,
            issuance_flush,
            epoch_poll,
            revocation_feed,
            policy_watch,
            policy_hangup,
            outbox_worker,
            limits_flush,
            state: kept,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The external base URL (the configured public URL, or `http://<bound address>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A handle that can stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM (graceful: in-flight requests get
    /// `http.shutdown_timeout_secs` to finish) or until stopped through a handle.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let _key_refresh = self.key_refresh;
        let _epoch_poll = self.epoch_poll;
        let _revocation_feed = self.revocation_feed;
        let _policy_watch = self.policy_watch;
        let _policy_hangup = self.policy_hangup;
        let _outbox_worker = self.outbox_worker;
        let result = self.server.await;
        drop(self.issuance_flush);
        drop(self.limits_flush);
        // Tallies of the minute in progress would otherwise be lost with the process.
        let core = &self.state.core;
        self.state.issuance.flush(&core.audit, core.clock.now(), true).await;
        self.state.limits.flush(&core.audit, core.clock.now(), true).await;
        result
    }
}

/// `configured`, lowered to leave room under the process's open-file limit for everything
/// else it opens (database connections, log and data files): past that limit `accept` fails
/// and the server stops answering even `/healthz`.
fn connection_cap(configured: usize) -> usize {
    const RESERVE: usize = 128;
    match open_file_limit() {
        Some(limit) if limit <= configured + RESERVE => {
            let cap = limit.saturating_sub(RESERVE).max(16);
            tracing::warn!(limit, cap, "the open-file limit lowers http.max_connections");
            cap
        }
        _ => configured,
    }
}

/// The soft limit on open files, where the system says (`/proc/self/limits` on Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn not_found() -> HttpResponse {
    Problem::new(actix_web::http::StatusCode::NOT_FOUND, "No such resource.").response()
}
