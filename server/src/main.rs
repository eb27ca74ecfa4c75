//! The `pramaan` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let io = pramaan_server::cli::Io::process();
    // Only the variables Pramaan reads, and only those that are valid UTF-8: an unrelated
    // variable holding other bytes must not stop the program.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("PRAMAAN__") || k == "USER" || k == "RUST_LOG")
        .collect();
    runtime.block_on(pramaan_server::cli::main(std::env::args_os().collect(), env, io))
}
