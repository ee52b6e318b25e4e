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
    // Log lines are formatted where they happen and written by a thread of
    // their own, in batches (see `presenced::logs`): an access line per
    // request written straight to stderr cost getPresence about 40 % of its
    // throughput. The guard writes what is left when main returns.
    let (writer, _flush_at_exit) = match presenced::logs::spawn("presenced-log", std::io::stderr())
    {
        Ok(started) => started,
        Err(e) => {
            eprintln!("presenced: cannot start the log thread: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(writer.clone())
        .with_env_filter(cli.log_filter());
    let colour = matches!(cli.log_format, presenced::cli::LogFormat::Text)
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Requests run in a scope that presenced's formats write as their span
    // (`logs::request`), unless the lines are coloured (tracing's own
    // format) or the filter picks lines by span (`[span]` in `RUST_LOG`),
    // which needs real spans.
    let by_span = std::env::var("RUST_LOG").is_ok_and(|f| f.contains('['));
    if !colour && !by_span {
        presenced::logs::request::use_request_scopes();
    }
    match cli.log_format {
        presenced::cli::LogFormat::Text => {
            if !colour {
                // Plain access lines skip tracing's event (`logs::text`).
                presenced::logs::text::write_access_lines_to(writer.clone());
            }
            logs.with_ansi(colour)
                .fmt_fields(presenced::logs::text::LeanFields)
                .event_format(presenced::logs::text::TextFormat::default())
                .init();
        }
        presenced::cli::LogFormat::Json => logs
            .with_ansi(false)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(presenced::logs::json::JsonFormat::default())
            .init(),
    }
    match presenced::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // After the log lines that led here.
            drop(_flush_at_exit);
            eprintln!("presenced: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
