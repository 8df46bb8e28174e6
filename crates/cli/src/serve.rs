//! `keyhole serve`: load the configuration, open the gateway, print how to reach it, and serve
//! until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use keyhole_server::{Config, ConfigOverrides};
use miette::{IntoDiagnostic, WrapErr};

use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> miette::Result<ExitCode> {
    let config = Config::load(
        args.config.as_deref(),
        ConfigOverrides {
            listen: args.listen,
            data_dir: args.data_dir,
            domain: args.domain,
            region: args.region,
            trusted_proxies: (!args.trusted_proxies.is_empty()).then_some(args.trusted_proxies),
            audit_fail_open: args.audit_fail_open,
            audit_rotate_bytes: args.audit_rotate_bytes,
            audit_rotate_seconds: args.audit_rotate_seconds,
            job_session_secs: args.job_session_secs,
            audit_retain_days: args.audit_retain_days,
        },
    )
    .into_diagnostic()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> miette::Result<ExitCode> {
    let listen = config.listen;
    let gateway = keyhole_server::open(config)
        .into_diagnostic()
        .wrap_err("cannot start the gateway")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot listen on {listen} (is another server using it? choose another with --listen)"))?;
    let local = listener.local_addr().into_diagnostic()?;
    let endpoint = format!("http://{local}");
    let creds = std::path::absolute(&gateway.account.root_credentials_path)
        .unwrap_or_else(|_| gateway.account.root_credentials_path.clone());
    let data_dir = std::path::absolute(&gateway.config.data_dir)
        .unwrap_or_else(|_| gateway.config.data_dir.clone());
    let fresh = if gateway.account.created_now {
        "created now, mode 0600"
    } else {
        "existing, mode 0600"
    };
    let banner = format!(
        "keyhole {version} is serving S3\n  endpoint:         {endpoint}\n  account id:       {account}\n  data directory:   {data}\n  root credentials: {creds} ({fresh})\ntry:\n  AWS_SHARED_CREDENTIALS_FILE={creds} aws --endpoint-url {endpoint} s3 ls\nRoot credentials are for bootstrap only; stop with Ctrl-C (in-flight requests finish).\n",
        version = env!("CARGO_PKG_VERSION"),
        account = gateway.account.record.account_id,
        data = data_dir.display(),
        creds = creds.display(),
    );
    // A closed stdout (a supervisor that stopped reading) must not stop the gateway.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(%endpoint, "listening");
    keyhole_server::pipeline::serve(Arc::new(gateway), listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
