//! Logging: `tracing` to stderr, human-readable or JSON lines. Nothing logs secrets,
//! passwords, codes or tokens; types that hold them redact themselves in `Debug`.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once per process (the binary calls it; tests do not).
/// `RUST_LOG`, when set, wins over `log.filter`.
///
/// Lines go to stderr through a buffered background writer: written directly, every request
/// took the one stderr lock and a syscall, which cost a third of the token endpoint's rate at
/// `info` (measured). Under overload lines are dropped rather than slowing requests down (the
/// audit trail, not the log, is the record). Keep the returned guard alive: dropping it
/// flushes.
pub fn init(settings: &LogSettings) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let (writer, guard) =
        NonBlockingBuilder::default().buffered_lines_limit(64 * 1024).lossy(true).finish(std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_span_events(FmtSpan::NONE);
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
    installed.ok().map(|()| guard)
}
