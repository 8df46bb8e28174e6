//! Managed policy versions
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-versioning.html):
//! `v1` is created with the policy, each CreatePolicyVersion takes the next number (never reused,
//! even after a delete), at most five are kept, and the default version is the one in force: it
//! is mirrored into `managed_policies.document` (see the INVARIANT beside the schema), which is
//! what attachments and boundaries compile.

use super::db::{Conn, Touched};
use crate::params;

use super::{
    compile_identity_policy, now, policy_chars, ManagedPolicyRecord, PolicyVersionRecord, State,
    StateError, MAX_MANAGED_POLICY_CHARS, MAX_POLICY_VERSIONS,
};

/// `v7` for version 7.
pub(super) fn version_id(n: i64) -> String {
    format!("v{n}")
}

/// The version number a `VersionId` names. AWS's pattern is `v[1-9][0-9]*(\.[A-Za-z0-9-]*)?`
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetPolicyVersion.html); keyhole only
/// creates the plain `vN` form, so an id with a suffix is valid but names no version (`None`).
fn parse_version_id(id: &str) -> Result<Option<i64>, StateError> {
    let invalid = || {
        StateError::Validation(format!(
            "1 validation error detected: Value '{id}' at 'versionId' failed to satisfy constraint: Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?"
        ))
    };
    let rest = id.strip_prefix('v').ok_or_else(invalid)?;
    let (digits, suffix) = match rest.split_once('.') {
        Some((d, s)) => (d, Some(s)),
        None => (rest, None),
    };
    let digits_ok = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.chars().all(|c| c.is_ascii_digit());
    let suffix_ok = suffix.is_none_or(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !digits_ok || !suffix_ok {
        return Err(invalid());
    }
    if suffix.is_some() {
        return Ok(None);
    }
    // More digits than any version count could reach: valid, but no such version.
    Ok(digits.parse::<i64>().ok())
}

impl State {
    fn policy_by_arn(
        tx: &dyn Conn,
        name: &str,
        arn: &str,
    ) -> Result<ManagedPolicyRecord, StateError> {
        Self::managed_by_name(tx, name)?
            .ok_or_else(|| StateError::NoSuchEntity(format!("Policy {arn} was not found.")))
    }

    fn load_version(
        db: &dyn Conn,
        name: &str,
        version: i64,
        default: i64,
    ) -> Result<Option<PolicyVersionRecord>, StateError> {
        db.query_opt(
            "SELECT document, created FROM policy_versions WHERE policy_name = ?1 AND version = ?2",
            params![name, version],
            |r| {
                Ok(PolicyVersionRecord {
                    id: version_id(version),
                    document: r.get(0)?,
                    is_default: version == default,
                    created: r.get(1)?,
                })
            },
        )
    }

    /// The version a `VersionId` names (its number and record), or `NoSuchEntity`.
    fn require_version(
        db: &dyn Conn,
        name: &str,
        arn: &str,
        id: &str,
    ) -> Result<(i64, PolicyVersionRecord), StateError> {
        let default: i64 = db.query_one(
            "SELECT default_version FROM managed_policies WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        let found = match parse_version_id(id)? {
            Some(n) => Self::load_version(db, name, n, default)?.map(|v| (n, v)),
            None => None,
        };
        found.ok_or_else(|| {
            StateError::NoSuchEntity(format!("Policy {arn} version {id} does not exist."))
        })
    }

    /// Makes `version` the one in force, keeping the INVARIANT on `managed_policies.document`.
    fn make_default(tx: &dyn Conn, name: &str, version: i64) -> Result<(), StateError> {
        tx.execute(
            "UPDATE managed_policies SET default_version = ?2,
                 document = (SELECT v.document FROM policy_versions v WHERE v.policy_name = ?1 AND v.version = ?2)
             WHERE name = ?1",
            params![name, version])?;
        Ok(())
    }

    /// CreatePolicyVersion: validated like CreatePolicy; `LimitExceeded` when five versions exist.
    pub fn create_policy_version(
        &self,
        arn: &str,
        doc: &str,
        set_as_default: bool,
    ) -> Result<PolicyVersionRecord, StateError> {
        let name = self.policy_name_from_arn(arn)?;
        if policy_chars(doc) > MAX_MANAGED_POLICY_CHARS {
            return Err(StateError::LimitExceeded(format!(
                "Cannot exceed quota for PolicySize: {MAX_MANAGED_POLICY_CHARS}"
            )));
        }
        compile_identity_policy(doc, &name)?;
        super::check_iam_sids(doc)?;
        self.change(|tx| {
            tx.touch(Touched::Policy(name.clone()));
            Self::policy_by_arn(tx, &name, arn)?;
            let (count, last): (i64, i64) = tx.query_one(
                "SELECT (SELECT count(*) FROM policy_versions v WHERE v.policy_name = m.name), m.last_version
                 FROM managed_policies m WHERE m.name = ?1",
                params![&name],
                |r| Ok((r.get(0)?, r.get(1)?)))?;
            if count as usize >= MAX_POLICY_VERSIONS {
                return Err(StateError::LimitExceeded(format!(
                    "A managed policy can have up to {MAX_POLICY_VERSIONS} versions. Before you create a new version, you must delete an existing version with DeletePolicyVersion."
                )));
            }
            let version = last + 1;
            let created = now();
            tx.execute(
                "INSERT INTO policy_versions (policy_name, version, document, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, version, doc, created])?;
            super::documents::remember(tx, doc)?;
            tx.execute(
                "UPDATE managed_policies SET last_version = ?2 WHERE name = ?1",
                params![name, version])?;
            if set_as_default {
                Self::make_default(tx, &name, version)?;
            }
            Ok(PolicyVersionRecord {
                id: version_id(version),
                document: doc.to_owned(),
                is_default: set_as_default,
                created,
            })
        })
    }

    /// GetPolicyVersion.
    pub fn get_policy_version(
        &self,
        arn: &str,
        id: &str,
    ) -> Result<PolicyVersionRecord, StateError> {
        let name = self.policy_name_from_arn(arn)?;
        self.with_db(|db| {
            Self::policy_by_arn(db, &name, arn)?;
            Self::require_version(db, &name, arn, id).map(|(_, v)| v)
        })
    }

    /// ListPolicyVersions, newest first.
    pub fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersionRecord>, StateError> {
        let name = self.policy_name_from_arn(arn)?;
        self.with_db(|db| {
            let p = Self::policy_by_arn(db, &name, arn)?;
            let rows = db.query_map("SELECT version, document, created FROM policy_versions WHERE policy_name = ?1 ORDER BY version DESC", params![&name], |r| {
                    let version: i64 = r.get(0)?;
                    Ok(PolicyVersionRecord {
                        id: version_id(version),
                        document: r.get(1)?,
                        is_default: version_id(version) == p.default_version,
                        created: r.get(2)?,
                    })
                })?;
            Ok(rows)
        })
    }

    /// DeletePolicyVersion: never the default version (`DeleteConflict`; DeletePolicy removes it)
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicyVersion.html).
    pub fn delete_policy_version(&self, arn: &str, id: &str) -> Result<(), StateError> {
        let name = self.policy_name_from_arn(arn)?;
        self.change(|tx| {
            tx.touch(Touched::Policy(name.clone()));
            Self::policy_by_arn(tx, &name, arn)?;
            let (n, v) = Self::require_version(tx, &name, arn, id)?;
            if v.is_default {
                return Err(StateError::DeleteConflict(format!(
                    "Cannot delete the default version {id} of policy {arn}: make another version the default with SetDefaultPolicyVersion, or delete the policy."
                )));
            }
            tx.execute(
                "DELETE FROM policy_versions WHERE policy_name = ?1 AND version = ?2",
                params![name, n])?;
            Ok(())
        })
    }

    /// SetDefaultPolicyVersion: in force for the next request of every user, group and role the
    /// policy is attached to
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_SetDefaultPolicyVersion.html).
    pub fn set_default_policy_version(&self, arn: &str, id: &str) -> Result<(), StateError> {
        let name = self.policy_name_from_arn(arn)?;
        self.change(|tx| {
            tx.touch(Touched::Policy(name.clone()));
            Self::policy_by_arn(tx, &name, arn)?;
            let (n, _) = Self::require_version(tx, &name, arn, id)?;
            Self::make_default(tx, &name, n)
        })
    }
}

#[cfg(test)]
mod tests {
    use keyhole_policy::DecisionKind;

    use super::super::tests::{decide, open, READ};
    use super::super::PrincipalKind;
    use super::*;

    const WRITE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    #[test]
    fn version_ids_follow_aws_pattern() {
        assert_eq!(parse_version_id("v1").unwrap(), Some(1));
        assert_eq!(parse_version_id("v42").unwrap(), Some(42));
        assert_eq!(
            parse_version_id("v3.beta-1").unwrap(),
            None,
            "valid, never created"
        );
        for bad in ["", "v", "1", "V1", "v0", "v01", "v1.a_b", "vx"] {
            assert_eq!(
                parse_version_id(bad).unwrap_err().code(),
                "ValidationError",
                "{bad}"
            );
        }
    }

    /// https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreatePolicyVersion.html
    #[test]
    fn versions_are_numbered_never_reused_and_at_most_five() {
        let (_d, s) = open();
        let p = s.create_policy("P", "/", "", READ).unwrap();
        let arn = s.policy_arn(&p);
        assert_eq!(p.default_version, "v1");
        for n in 2..=5 {
            let v = s.create_policy_version(&arn, WRITE, false).unwrap();
            assert_eq!((v.id, v.is_default), (format!("v{n}"), false));
        }
        let err = s.create_policy_version(&arn, WRITE, false).unwrap_err();
        assert_eq!(err.code(), "LimitExceeded");
        s.delete_policy_version(&arn, "v5").unwrap();
        assert_eq!(
            s.create_policy_version(&arn, WRITE, false).unwrap().id,
            "v6",
            "v5 is not reused"
        );
        let ids: Vec<_> = s
            .list_policy_versions(&arn)
            .unwrap()
            .into_iter()
            .map(|v| (v.id, v.is_default))
            .collect();
        assert_eq!(
            ids,
            [
                ("v6", false),
                ("v4", false),
                ("v3", false),
                ("v2", false),
                ("v1", true)
            ]
            .map(|(i, d)| (i.to_owned(), d))
        );
        assert_eq!(s.get_policy_version(&arn, "v2").unwrap().document, WRITE);
        assert_eq!(
            s.get_policy_version(&arn, "v5").unwrap_err().code(),
            "NoSuchEntity"
        );
        assert_eq!(
            s.get_policy_version(&arn, "v5.x").unwrap_err().code(),
            "NoSuchEntity"
        );
        assert_eq!(
            s.get_policy_version(&arn, "five").unwrap_err().code(),
            "ValidationError"
        );
        assert_eq!(
            s.create_policy_version(&arn, "{", true).unwrap_err().code(),
            "MalformedPolicyDocument"
        );
        let missing = "arn:aws:iam::123456789012:policy/Nope";
        assert_eq!(
            s.create_policy_version(missing, READ, true)
                .unwrap_err()
                .code(),
            "NoSuchEntity"
        );
    }

    #[test]
    fn the_default_version_is_in_force_at_once() {
        let (_d, s) = open();
        s.create_user("dee", "/").unwrap();
        let p = s.create_policy("P", "/", "", READ).unwrap();
        let arn = s.policy_arn(&p);
        s.attach_policy(PrincipalKind::User, "dee", &arn).unwrap();
        let can =
            |action: &str| decide(&s, "dee", action, "arn:aws:s3:::b/k") == DecisionKind::Allowed;
        assert!(can("s3:GetObject") && !can("s3:PutObject"));

        s.create_policy_version(&arn, WRITE, false).unwrap();
        assert!(
            can("s3:GetObject"),
            "a new version is not in force until made the default"
        );
        let v3 = s.create_policy_version(&arn, WRITE, true).unwrap();
        assert!(v3.is_default);
        assert!(can("s3:PutObject") && !can("s3:GetObject"));
        let got = s.get_policy(&arn).unwrap();
        assert_eq!(
            (got.default_version.as_str(), got.document.as_str()),
            ("v3", WRITE)
        );
        assert!(got.updated >= got.created);

        s.set_default_policy_version(&arn, "v1").unwrap();
        assert!(can("s3:GetObject") && !can("s3:PutObject"));
        assert_eq!(
            s.set_default_policy_version(&arn, "v9").unwrap_err().code(),
            "NoSuchEntity"
        );
        assert!(can("s3:GetObject"), "a failed switch changes nothing");
    }

    /// https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicyVersion.html and
    /// https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicy.html
    #[test]
    fn deleting_versions_and_policies_conflicts_as_in_aws() {
        let (_d, s) = open();
        let p = s.create_policy("P", "/", "", READ).unwrap();
        let arn = s.policy_arn(&p);
        s.create_policy_version(&arn, WRITE, true).unwrap();
        assert_eq!(
            s.delete_policy_version(&arn, "v2").unwrap_err().code(),
            "DeleteConflict",
            "the default version"
        );
        let err = s.delete_policy(&arn).unwrap_err();
        assert_eq!(err.code(), "DeleteConflict");
        assert!(err.to_string().contains("DeletePolicyVersion"), "{err}");
        s.delete_policy_version(&arn, "v1").unwrap();
        assert_eq!(
            s.delete_policy_version(&arn, "v1").unwrap_err().code(),
            "NoSuchEntity"
        );
        s.delete_policy(&arn).unwrap();
        // A policy created again under the same name starts over at v1, with no old versions.
        let p = s.create_policy("P", "/", "", READ).unwrap();
        assert_eq!(p.default_version, "v1");
        assert_eq!(s.list_policy_versions(&arn).unwrap().len(), 1);
        assert_eq!(
            s.create_policy_version(&arn, WRITE, false).unwrap().id,
            "v2"
        );
    }
}
