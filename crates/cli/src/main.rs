//! The `keyhole` command: `keyhole serve` runs the gateway; `keyhole policy` validates and
//! simulates IAM policies; `keyhole audit` verifies, queries and follows the audit trail;
//! `keyhole job`, `keyhole run` and `keyhole credentials` start jobs and hand them credentials.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a small GET makes a few hundred short-lived
/// allocations (headers, the request context, the audit event), and glibc's malloc spent about
/// a fifth of the gateway's CPU on them under load (issue 16's profiles, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access_cmd;
mod audit_cmd;
mod aws_chain;
mod cli;
mod exchange;
mod job_cmd;
mod keys_cmd;
mod lint_cmd;
mod pab_cmd;
mod policy_cmd;
mod s3_export;
mod serve;
mod upstream_credentials;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::install_tracing(&args.log_format);
    install_panic_hook();
    match run(args) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Cli) -> miette::Result<ExitCode> {
    match args.command {
        cli::Command::Serve(a) => serve::run(*a),
        cli::Command::Policy { command } => policy_cmd::run(command),
        cli::Command::Audit { command } => audit_cmd::run(command),
        cli::Command::Access { command } => access_cmd::run(command),
        cli::Command::Job { command } => job_cmd::run(command),
        cli::Command::Run(a) => job_cmd::run_command(a),
        cli::Command::Admin { command } => job_cmd::admin(command),
        cli::Command::Credentials(a) => job_cmd::credentials(a),
    }
}

/// A panic leaves the process in an unknown state: log it and abort rather than let other tasks
/// carry on (garage does the same).
///
/// One panic is not a fault: `print!` to a pipe whose reader has gone (`keyhole job list | head
/// -3`). The command ends quietly then, with the status a process killed by SIGPIPE has (128 +
/// 13), as the tools it is piped like do.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        tracing::error!(panic = %info, "panic: aborting");
        default(info);
        std::process::abort();
    }));
}
