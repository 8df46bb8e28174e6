//! Where buckets live: the local store, or an upstream S3 service (`upstream_*` settings and the
//! `[buckets]` table), validated when the configuration is loaded.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ConfigError;

/// Default number of requests in flight to the upstream at once; more wait (up to the timeout).
pub const DEFAULT_UPSTREAM_MAX_CONCURRENCY: u64 = 128;
/// Largest `upstream_max_concurrency` accepted.
pub const MAX_UPSTREAM_MAX_CONCURRENCY: u64 = 65_536;
/// Default seconds the upstream may take to answer (to connect, to send a response head after
/// the request, or between two pieces of a response body).
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 60;
/// Default number of retries of an idempotent request that failed in a way worth retrying.
pub const DEFAULT_UPSTREAM_RETRIES: u32 = 2;
/// Most retries accepted.
pub const MAX_UPSTREAM_RETRIES: u32 = 10;
/// Longest prefix a bucket may be mapped onto (bytes): keys under it still have room.
pub const MAX_MAPPED_PREFIX_BYTES: usize = 512;

/// Which backend keeps a bucket that the `[buckets]` table does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded local-disk store.
    Local,
    /// The upstream S3 service, under the same bucket name.
    Upstream,
}

/// Where one bucket named in the `[buckets]` table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketTarget {
    /// The embedded local-disk store (`"local"`).
    Local,
    /// `"UPSTREAM-BUCKET"` or `"UPSTREAM-BUCKET/PREFIX/"`: the keyhole bucket's key `K` is the
    /// upstream key `PREFIX/K`.
    Upstream {
        /// The upstream bucket.
        bucket: String,
        /// The prefix every key is kept under: empty, or ending in `/`.
        prefix: String,
    },
}

/// How to reach the upstream S3 service and what it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// `http://` or `https://`, host and optional port, nothing else.
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// A shared-credentials file (INI: `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_session_token`) holding keyhole's own upstream credentials; `None` uses the standard
    /// AWS chain (environment, `~/.aws/credentials`, `~/.aws/config`).
    pub credentials_file: Option<PathBuf>,
    /// The profile to read (default: `default`, or the chain's `AWS_PROFILE`).
    pub profile: Option<String>,
    /// Address buckets in the path (`https://host/bucket/key`) instead of the host name.
    pub path_style: bool,
    /// Extra certificates (PEM) to trust for an https endpoint.
    pub ca_bundle: Option<PathBuf>,
    /// Requests in flight to the upstream at once.
    pub max_concurrency: u64,
    /// Seconds to connect, to get a response head, and between pieces of a response body.
    pub timeout_secs: u64,
    /// Retries of idempotent requests after a connection failure or a 500/502/503/504.
    pub retries: u32,
}

/// The storage part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The upstream S3 service, when one is configured.
    pub upstream: Option<UpstreamConfig>,
    /// Buckets with a place of their own.
    pub buckets: BTreeMap<String, BucketTarget>,
    /// Where every other bucket lives: `upstream` when an upstream is configured, `local`
    /// otherwise, unless `default_backend` says.
    pub default_backend: BackendKind,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            upstream: None,
            buckets: BTreeMap::new(),
            default_backend: BackendKind::Local,
        }
    }
}

/// The storage settings as given (flags and variables first, then the file).
#[derive(Debug, Default, Clone)]
pub struct StorageSettings {
    /// `upstream_endpoint`.
    pub endpoint: Option<String>,
    /// `upstream_region`.
    pub region: Option<String>,
    /// `upstream_credentials_file`.
    pub credentials_file: Option<PathBuf>,
    /// `upstream_profile`.
    pub profile: Option<String>,
    /// `upstream_path_style`.
    pub path_style: Option<bool>,
    /// `upstream_ca_bundle`.
    pub ca_bundle: Option<PathBuf>,
    /// `upstream_max_concurrency`.
    pub max_concurrency: Option<u64>,
    /// `upstream_timeout_secs`.
    pub timeout_secs: Option<u64>,
    /// `upstream_retries`.
    pub retries: Option<u32>,
    /// `default_backend`.
    pub default_backend: Option<String>,
    /// The `[buckets]` table (file only).
    pub buckets: BTreeMap<String, String>,
}

impl StorageSettings {
    /// `self` where given, `file` otherwise (the table comes from the file).
    pub fn or(self, file: StorageSettings) -> StorageSettings {
        StorageSettings {
            endpoint: self.endpoint.or(file.endpoint),
            region: self.region.or(file.region),
            credentials_file: self.credentials_file.or(file.credentials_file),
            profile: self.profile.or(file.profile),
            path_style: self.path_style.or(file.path_style),
            ca_bundle: self.ca_bundle.or(file.ca_bundle),
            max_concurrency: self.max_concurrency.or(file.max_concurrency),
            timeout_secs: self.timeout_secs.or(file.timeout_secs),
            retries: self.retries.or(file.retries),
            default_backend: self.default_backend.or(file.default_backend),
            buckets: file.buckets,
        }
    }
}

/// Checks an upstream endpoint: `http://` or `https://`, a host, an optional port, nothing more.
fn check_endpoint(text: &str) -> Result<String, ConfigError> {
    let invalid = |hint: &'static str| ConfigError::Invalid {
        field: "upstream_endpoint",
        value: text.to_owned(),
        hint,
    };
    let trimmed = text.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().map_err(|_| {
        invalid("use a URL such as https://s3.us-east-1.amazonaws.com or http://127.0.0.1:9000")
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("use an http:// or https:// URL")),
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("the URL names no host"));
    };
    if authority.as_str().contains('@') {
        return Err(invalid(
            "credentials do not belong in the URL: use upstream_credentials_file",
        ));
    }
    if authority.host().is_empty() {
        return Err(invalid("the URL names no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "give the service's root URL only, with no path or query (buckets are added by keyhole)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Parses one `[buckets]` entry.
fn parse_target(name: &str, value: &str) -> Result<BucketTarget, ConfigError> {
    let invalid = |hint: &'static str| ConfigError::Invalid {
        field: "buckets",
        value: format!("{name} = \"{value}\""),
        hint,
    };
    keyhole_store::validate_bucket_name(name).map_err(|_| {
        invalid(
            "the key must be a valid S3 bucket name (3-63 lowercase letters, digits, '-' and '.')",
        )
    })?;
    if value == "local" {
        return Ok(BucketTarget::Local);
    }
    let (bucket, prefix) = value.split_once('/').unwrap_or((value, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !bucket_ok {
        return Err(invalid(
            "use \"local\", \"UPSTREAM-BUCKET\" or \"UPSTREAM-BUCKET/PREFIX\" with an upstream bucket name of 3-63 letters, digits, '-', '.' or '_'",
        ));
    }
    if prefix.len() > MAX_MAPPED_PREFIX_BYTES {
        return Err(invalid("a mapped prefix may be at most 512 bytes"));
    }
    if prefix.starts_with('/')
        || prefix.contains("//")
        || prefix.chars().any(char::is_control)
        || prefix.split('/').any(|s| s == "." || s == "..")
    {
        return Err(invalid(
            "a mapped prefix is path segments separated by single '/', none of them `.` or `..`",
        ));
    }
    let mut prefix = prefix.to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(BucketTarget::Upstream {
        bucket: bucket.to_owned(),
        prefix,
    })
}

/// Validates the storage settings.
pub fn load(s: StorageSettings) -> Result<StorageConfig, ConfigError> {
    let upstream = match s.endpoint {
        Some(endpoint) => {
            let endpoint = check_endpoint(&endpoint)?;
            let region = s.region.unwrap_or_else(|| super::DEFAULT_REGION.to_owned());
            super::check_region("upstream_region", &region)?;
            if s.profile.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::Invalid {
                    field: "upstream_profile",
                    value: String::new(),
                    hint: "name a profile of the credentials file, e.g. default",
                });
            }
            let max_concurrency = s
                .max_concurrency
                .unwrap_or(DEFAULT_UPSTREAM_MAX_CONCURRENCY);
            if !(1..=MAX_UPSTREAM_MAX_CONCURRENCY).contains(&max_concurrency) {
                return Err(ConfigError::Invalid {
                    field: "upstream_max_concurrency",
                    value: max_concurrency.to_string(),
                    hint: "use 1 to 65536 requests in flight (default 128)",
                });
            }
            let timeout_secs = s.timeout_secs.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_SECS);
            if !(1..=super::MAX_TIMEOUT_SECS).contains(&timeout_secs) {
                return Err(ConfigError::Invalid {
                    field: "upstream_timeout_secs",
                    value: timeout_secs.to_string(),
                    hint: "use 1 to 3600 seconds (default 60)",
                });
            }
            let retries = s.retries.unwrap_or(DEFAULT_UPSTREAM_RETRIES);
            if retries > MAX_UPSTREAM_RETRIES {
                return Err(ConfigError::Invalid {
                    field: "upstream_retries",
                    value: retries.to_string(),
                    hint: "use 0 to 10 retries (default 2)",
                });
            }
            Some(UpstreamConfig {
                endpoint,
                region,
                credentials_file: s.credentials_file,
                profile: s.profile,
                path_style: s.path_style.unwrap_or(false),
                ca_bundle: s.ca_bundle,
                max_concurrency,
                timeout_secs,
                retries,
            })
        }
        None => {
            let given = [
                ("upstream_region", s.region.is_some()),
                ("upstream_credentials_file", s.credentials_file.is_some()),
                ("upstream_profile", s.profile.is_some()),
                ("upstream_path_style", s.path_style.is_some()),
                ("upstream_ca_bundle", s.ca_bundle.is_some()),
                ("upstream_max_concurrency", s.max_concurrency.is_some()),
                ("upstream_timeout_secs", s.timeout_secs.is_some()),
                ("upstream_retries", s.retries.is_some()),
            ];
            if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
                return Err(ConfigError::Incomplete {
                    given: name,
                    missing: "upstream_endpoint",
                    hint: "the upstream settings apply to an upstream S3 service: name it with --upstream-endpoint URL (KEYHOLE_UPSTREAM_ENDPOINT, or upstream_endpoint in the config file)",
                });
            }
            None
        }
    };
    let default_backend = match s.default_backend.as_deref() {
        None if upstream.is_some() => BackendKind::Upstream,
        None | Some("local") => BackendKind::Local,
        Some("upstream") if upstream.is_some() => BackendKind::Upstream,
        Some("upstream") => {
            return Err(ConfigError::Incomplete {
                given: "default_backend",
                missing: "upstream_endpoint",
                hint: "buckets can live upstream only when an upstream is configured: add --upstream-endpoint URL",
            })
        }
        Some(other) => {
            return Err(ConfigError::Invalid {
                field: "default_backend",
                value: other.to_owned(),
                hint: "use local or upstream",
            })
        }
    };
    let mut buckets = BTreeMap::new();
    for (name, value) in s.buckets {
        let target = parse_target(&name, &value)?;
        if matches!(target, BucketTarget::Upstream { .. }) && upstream.is_none() {
            return Err(ConfigError::Incomplete {
                given: "buckets",
                missing: "upstream_endpoint",
                hint: "a bucket mapped onto an upstream bucket needs an upstream: add --upstream-endpoint URL",
            });
        }
        buckets.insert(name, target);
    }
    Ok(StorageConfig {
        upstream,
        buckets,
        default_backend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_endpoint(endpoint: &str) -> StorageSettings {
        StorageSettings {
            endpoint: Some(endpoint.to_owned()),
            ..StorageSettings::default()
        }
    }

    #[test]
    fn endpoints_are_bare_http_urls() {
        let c = load(with_endpoint("http://127.0.0.1:9000/")).unwrap();
        let u = c.upstream.unwrap();
        assert_eq!(u.endpoint, "http://127.0.0.1:9000");
        assert_eq!(u.region, "us-east-1");
        assert!(!u.path_style);
        assert_eq!(c.default_backend, BackendKind::Upstream);
        for bad in [
            "ftp://x",
            "127.0.0.1:9000",
            "https://h/bucket",
            "https://h?x=1",
            "https://user:pw@h",
            "not a url",
        ] {
            let e = load(with_endpoint(bad)).unwrap_err().to_string();
            assert!(e.contains("upstream_endpoint"), "{bad}: {e}");
        }
    }

    #[test]
    fn upstream_settings_need_an_endpoint() {
        let e = load(StorageSettings {
            region: Some("eu-west-1".into()),
            ..StorageSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("upstream_region") && e.contains("upstream_endpoint"),
            "{e}"
        );
        let e = load(StorageSettings {
            default_backend: Some("upstream".into()),
            ..StorageSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("default_backend"), "{e}");
        let c = load(StorageSettings::default()).unwrap();
        assert_eq!(c, StorageConfig::default());
    }

    #[test]
    fn bucket_table_entries_parse_and_cannot_escape() {
        let mut s = with_endpoint("https://s3.example");
        s.buckets
            .insert("datasets".into(), "acme-ml/datasets".into());
        s.buckets.insert("models".into(), "acme-models".into());
        s.buckets.insert("scratch".into(), "local".into());
        let c = load(s).unwrap();
        assert_eq!(
            c.buckets.get("datasets"),
            Some(&BucketTarget::Upstream {
                bucket: "acme-ml".into(),
                prefix: "datasets/".into()
            })
        );
        assert_eq!(
            c.buckets.get("models"),
            Some(&BucketTarget::Upstream {
                bucket: "acme-models".into(),
                prefix: String::new()
            })
        );
        assert_eq!(c.buckets.get("scratch"), Some(&BucketTarget::Local));
        for (name, value) in [
            ("ok-name", "acme/../other"),
            ("ok-name", "acme/a/./b"),
            ("ok-name", "acme//a"),
            ("ok-name", "acme/a//b"),
            ("ok-name", "a"),
            ("ok-name", "acme bucket/x"),
            ("Bad_Name", "acme"),
        ] {
            let mut s = with_endpoint("https://s3.example");
            s.buckets.insert(name.into(), value.into());
            let e = load(s).unwrap_err().to_string();
            assert!(e.contains("buckets"), "{value}: {e}");
        }
        // A mapping onto an upstream bucket needs an upstream; "local" does not.
        let mut s = StorageSettings::default();
        s.buckets.insert("scratch".into(), "local".into());
        assert!(load(s.clone()).is_ok());
        s.buckets.insert("datasets".into(), "acme".into());
        assert!(load(s).is_err());
    }

    #[test]
    fn limits_are_checked() {
        for s in [
            StorageSettings {
                max_concurrency: Some(0),
                ..with_endpoint("http://h")
            },
            StorageSettings {
                timeout_secs: Some(0),
                ..with_endpoint("http://h")
            },
            StorageSettings {
                retries: Some(11),
                ..with_endpoint("http://h")
            },
            StorageSettings {
                region: Some("US EAST".into()),
                ..with_endpoint("http://h")
            },
            StorageSettings {
                default_backend: Some("s3".into()),
                ..with_endpoint("http://h")
            },
        ] {
            assert!(load(s).is_err());
        }
    }
}
