//! The `presenced` binary: parse the command line, start tracing, run.

use clap::Parser;

/// mimalloc instead of the system allocator: allocation was about a sixth
/// of the CPU time of a getPresence under load with glibc malloc, and
/// mimalloc gives freed memory back to the system (glibc kept the peak of
/// a connection flood resident).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = presenced::cli::Cli::parse();
    // Under `exec` the server's log shares a terminal with the command's
    // output: warnings only, unless RUST_LOG says otherwise.
    let default_filter = match cli.command {
        presenced::cli::Command::Exec(_) => "presenced=warn",
        _ => "presenced=info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    match presenced::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("presenced: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
