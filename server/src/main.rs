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
    runtime.block_on(pramaan_server::cli::main(std::env::args_os().collect(), std::env::vars().collect(), io))
}
