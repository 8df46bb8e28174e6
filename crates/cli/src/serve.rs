//! `keyhole serve`: load the configuration, open the gateway, print how to reach it, and serve
//! until SIGINT, SIGTERM or SIGQUIT (SIGHUP reloads the TLS certificate).

use std::process::ExitCode;
use std::sync::Arc;

use keyhole_server::{Config, ConfigOverrides};
use miette::{IntoDiagnostic, WrapErr};

use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> miette::Result<ExitCode> {
    no_huge_pages();
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
            audit_digest_seconds: args.audit_digest_seconds,
            audit_signing_key: args.audit_signing_key,
            audit_key_fingerprints: (!args.audit_key_fingerprints.is_empty())
                .then_some(args.audit_key_fingerprints),
            audit_accept_discontinuity: args.audit_accept_discontinuity,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            header_timeout_secs: args.header_timeout_secs,
            idle_timeout_secs: args.idle_timeout_secs,
            body_timeout_secs: args.body_timeout_secs,
            body_min_rate: args.body_min_rate,
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            allow_shared_data_dir: args.allow_shared_data_dir,
            oidc_jwks: (!args.oidc_jwks.is_empty()).then_some(args.oidc_jwks),
            storage: keyhole_server::StorageSettings {
                endpoint: args.upstream_endpoint,
                region: args.upstream_region,
                credentials_file: args.upstream_credentials_file,
                profile: args.upstream_profile,
                path_style: args.upstream_path_style,
                ca_bundle: args.upstream_ca_bundle,
                max_concurrency: args.upstream_max_concurrency,
                timeout_secs: args.upstream_timeout_secs,
                retries: args.upstream_retries,
                default_backend: args.default_backend,
                buckets: Default::default(),
            },
            state: args.state,
            master_key_file: args.master_key_file,
            state_max_staleness_secs: args.state_max_staleness_secs,
            max_key_age_days: args.max_key_age_days,
        },
    )
    .into_diagnostic()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let served = runtime.block_on(serve(config));
    // The trail is closed and the store sealed: work still running on blocking threads (a copy
    // past the grace period, still streaming) can change nothing any more, so the process does
    // not wait for it, and a restart need not either (review 25: the process outlived its stop
    // digest by the rest of such a copy, holding the data directory's lock).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    served
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`; children
/// inherit it). mimalloc asks the kernel for huge pages on its regions, and the first touch of
/// each fresh 2 MiB page zeroes it whole while the thread that touched it waits: the index's
/// commits, which allocate a new buffer for every page they write, paid that on the path of
/// small PUTs. Without them, PUTs of 4 KiB at 8 in flight gained 3-6 % in rate, their p99 fell
/// from about 7.8 ms to 5.6-6.3 ms and their slowest from 35-40 ms to 9-11 ms, and small GETs
/// did not change (docs/BENCHMARKS.md, "Huge pages off"). A kernel without the call leaves
/// them as they were.
fn no_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the system set them");
    }
}

async fn serve(config: Config) -> miette::Result<ExitCode> {
    let listen = config.listen;
    // The soft open-file limit is often 1024 while the hard one allows far more; the connection
    // limits are derived from what is in force after this.
    keyhole_server::listener::raise_open_file_limit();
    // The port first: a second `serve` on a busy port must fail before it creates or changes
    // anything in the data directory.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot listen on {listen} (is another server using it? choose another with --listen); nothing was created or changed"))?;
    let upstream_credentials = config.storage.upstream.as_ref().map(|u| {
        Arc::new(
            crate::upstream_credentials::ChainSource::new(
                u.credentials_file.clone(),
                u.profile.clone(),
            )
            .for_upstream(&u.endpoint, &u.region, u.ca_bundle.clone()),
        ) as Arc<dyn keyhole_server::backend::upstream::credentials::CredentialSource>
    });
    // Opening reads and migrates the state database: on a blocking thread, as every database
    // call.
    let gateway = keyhole_server::state::db::blocking(move || {
        keyhole_server::open_with(config, upstream_credentials)
    })
    .await
    .into_diagnostic()
    .wrap_err("cannot start the gateway")?;
    let local = listener.local_addr().into_diagnostic()?;
    // With several nodes, this node is known to job reports before it serves a request: a
    // report waits for every registered node (docs/JOBS.md).
    let job_facts = match (&gateway.job_feed, gateway.audit.node_id()) {
        (Some(feed), Some(node)) => {
            let (state, feed, node) = (gateway.state.clone(), feed.clone(), node.to_owned());
            {
                let (state, feed, node) = (state.clone(), feed.clone(), node.clone());
                keyhole_server::state::db::blocking(move || {
                    keyhole_server::jobs::facts::register(&state, &feed, &node)
                })
                .await
                .into_diagnostic()
                .wrap_err("cannot register this node for job reports in the shared state")?;
            }
            Some((
                tokio::spawn(keyhole_server::jobs::facts::run(
                    state.clone(),
                    feed.clone(),
                    node.clone(),
                )),
                state,
                feed,
                node,
            ))
        }
        _ => None,
    };
    let shutdown = shutdown_signal(gateway.tls_certificate.clone());
    let banner = banner(&gateway, local);
    // A closed stdout (a supervisor that stopped reading) must not stop the gateway.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(endpoint = %endpoint_of(&gateway, local), "listening");
    let audit = gateway.audit.clone();
    // With a shared state, other nodes' changes reach this node's snapshot through the change
    // log (nothing to follow with SQLite).
    let follower = tokio::spawn(keyhole_server::state::changes::follow(
        gateway.state.clone(),
    ));
    // Access keys' last use: kept in memory by the request path, written every few seconds.
    let key_usage = (gateway.state.clone(), gateway.key_usage.clone());
    let key_flusher = tokio::spawn(keyhole_server::keys::run(
        key_usage.0.clone(),
        key_usage.1.clone(),
    ));
    let key_age = gateway.config.max_key_age_days.map(|days| {
        tokio::spawn(keyhole_server::keys::watch_key_age(
            gateway.state.clone(),
            gateway.metrics.clone(),
            days,
        ))
    });
    keyhole_server::listener::serve(Arc::new(gateway), listener, shutdown).await;
    // Requests are done, or the grace period is over and the store and the state are sealed
    // (no change can land any more; docs/AUDIT.md, "Nothing changes after the trail closes").
    // Sign the stop digest that closes the trail file.
    follower.abort();
    if let Some(task) = key_age {
        task.abort();
    }
    key_flusher.abort();
    let (state, recorder) = key_usage;
    let written =
        keyhole_server::state::db::blocking(move || keyhole_server::keys::flush(&state, &recorder))
            .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot write access keys' last use at shutdown; the uses since the last flush are lost");
    }
    audit.close().await;
    if let Some((task, state, feed, node)) = job_facts {
        // Every request is done: write the last job records and mark this node stopped, so
        // reports stop waiting for it.
        task.abort();
        let written = keyhole_server::state::db::blocking(move || {
            keyhole_server::jobs::facts::flush(&state, &feed, &node, true)
        })
        .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write the last job report records; reports will name this node as incomplete");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The URL clients use: https:// when the gateway serves TLS.
fn endpoint_of(gateway: &keyhole_server::Gateway, local: std::net::SocketAddr) -> String {
    let scheme = if gateway.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{local}")
}

/// What `keyhole serve` prints on stdout once it listens: how to reach it, where things are, and
/// an aws-cli line that works as pasted (with `--ca-bundle` for HTTPS, so a self-signed
/// certificate is trusted).
fn banner(gateway: &keyhole_server::Gateway, local: std::net::SocketAddr) -> String {
    let endpoint = endpoint_of(gateway, local);
    let creds = std::path::absolute(&gateway.account.root_credentials_path)
        .unwrap_or_else(|_| gateway.account.root_credentials_path.clone());
    let data_dir = std::path::absolute(&gateway.config.data_dir)
        .unwrap_or_else(|_| gateway.config.data_dir.clone());
    let fresh = if gateway.account.created_now {
        "created now, mode 0600"
    } else {
        "existing, mode 0600"
    };
    let (tls_line, ca_bundle, tls_note) = match &gateway.config.tls {
        Some(files) => {
            let cert = std::path::absolute(&files.cert).unwrap_or_else(|_| files.cert.clone());
            (
                format!("  TLS certificate:  {}\n", cert.display()),
                format!(" --ca-bundle {}", cert.display()),
                "(--ca-bundle makes aws trust this certificate; drop it if a CA your system trusts signed it)\n",
            )
        }
        None => (String::new(), String::new(), ""),
    };
    let config = &gateway.config;
    let key = config.audit_signing_key.clone().unwrap_or_else(|| {
        config
            .data_dir
            .join(keyhole_server::audit::DEFAULT_SIGNING_KEY_FILE)
    });
    let key = std::path::absolute(&key).unwrap_or(key);
    let key_note = if config.audit_signing_key.is_none() {
        "\n  (inside the data directory: whoever can read it can forge digests; keep it elsewhere with --audit-signing-key, see docs/AUDIT.md)"
    } else {
        ""
    };
    let fingerprint = gateway.audit.fingerprint();
    let first = if gateway.account.created_now {
        format!("New account: record the audit key fingerprint away from this machine; `keyhole audit verify --fingerprint {fingerprint}` checks the trail with it.\n")
    } else {
        String::new()
    };
    let storage = match &config.storage.upstream {
        None => String::new(),
        Some(u) => format!(
            "  upstream:         {} (buckets {} unless [buckets] says otherwise; {} mapped)\n",
            u.endpoint,
            match config.storage.default_backend {
                keyhole_server::config::BackendKind::Upstream => "upstream",
                keyhole_server::config::BackendKind::Local => "local",
            },
            config.storage.buckets.len()
        ),
    };
    let state_line = match &config.state {
        keyhole_server::config::StateLocation::Sqlite => String::new(),
        keyhole_server::config::StateLocation::Postgres(url) => format!(
            "  shared state:     {} (change-log writer {}; {})\n",
            keyhole_server::config::redact_url(url),
            gateway.state.node_id(),
            keyhole_server::state::postgres::tls::parse(url)
                .map(|(_, tls)| tls.describe())
                .unwrap_or_default()
        ),
    };
    format!(
        "keyhole {version} is serving S3\n  endpoint:         {endpoint}\n{storage}  account id:       {account}\n  data directory:   {data}\n  node id:          {node}\n{state_line}  root credentials: {creds} ({fresh})\n  audit signing key: {key_path}{key_note}\n  audit key fingerprint: {fingerprint}\n{tls_line}{first}try:\n  AWS_SHARED_CREDENTIALS_FILE={creds} aws --endpoint-url {endpoint}{ca_bundle} s3 ls\n{tls_note}Root credentials are for bootstrap only; stop with Ctrl-C (in-flight requests finish).\n",
        version = env!("CARGO_PKG_VERSION"),
        account = gateway.account.record.account_id,
        data = data_dir.display(),
        node = gateway.audit.node_id().unwrap_or("-"),
        creds = creds.display(),
        key_path = key.display(),
    )
}

/// Resolves on SIGINT, SIGTERM or SIGQUIT: each stops the gateway cleanly (`kill -QUIT`, nginx's
/// graceful stop, used to end it with the signal's default action, a crash as the trail records
/// it). SIGHUP reads the TLS certificate and key again (`certificate`; a renewed certificate is
/// served to new connections, a file that does not load leaves the served one and is logged as
/// an error) and otherwise changes nothing, as daemons conventionally take it; SIGUSR1 and
/// SIGUSR2 mean nothing to keyhole and are logged and ignored. None of them kills the gateway
/// with the signal's default action any more. The handlers are installed by this call, not when
/// the future is first polled: it is called before the banner is printed, so a supervisor that
/// stops the gateway as soon as it has announced itself gets a clean stop (a signal arriving
/// before the handlers would kill the process with no stop digest).
fn shutdown_signal(
    certificate: Option<Arc<keyhole_server::tls::ServerCertificate>>,
) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        };
        let mut int = listen(SignalKind::interrupt(), "SIGINT");
        let mut term = listen(SignalKind::terminate(), "SIGTERM");
        let mut hup = listen(SignalKind::hangup(), "SIGHUP");
        let mut quit = listen(SignalKind::quit(), "SIGQUIT");
        let mut usr1 = listen(SignalKind::user_defined1(), "SIGUSR1");
        let mut usr2 = listen(SignalKind::user_defined2(), "SIGUSR2");
        async move {
            /// The next signal of `s`, never when it could not be listened for.
            async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            loop {
                tokio::select! {
                    () = next(int.as_mut()) => return tracing::info!("SIGINT received"),
                    () = next(term.as_mut()) => return tracing::info!("SIGTERM received"),
                    () = next(hup.as_mut()) => match &certificate {
                        // Read on a blocking thread and not awaited here: a file that is slow to
                        // read (a network mount) holds neither the serving threads nor the
                        // handling of a later SIGTERM (review 30, F1).
                        Some(c) => {
                            let c = c.clone();
                            tokio::spawn(async move {
                                match tokio::task::spawn_blocking(move || c.reload()).await {
                                    Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key read again; new connections get them"),
                                    Ok(Err(e)) => tracing::error!(error = %e, "SIGHUP: the TLS certificate was NOT reloaded; still serving the previous one"),
                                    Err(e) => tracing::error!(error = %e, "SIGHUP: the TLS certificate was NOT reloaded (the reload failed); still serving the previous one"),
                                }
                            });
                        }
                        None => tracing::info!("SIGHUP: nothing to reload (no TLS certificate); ignored"),
                    },
                    () = next(quit.as_mut()) => return tracing::info!("SIGQUIT received"),
                    () = next(usr1.as_mut()) => {
                        tracing::warn!("SIGUSR1 received and ignored: keyhole gives it no meaning (SIGTERM stops it)");
                    }
                    () = next(usr2.as_mut()) => {
                        tracing::warn!("SIGUSR2 received and ignored: keyhole gives it no meaning (SIGTERM stops it)");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    async move {
        let _ = certificate;
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received");
    }
}
