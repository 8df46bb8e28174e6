//! Command-line definitions (clap) and logging set-up.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// keyhole: a least-privilege S3 gateway for ML jobs.
///
/// Start the gateway with `keyhole serve`: it stores objects under ./keyhole-data, listens on
/// 127.0.0.1:9000 and writes the root credentials to ./keyhole-data/root-credentials.
#[derive(Debug, Parser)]
#[command(name = "keyhole", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KEYHOLE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (embedded local-disk storage, or in front of another S3 service).
    ///
    /// On first start it creates the account, a master key and root credentials under the data
    /// directory; later starts reuse them. Every option can also be set in a TOML file
    /// (`--config`) or a KEYHOLE_* environment variable; flags win over variables, variables over
    /// the file.
    ///
    /// Example:
    ///   keyhole serve --listen 127.0.0.1:9000 --data-dir ./keyhole-data
    Serve(Box<ServeArgs>),
    /// Validate IAM policy documents and simulate decisions, exactly as the gateway evaluates
    /// them (AWS's grammar and evaluation logic).
    ///
    /// Examples:
    ///   keyhole policy validate training-job.json
    ///   keyhole policy simulate --policy training-job.json --action s3:GetObject \
    ///       --resource arn:aws:s3:::acmeco-base-models/llama/model.safetensors \
    ///       --context aws:SourceIp=203.0.113.42
    Policy {
        /// What to do with policies.
        #[command(subcommand)]
        command: crate::policy_cmd::PolicyCommand,
    },
    /// Verify (with the operator's public key), query and follow the audit trail (one
    /// hash-chained event per request, covered by Ed25519-signed digests); create a signing key;
    /// copy the digests to a witness.
    ///
    /// Examples:
    ///   keyhole audit verify --data-dir ./keyhole-data --fingerprint HEX
    ///   keyhole audit query --since 1h --decision deny
    ///   keyhole audit tail -f
    ///   keyhole audit keygen --out /etc/keyhole/audit-signing.key
    ///   keyhole audit export-digests /mnt/witness/keyhole
    #[command(verbatim_doc_comment)]
    Audit {
        /// What to do with the trail.
        #[command(subcommand)]
        command: crate::audit_cmd::AuditCommand,
    },
    /// Least privilege from observed access: what a user or role used, what it was granted and
    /// never used, and a minimal policy; or every user, role and key of the account unused in a
    /// window. Asks the gateway (needs keyhole:GetAccessReport / keyhole:ListUnusedAccess).
    ///
    /// Examples:
    ///   keyhole access report --principal arn:aws:iam::123456789012:user/alice --since 30d
    ///   keyhole access unused --since 90d --format json
    #[command(verbatim_doc_comment)]
    Access {
        /// What to report.
        #[command(subcommand)]
        command: crate::access_cmd::AccessCommand,
    },
    /// Plan, start, list, show, finish and report on jobs: least-privilege, time-boxed,
    /// address-bound credentials compiled from one spec.
    ///
    /// Examples:
    ///   keyhole job plan job.toml
    ///   keyhole job start job.toml --output env
    ///   keyhole job list
    ///   keyhole job report finetune-wiki-42-a1b2c3
    #[command(verbatim_doc_comment)]
    Job {
        /// What to do with jobs.
        #[command(subcommand)]
        command: crate::job_cmd::JobCommand,
    },
    /// Run a command as a job: start it, give the command the job's credentials (and nothing
    /// else of your AWS configuration), forward signals, finish the job when the command exits,
    /// print the access report, and exit with the command's status.
    ///
    /// Example:
    ///   keyhole run --read s3://datasets/wiki/ --read s3://models/base/ \
    ///       --write s3://out/run-1/ --for 10m -- python train.py
    #[command(verbatim_doc_comment)]
    Run(crate::job_cmd::RunArgs),
    /// Administration: revoke a session, or every session of a role issued before a time; show
    /// or change the account's Block Public Access settings; review access keys' age and last
    /// use.
    ///
    /// Examples:
    ///   keyhole admin revoke-session ASIAEXAMPLE1234567
    ///   keyhole admin revoke-role-sessions training-job
    ///   keyhole admin public-access-block get
    ///   keyhole admin keys --max-age-days 90
    #[command(verbatim_doc_comment)]
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: crate::job_cmd::AdminCommand,
    },
    /// Print a job's credentials in credential_process format (for ~/.aws/config:
    /// `credential_process = keyhole credentials --job ID`), using the job's token.
    #[command(verbatim_doc_comment)]
    Credentials(crate::job_cmd::CredentialsArgs),
}

/// Options of `keyhole serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file with any of: listen, data_dir, domain, region, trusted_proxies,
    /// audit_fail_open, audit_rotate_bytes, audit_rotate_seconds, audit_retain_days,
    /// audit_digest_seconds, audit_signing_key, audit_key_fingerprints, job_session_secs,
    /// tls_cert, tls_key, header_timeout_secs, idle_timeout_secs, body_timeout_secs,
    /// body_min_rate, max_connections, max_connections_per_ip, allow_shared_data_dir,
    /// oidc_jwks (a table of ISSUER = "FILE"), state, master_key_file, state_max_staleness_secs, max_key_age_days,
    /// upstream_endpoint, upstream_region, upstream_credentials_file, upstream_profile,
    /// upstream_path_style, upstream_ca_bundle, upstream_max_concurrency,
    /// upstream_timeout_secs, upstream_retries, default_backend, and a [buckets] table mapping
    /// a bucket to "local", "UPSTREAM-BUCKET" or "UPSTREAM-BUCKET/PREFIX" (docs/UPSTREAM.md).
    #[arg(long, env = "KEYHOLE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9000].
    #[arg(long, env = "KEYHOLE_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Directory for objects, the account and its credentials [default: ./keyhole-data].
    #[arg(long, env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Base domain for virtual-host style requests (BUCKET.DOMAIN); path style always works.
    #[arg(long, env = "KEYHOLE_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Region reported to clients and given to new buckets [default: us-east-1].
    #[arg(long, env = "KEYHOLE_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// A proxy (CIDR) whose X-Forwarded-For header is believed for aws:SourceIp; repeat for
    /// several. Without it only the TCP peer address counts.
    #[arg(
        long = "trusted-proxy",
        env = "KEYHOLE_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Read the verification keys of the OIDC issuer ISSUER from FILE (a JWKS document) instead
    /// of fetching them from the issuer: for clusters whose issuer the gateway cannot reach
    /// (e.g. `kubectl get --raw /openid/v1/jwks > FILE`). Repeat for several issuers. The file is
    /// read again when a token names a key it lacks, so replacing it rotates keys.
    #[arg(
        long = "oidc-jwks",
        env = "KEYHOLE_OIDC_JWKS",
        value_name = "ISSUER=FILE",
        value_delimiter = ','
    )]
    pub oidc_jwks: Vec<String>,
    /// Serve writes and deletes even when the audit trail cannot be written (the default is to
    /// refuse them with 503: fail closed).
    #[arg(long, env = "KEYHOLE_AUDIT_FAIL_OPEN", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub audit_fail_open: Option<bool>,
    /// Start a new audit file at this size in bytes [default: 67108864].
    #[arg(long, env = "KEYHOLE_AUDIT_ROTATE_BYTES", value_name = "BYTES")]
    pub audit_rotate_bytes: Option<u64>,
    /// Start a new audit file at this age in seconds [default: 3600].
    #[arg(long, env = "KEYHOLE_AUDIT_ROTATE_SECONDS", value_name = "SECS")]
    pub audit_rotate_seconds: Option<u64>,
    /// Remove audit trail files whose newest event (as signed in their closing digest, never the
    /// file's mtime) is older than this many days, behind a signed retention digest so
    /// `keyhole audit verify` still checks the rest [default: 0 = keep everything].
    #[arg(long, env = "KEYHOLE_AUDIT_RETAIN_DAYS", value_name = "DAYS")]
    pub audit_retain_days: Option<u64>,
    /// Sign an audit digest at least this often, even when idle: the longest an event stays
    /// unsigned (besides at most 1024 events) [default: 60, 1 to 3600].
    #[arg(long, env = "KEYHOLE_AUDIT_DIGEST_SECONDS", value_name = "SECS")]
    pub audit_digest_seconds: Option<u64>,
    /// The Ed25519 private key (PKCS#8 PEM; `keyhole audit keygen --out FILE`) that signs the
    /// audit digests, read once at start: keep it outside the data directory (a root-owned file,
    /// /dev/fd/N, a systemd credential). [default: DATA_DIR/audit-signing.key, created at first
    /// start]
    #[arg(long, env = "KEYHOLE_AUDIT_SIGNING_KEY", value_name = "FILE")]
    pub audit_signing_key: Option<PathBuf>,
    /// Fingerprint of a signing key the operator trusts; repeat (or separate with commas) while
    /// rotating keys. With any given, the gateway refuses to start with another key, and accepts
    /// digests signed by these at start.
    #[arg(
        long = "audit-key-fingerprint",
        env = "KEYHOLE_AUDIT_KEY_FINGERPRINTS",
        value_name = "HEX",
        value_delimiter = ','
    )]
    pub audit_key_fingerprints: Vec<String>,
    /// Start even though the audit trail does not match its signed digests: sign a
    /// discontinuity digest naming the events given up, log an error, count it in /metrics, and
    /// go on after them. Without it the gateway refuses to start. A flag only (no variable, no
    /// file key): use it once, after finding out what happened with `keyhole audit verify`.
    #[arg(long)]
    pub audit_accept_discontinuity: bool,
    /// Lifetime of one job session in seconds, 15 to 43200 [default: 3600]; SDKs using the
    /// credential endpoint refresh before it ends, and no session outlives its job's window.
    #[arg(long, env = "KEYHOLE_JOB_SESSION_SECS", value_name = "SECS")]
    pub job_session_secs: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. Every
    /// connection is then TLS and requests have aws:SecureTransport = true. `kill -HUP` reads
    /// both files again: new connections get a renewed certificate (one that does not load is
    /// logged and the previous one kept).
    #[arg(long, env = "KEYHOLE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "KEYHOLE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to send a complete request head: from connecting for the first
    /// request, from its first byte for later ones (slowloris clients are closed) [default: 10].
    #[arg(long, env = "KEYHOLE_HEADER_TIMEOUT_SECS", value_name = "SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request [default: 30].
    #[arg(long, env = "KEYHOLE_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Body progress: every this many seconds of waiting for a request body must bring
    /// --body-min-rate bytes a second, or the request fails with RequestTimeout; slow uploads
    /// that keep moving are never cut [default: 20].
    #[arg(long, env = "KEYHOLE_BODY_TIMEOUT_SECS", value_name = "SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Bytes a second a request body must average over each --body-timeout-secs window of
    /// waiting (0: at least one byte a window) [default: 1024].
    #[arg(long, env = "KEYHOLE_BODY_MIN_RATE", value_name = "BYTES")]
    pub body_min_rate: Option<u64>,
    /// Most open client connections; above 90 % of it, connections between requests are
    /// closed to keep room for new clients [default: 4096, or what the open-file limit allows
    /// at two descriptors a connection].
    #[arg(long, env = "KEYHOLE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u64>,
    /// Most connections from one source address (an IPv6 /64); trusted proxies are exempt
    /// [default: 256].
    #[arg(long, env = "KEYHOLE_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<u64>,
    /// Start even when the data directory is group- or world-accessible (the default is to
    /// refuse, naming the chmod that fixes it); new files are still created 0600.
    #[arg(long, env = "KEYHOLE_ALLOW_SHARED_DATA_DIR", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_shared_data_dir: Option<bool>,
    /// Keep buckets in another S3 service (AWS S3, MinIO, Ceph RGW, R2, GCS, another keyhole):
    /// its root URL, e.g. https://s3.eu-west-1.amazonaws.com. Every request is authenticated,
    /// authorized and audited here first, then sent with keyhole's own upstream credentials
    /// (docs/UPSTREAM.md). Buckets go upstream under the same name unless the config file's
    /// [buckets] table says otherwise.
    #[arg(long, env = "KEYHOLE_UPSTREAM_ENDPOINT", value_name = "URL")]
    pub upstream_endpoint: Option<String>,
    /// Region upstream requests are signed for [default: us-east-1].
    #[arg(long, env = "KEYHOLE_UPSTREAM_REGION", value_name = "REGION")]
    pub upstream_region: Option<String>,
    /// Shared-credentials file (aws_access_key_id, aws_secret_access_key[, aws_session_token])
    /// with keyhole's upstream credentials [default: the AWS chain: AWS_ACCESS_KEY_ID..., then
    /// ~/.aws/credentials, then ~/.aws/config with credential_process].
    #[arg(long, env = "KEYHOLE_UPSTREAM_CREDENTIALS_FILE", value_name = "FILE")]
    pub upstream_credentials_file: Option<PathBuf>,
    /// Profile of the upstream credentials [default: default, or AWS_PROFILE without
    /// --upstream-credentials-file].
    #[arg(long, env = "KEYHOLE_UPSTREAM_PROFILE", value_name = "PROFILE")]
    pub upstream_profile: Option<String>,
    /// Address upstream buckets in the path (http://host/bucket/key), as MinIO and Ceph usually
    /// need, instead of the host name (http://bucket.host/key); IP-address endpoints always use
    /// the path.
    #[arg(long, env = "KEYHOLE_UPSTREAM_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub upstream_path_style: Option<bool>,
    /// Extra certificates (PEM) to trust for an https upstream, besides the system's roots.
    #[arg(long, env = "KEYHOLE_UPSTREAM_CA_BUNDLE", value_name = "FILE")]
    pub upstream_ca_bundle: Option<PathBuf>,
    /// Requests in flight to the upstream at once; more wait for a turn, up to
    /// --upstream-timeout-secs, then get 503 SlowDown [default: 128].
    #[arg(long, env = "KEYHOLE_UPSTREAM_MAX_CONCURRENCY", value_name = "N")]
    pub upstream_max_concurrency: Option<u64>,
    /// Seconds the upstream may take to accept a connection, to answer a request, and between
    /// two pieces of a response body [default: 60].
    #[arg(long, env = "KEYHOLE_UPSTREAM_TIMEOUT_SECS", value_name = "SECS")]
    pub upstream_timeout_secs: Option<u64>,
    /// Retries (with backoff) of an idempotent upstream request after a connection failure or a
    /// 500/502/503/504 [default: 2].
    #[arg(long, env = "KEYHOLE_UPSTREAM_RETRIES", value_name = "N")]
    pub upstream_retries: Option<u32>,
    /// Where buckets the [buckets] table does not name live: local or upstream [default:
    /// upstream with --upstream-endpoint, local without].
    #[arg(long, env = "KEYHOLE_DEFAULT_BACKEND", value_name = "local|upstream")]
    pub default_backend: Option<String>,
    /// Where users, keys, policies, jobs and revocations live: `sqlite` (DATA_DIR/state.db, one
    /// node) or postgres://USER@HOST:PORT/DB, one database several nodes share (each with its
    /// own data directory); needs --master-key-file [default: sqlite].
    #[arg(long, env = "KEYHOLE_STATE", value_name = "URL")]
    pub state: Option<String>,
    /// The master key every node of a PostgreSQL state shares (64 hex digits; the first node
    /// creates it, 0600): it seals secrets and session tokens, so give every node the same file.
    /// A node whose key does not open the database's account is refused.
    #[arg(long, env = "KEYHOLE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// With a PostgreSQL state: how long a node that cannot read the database keeps serving its
    /// snapshot before it refuses requests with 503 (control-plane writes are refused at
    /// once) [default: 30].
    #[arg(long, env = "KEYHOLE_STATE_MAX_STALENESS_SECS", value_name = "SECS")]
    pub state_max_staleness_secs: Option<u64>,
    /// Warn (in the log, at start and then daily) about every active access key at least DAYS
    /// days old, and count them in /metrics (keyhole_access_keys_over_max_age). The gateway
    /// never deactivates a key itself: `keyhole admin keys --enforce` does, as an audited IAM
    /// call [default: no bound].
    #[arg(long, env = "KEYHOLE_MAX_KEY_AGE_DAYS", value_name = "DAYS")]
    pub max_key_age_days: Option<u64>,
}

/// Sends `tracing` output to stderr in the chosen format; `RUST_LOG` filters (default `info`).
pub fn install_tracing(format: &LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let c = Cli::try_parse_from([
            "keyhole",
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--data-dir",
            "/d",
            "--domain",
            "x.test",
        ])
        .unwrap();
        let Command::Serve(s) = c.command else {
            panic!("expected serve");
        };
        assert_eq!(s.listen.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(s.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(s.domain.as_deref(), Some("x.test"));
        assert_eq!(s.audit_fail_open, None);
    }

    #[test]
    fn tls_flags_parse() {
        let c = Cli::try_parse_from([
            "keyhole",
            "serve",
            "--tls-cert",
            "/etc/kh/cert.pem",
            "--tls-key",
            "/etc/kh/key.pem",
        ])
        .unwrap();
        let Command::Serve(s) = c.command else {
            panic!("expected serve");
        };
        assert_eq!(s.tls_cert, Some(PathBuf::from("/etc/kh/cert.pem")));
        assert_eq!(s.tls_key, Some(PathBuf::from("/etc/kh/key.pem")));
    }

    #[test]
    fn audit_fail_open_flag_forms() {
        for (args, want) in [
            (vec!["--audit-fail-open"], Some(true)),
            (vec!["--audit-fail-open=false"], Some(false)),
            (vec![], None),
        ] {
            let c = Cli::try_parse_from(["keyhole", "serve"].into_iter().chain(args)).unwrap();
            let Command::Serve(s) = c.command else {
                panic!("expected serve");
            };
            assert_eq!(s.audit_fail_open, want);
        }
    }

    #[test]
    fn audit_query_flags_parse() {
        let c = Cli::try_parse_from([
            "keyhole",
            "audit",
            "query",
            "--since",
            "1h",
            "--decision",
            "deny",
            "--format",
            "jsonl",
            "--bucket",
            "b",
            "--prefix",
            "p/",
            "--status",
            "403",
        ])
        .unwrap();
        let Command::Audit {
            command: crate::audit_cmd::AuditCommand::Query(q),
        } = c.command
        else {
            panic!("expected audit query");
        };
        assert_eq!(q.decision, Some(crate::audit_cmd::DecisionArg::Deny));
        assert_eq!(q.format, crate::audit_cmd::Format::Jsonl);
        assert_eq!(q.status, Some(403));
    }
}
