//! IAM OpenID Connect identity providers: which issuers' tokens `AssumeRoleWithWebIdentity`
//! accepts, for which audiences (client ids)
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateOpenIDConnectProvider.html).
//!
//! A provider is named by its URL (`https://HOST[/PATH]`, the `iss` of its tokens); its ARN is
//! `arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]`. Client ids, thumbprints and tags are kept
//! as JSON lists in the provider's row.

use std::sync::Arc;

use std::collections::HashMap;

use super::db::{Conn, Touched, Tx};
use super::{now, validate_tag, State, StateError};
use crate::oidc::{provider_arn, Provider};
use crate::params;

/// The table (created at every open if missing).
pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS oidc_providers (
    url TEXT PRIMARY KEY, client_ids TEXT NOT NULL, thumbprints TEXT NOT NULL,
    tags TEXT NOT NULL, created TEXT NOT NULL)";

/// AWS's quotas: 100 providers per account, 100 client ids per provider, 5 thumbprints, 50 tags
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
pub const MAX_PROVIDERS: usize = 100;
/// Client ids per provider.
pub const MAX_CLIENT_IDS: usize = 100;
/// Thumbprints per provider.
pub const MAX_THUMBPRINTS: usize = 5;
/// Tags per provider.
pub const MAX_TAGS: usize = 50;

/// A provider as the snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEntry {
    /// The provider.
    pub provider: Provider,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

fn validation(m: String) -> StateError {
    StateError::Validation(m)
}

/// `Url`: `https://HOST[:PORT][/PATH]`, at most 255 characters: a DNS name (letters, digits,
/// `-`, dots between labels) or an IP address, a numeric port, path segments of letters, digits
/// and `-._~` other than `.` and `..`; no query, fragment, user info or escapes. The URL names
/// condition keys (`HOST[/PATH]:sub`), so nothing in it may pass for another key (review round
/// 4: `https://aws:PrincipalTag/team` was accepted).
pub fn validate_url(url: &str) -> Result<(), StateError> {
    let bad = || {
        validation(format!(
            "Url `{url}` is not a valid issuer URL: https://HOST[:PORT][/PATH] with a DNS name or IP address, a numeric port and a plain path, at most 255 characters, without query, fragment, user info or %-escapes"
        ))
    };
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        validation(format!(
            "Url `{url}` must begin with https:// (the issuer URL of the provider's tokens)"
        ))
    })?;
    if url.len() > 255 {
        return Err(bad());
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        (None, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(authority), None),
        }
    };
    if let Some(h) = host {
        let dns = !h.is_empty()
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !dns {
            return Err(bad());
        }
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|n| n > 0) {
            return Err(bad());
        }
    }
    if !path.is_empty() {
        let ok = path.trim_end_matches('/').split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// A client id: 1 to 255 characters.
pub fn validate_client_id(id: &str) -> Result<(), StateError> {
    if (1..=255).contains(&id.chars().count()) {
        Ok(())
    } else {
        Err(validation(format!(
            "the client id `{id}` must have 1 to 255 characters"
        )))
    }
}

/// A thumbprint: 40 hexadecimal characters (the SHA-1 of a certificate).
pub fn validate_thumbprint(t: &str) -> Result<(), StateError> {
    if t.len() == 40 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(validation(format!(
            "the thumbprint `{t}` must be 40 hexadecimal characters (a certificate's SHA-1)"
        )))
    }
}

fn to_json(v: &impl serde::Serialize) -> Result<String, StateError> {
    serde_json::to_string(v).map_err(|e| validation(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StateError> {
    serde_json::from_str(s).map_err(|e| validation(format!("stored OIDC provider: {e}")))
}

type Row5 = (String, String, String, String, String);

const COLUMNS: &str = "url, client_ids, thumbprints, tags, created";

fn row5(r: &super::db::Row) -> Result<Row5, StateError> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn entry((url, ids, thumbs, tags, created): Row5) -> Result<ProviderEntry, StateError> {
    Ok(ProviderEntry {
        provider: Provider {
            url,
            client_ids: from_json(&ids)?,
            thumbprints: from_json(&thumbs)?,
            created,
        },
        tags: from_json(&tags)?,
    })
}

/// Loads every provider (or the one with URL `one`) into the snapshot's map.
pub(super) fn load(
    db: &dyn Conn,
    map: &mut HashMap<String, Arc<ProviderEntry>>,
    one: Option<&str>,
) -> Result<(), StateError> {
    let rows = match one {
        Some(url) => {
            map.remove(url);
            db.query_map(
                &format!("SELECT {COLUMNS} FROM oidc_providers WHERE url = ?1"),
                params![url],
                row5,
            )?
        }
        None => db.query_map(
            &format!("SELECT {COLUMNS} FROM oidc_providers"),
            params![],
            row5,
        )?,
    };
    for r in rows {
        let e = entry(r)?;
        map.insert(e.provider.url.clone(), Arc::new(e));
    }
    Ok(())
}

fn check_tags(tags: &[(String, String)]) -> Result<(), StateError> {
    for (k, v) in tags {
        validate_tag(k, v)?;
    }
    if tags.len() > MAX_TAGS {
        return Err(StateError::LimitExceeded(format!(
            "a provider may have at most {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

impl State {
    /// The URL of the provider an ARN names, if the ARN is one of this account's provider ARNs.
    fn provider_url(&self, arn: &str) -> Result<String, StateError> {
        let prefix = format!("arn:aws:iam::{}:oidc-provider/", self.account_id);
        arn.strip_prefix(&prefix)
            .filter(|n| !n.is_empty())
            .map(|n| format!("https://{n}"))
            .ok_or_else(|| {
                validation(format!(
                    "`{arn}` is not an OIDC provider ARN of this account ({prefix}HOST[/PATH])"
                ))
            })
    }

    fn require_provider(db: &dyn Conn, url: &str, arn: &str) -> Result<ProviderEntry, StateError> {
        let row = db.query_opt(
            &format!("SELECT {COLUMNS} FROM oidc_providers WHERE url = ?1"),
            params![url],
            row5,
        )?;
        entry(row.ok_or_else(|| {
            StateError::NoSuchEntity(format!("OpenIDConnect Provider not found for arn {arn}"))
        })?)
    }

    fn save_provider(tx: &Tx<'_>, e: &ProviderEntry) -> Result<(), StateError> {
        tx.touch(Touched::OidcProvider(e.provider.url.clone()));
        tx.execute(
            "UPDATE oidc_providers SET client_ids = ?2, thumbprints = ?3, tags = ?4 WHERE url = ?1",
            params![
                e.provider.url,
                to_json(&e.provider.client_ids)?,
                to_json(&e.provider.thumbprints)?,
                to_json(&e.tags)?
            ],
        )?;
        Ok(())
    }

    /// The ARN of a provider.
    pub fn oidc_provider_arn(&self, p: &Provider) -> String {
        provider_arn(&self.account_id, &p.url)
    }

    /// CreateOpenIDConnectProvider; returns the new provider's ARN.
    pub fn create_oidc_provider(
        &self,
        url: &str,
        client_ids: &[String],
        thumbprints: &[String],
        tags: &[(String, String)],
    ) -> Result<String, StateError> {
        validate_url(url)?;
        for id in client_ids {
            validate_client_id(id)?;
        }
        for t in thumbprints {
            validate_thumbprint(t)?;
        }
        if client_ids.len() > MAX_CLIENT_IDS || thumbprints.len() > MAX_THUMBPRINTS {
            return Err(StateError::LimitExceeded(format!(
                "a provider may have at most {MAX_CLIENT_IDS} client ids and {MAX_THUMBPRINTS} thumbprints"
            )));
        }
        check_tags(tags)?;
        let mut ids: Vec<String> = Vec::new();
        for id in client_ids {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let arn = provider_arn(&self.account_id, url);
        self.change(|tx| {
            let count = tx.count("SELECT COUNT(*) FROM oidc_providers", params![])?;
            if count as usize >= MAX_PROVIDERS {
                return Err(StateError::LimitExceeded(format!(
                    "the account has {MAX_PROVIDERS} OIDC providers, the most it may have"
                )));
            }
            let exists: Option<String> = tx.query_opt(
                "SELECT url FROM oidc_providers WHERE url = ?1",
                params![url],
                |r| r.get(0),
            )?;
            if exists.is_some() {
                return Err(StateError::EntityAlreadyExists(format!(
                    "Provider with url {url} already exists."
                )));
            }
            tx.touch(Touched::OidcProvider(url.to_owned()));
            tx.execute(
                "INSERT INTO oidc_providers (url, client_ids, thumbprints, tags, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![url, to_json(&ids)?, to_json(&thumbprints)?, to_json(&tags)?, now()],
            )?;
            Ok(())
        })?;
        Ok(arn)
    }

    /// GetOpenIDConnectProvider.
    pub fn get_oidc_provider(&self, arn: &str) -> Result<ProviderEntry, StateError> {
        let url = self.provider_url(arn)?;
        self.with_db(|db| Self::require_provider(db, &url, arn))
    }

    /// ListOpenIDConnectProviders: every provider's ARN, sorted.
    pub fn list_oidc_providers(&self) -> Result<Vec<String>, StateError> {
        let mut arns: Vec<String> = self
            .snapshot()
            .oidc_providers
            .values()
            .map(|e| self.oidc_provider_arn(&e.provider))
            .collect();
        arns.sort();
        Ok(arns)
    }

    /// DeleteOpenIDConnectProvider. Sessions already issued through the provider keep working
    /// until they expire, as in AWS; new tokens are refused.
    pub fn delete_oidc_provider(&self, arn: &str) -> Result<(), StateError> {
        let url = self.provider_url(arn)?;
        self.change(|tx| {
            Self::require_provider(&**tx, &url, arn)?;
            tx.touch(Touched::OidcProvider(url.clone()));
            tx.execute("DELETE FROM oidc_providers WHERE url = ?1", params![url])?;
            Ok(())
        })
    }

    /// Applies `f` to a provider and stores the result.
    pub fn update_oidc_provider(
        &self,
        arn: &str,
        f: impl FnOnce(&mut ProviderEntry) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let url = self.provider_url(arn)?;
        self.change(|tx| {
            let mut e = Self::require_provider(&**tx, &url, arn)?;
            f(&mut e)?;
            if e.provider.client_ids.len() > MAX_CLIENT_IDS {
                return Err(StateError::LimitExceeded(format!(
                    "a provider may have at most {MAX_CLIENT_IDS} client ids"
                )));
            }
            check_tags(&e.tags)?;
            Self::save_provider(tx, &e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_client_ids_and_thumbprints_are_validated() {
        assert!(validate_url("https://token.actions.githubusercontent.com").is_ok());
        assert!(validate_url("https://127.0.0.1:8443/realms/ml").is_ok());
        assert!(validate_url("https://oidc.eks.us-east-1.amazonaws.com/id/ABC123").is_ok());
        assert!(validate_url("https://[::1]:8443/x").is_ok());
        assert!(validate_url("https://token.actions.githubusercontent.com/").is_ok());
        for bad in [
            "http://idp",
            "https://",
            "idp.example",
            "https://idp/x?y=1",
            "https://u@idp",
            "https://idp/a b",
            "https://aws:PrincipalTag/team",
            "https://idp:0",
            "https://idp:x/y",
            "https://*.example",
            "https://idp/../x",
            "https://idp/a/./b",
            "https://idp/%2e%2e",
            "https://-idp.example",
            "https://idp..example",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        assert!(validate_url(&format!("https://{}", "a".repeat(250))).is_err());
        assert!(validate_client_id("sts.amazonaws.com").is_ok());
        assert!(validate_client_id("").is_err());
        assert!(validate_thumbprint(&"a".repeat(40)).is_ok());
        assert!(validate_thumbprint(&"g".repeat(40)).is_err());
        assert!(validate_thumbprint("abc").is_err());
    }

    #[test]
    fn providers_are_created_listed_changed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), &[7u8; 32], "123456789012").unwrap();
        let arn = state
            .create_oidc_provider(
                "https://idp.example/realms/ml",
                &["keyhole".into(), "keyhole".into()],
                &[],
                &[("team".into(), "ml".into())],
            )
            .unwrap();
        assert_eq!(
            arn,
            "arn:aws:iam::123456789012:oidc-provider/idp.example/realms/ml"
        );
        let again = state.create_oidc_provider("https://idp.example/realms/ml", &[], &[], &[]);
        assert_eq!(again.unwrap_err().code(), "EntityAlreadyExists");
        let e = state.get_oidc_provider(&arn).unwrap();
        assert_eq!(e.provider.client_ids, ["keyhole"], "duplicates collapse");
        assert!(state
            .snapshot()
            .oidc_providers
            .contains_key("https://idp.example/realms/ml"));
        state
            .update_oidc_provider(&arn, |e| {
                e.provider.client_ids.push("other".into());
                Ok(())
            })
            .unwrap();
        assert_eq!(
            state.snapshot().oidc_providers["https://idp.example/realms/ml"]
                .provider
                .client_ids,
            ["keyhole", "other"]
        );
        assert_eq!(
            state.list_oidc_providers().unwrap(),
            std::slice::from_ref(&arn)
        );
        state.delete_oidc_provider(&arn).unwrap();
        assert_eq!(
            state.get_oidc_provider(&arn).unwrap_err().code(),
            "NoSuchEntity"
        );
        assert_eq!(
            state.delete_oidc_provider(&arn).unwrap_err().code(),
            "NoSuchEntity"
        );
        assert_eq!(
            state
                .get_oidc_provider("arn:aws:iam::999999999999:oidc-provider/idp.example")
                .unwrap_err()
                .code(),
            "ValidationError"
        );
        assert!(state.snapshot().oidc_providers.is_empty());
    }
}
