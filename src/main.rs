//! The `hookhouse` binary: parse the command line, start logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;
use hookhouse::telemetry::{self, LogFormat};

/// mimalloc: the request path allocates many small JSON nodes and buffers across threads,
/// where it measured faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = hookhouse::cli::Cli::parse();
    match LogFormat::from_env() {
        Ok(format) => telemetry::init(format),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hookhouse::cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
