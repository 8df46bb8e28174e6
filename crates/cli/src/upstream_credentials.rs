//! keyhole's own credentials for the upstream S3 service, found the way the AWS CLI finds a
//! user's ([`crate::aws_chain`]): with `--upstream-credentials-file`, only that shared-credentials
//! file (its `--upstream-profile` section, `default` otherwise); without it, the standard chain
//! (environment keys, web identity, `~/.aws/credentials`, `~/.aws/config` with
//! `credential_process`, container credentials, and last the EC2 instance metadata service, as
//! the SDKs end their chain), each exchange done by [`crate::exchange`]. A web
//! identity token is exchanged at `AWS_ENDPOINT_URL_STS` if set, else at the upstream's STS
//! (`https://sts.REGION.amazonaws.com` for AWS, the upstream endpoint itself for any other store:
//! MinIO and keyhole answer STS on their S3 endpoint). The chain is read again whenever the
//! credentials are refreshed, so a rotated token file or renewed container credentials are used.
//!
//! # Security
//! These are the gateway's credentials, never a client's; the error messages of the chain name
//! files and profiles, never a secret.

use std::path::PathBuf;

use keyhole_server::backend::upstream::credentials::CredentialSource;

use crate::aws_chain;

/// The upstream credentials' source.
#[derive(Debug)]
pub struct ChainSource {
    file: Option<PathBuf>,
    profile: Option<String>,
    /// Where a web identity is exchanged.
    sts_endpoint: String,
    region: String,
    ca_bundle: Option<PathBuf>,
}

impl ChainSource {
    /// Reads `file` (a shared-credentials file) when given, else the AWS chain; `profile` names
    /// the profile in either.
    pub fn new(file: Option<PathBuf>, profile: Option<String>) -> ChainSource {
        ChainSource {
            file,
            profile,
            sts_endpoint: String::new(),
            region: "us-east-1".to_owned(),
            ca_bundle: None,
        }
    }

    /// Exchanges web identities at the STS of the upstream `endpoint` (in `region`), trusting
    /// `ca_bundle` too.
    pub fn for_upstream(
        mut self,
        endpoint: &str,
        region: &str,
        ca_bundle: Option<PathBuf>,
    ) -> ChainSource {
        let aws = endpoint.contains(".amazonaws.com");
        self.sts_endpoint = std::env::var("AWS_ENDPOINT_URL_STS")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                if aws {
                    format!("https://sts.{region}.amazonaws.com")
                } else {
                    endpoint.to_owned()
                }
            });
        self.region = region.to_owned();
        self.ca_bundle = ca_bundle;
        self
    }

    /// The environment the chain sees: with a file, that file alone (no keys from the
    /// environment, no profile variables, no config file).
    fn env(&self, name: &str) -> Option<String> {
        let real = || std::env::var(name).ok().filter(|v| !v.is_empty());
        match &self.file {
            None => real(),
            Some(file) => match name {
                "AWS_SHARED_CREDENTIALS_FILE" => Some(file.display().to_string()),
                "AWS_CONFIG_FILE" => Some("/dev/null".to_owned()),
                "HOME" => real(),
                _ => None,
            },
        }
    }
}

impl CredentialSource for ChainSource {
    fn resolve(&self) -> Result<keyhole_sigv4::Credentials, String> {
        let profile = match (&self.profile, &self.file) {
            (Some(p), _) => Some(p.as_str()),
            (None, Some(_)) => Some("default"),
            (None, None) => None,
        };
        let env = |name: &str| self.env(name);
        let found = match aws_chain::resolve(profile, &env) {
            Ok(found) => found,
            // The SDKs' last provider: the role of the EC2 instance keyhole runs on. Never with
            // a credentials file named (that file is the only source then).
            Err(e @ aws_chain::ChainError::NoCredentials { .. }) if self.file.is_none() => {
                let Some(imds) = crate::exchange::Imds::from_env(&env)? else {
                    return Err(format!(
                        "{e} (EC2 instance metadata: AWS_EC2_METADATA_DISABLED)"
                    ));
                };
                return crate::exchange::instance_metadata(&imds).map_err(|imds_error| {
                    format!("{e}; and EC2 instance metadata: {imds_error} (set AWS_EC2_METADATA_DISABLED=true where there is none)")
                });
            }
            Err(e) => return Err(e.to_string()),
        };
        if found.web_identity.is_some() && self.sts_endpoint.is_empty() {
            return Err("a web identity needs an STS endpoint to be exchanged at".to_owned());
        }
        crate::exchange::credentials(
            &found,
            &self.sts_endpoint,
            &self.region,
            self.ca_bundle.as_deref(),
        )
    }

    fn describe(&self) -> String {
        let profile = self.profile.as_deref().unwrap_or("default");
        match &self.file {
            Some(f) => format!("shared credentials file {} [{profile}]", f.display()),
            None => "the AWS credential chain".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_file_is_the_only_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = s1\n[up]\naws_access_key_id = AKIUP\naws_secret_access_key = s2\naws_session_token = t\n",
        )
        .unwrap();
        let c = ChainSource::new(Some(path.clone()), None)
            .resolve()
            .unwrap();
        assert_eq!(c.access_key_id, "AKIDEFAULT");
        assert_eq!(c.secret_key.expose(), "s1");
        let c = ChainSource::new(Some(path.clone()), Some("up".into()))
            .resolve()
            .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKIUP", Some("t"))
        );
        let e = ChainSource::new(Some(path), Some("missing".into()))
            .resolve()
            .unwrap_err();
        assert!(e.contains("missing"), "{e}");
        assert!(!e.contains("s1") && !e.contains("s2"), "{e}");
    }
}
