//! The `tailtrace` command: Promtail's flags, then the agent.
//!
//! Exit codes: 0 clean stop (or a valid `-check-syntax`), 1 configuration or
//! start-up error, 2 bad command line.

use std::process::ExitCode;
use tailtrace::agent::{self, RunOptions};
use tailtrace::config::flags::Flags;
use tailtrace::config::{self, LogLevel};

fn main() -> ExitCode {
    // Before any thread exists (see `memory::limit_arenas`).
    tailtrace::memory::limit_arenas();
    let flags = match Flags::parse_from(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tailtrace: {e}\n\n{}", Flags::usage());
            return ExitCode::from(2);
        }
    };
    if flags.help {
        println!("{}", Flags::usage());
        return ExitCode::SUCCESS;
    }
    if flags.version {
        println!("tailtrace, version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cfg = match config::load_with_flags(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tailtrace: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    if flags.check_syntax {
        println!("Valid config file! No syntax issues found");
        return ExitCode::SUCCESS;
    }
    let level = flags
        .log_level
        .or(cfg.server.log_level)
        .unwrap_or(LogLevel::Info);
    init_logging(level);
    if flags.print_config_stderr || flags.print_config_stdout {
        match config::print::to_yaml(&cfg) {
            Ok(yaml) => {
                if flags.print_config_stderr {
                    eprint!("{yaml}");
                }
                if flags.print_config_stdout {
                    print!("{yaml}");
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    if flags.inspect {
        tailtrace::pipeline::inspect::enable();
    }
    let code = agent::run(
        cfg,
        RunOptions {
            dry_run: flags.dry_run,
            shutdown_timeout: None,
        },
    );
    ExitCode::from(code as u8)
}

fn init_logging(level: LogLevel) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAILTRACE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
