//! The policy documents that decide for a user, group or role, as stored: what IAM's
//! SimulatePrincipalPolicy and GetContextKeysForPrincipalPolicy read
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html: "If
//! you specify a user, the simulation also includes all policies that are attached to any groups
//! the user belongs to"). They are read under one database lock, so a concurrent change never
//! mixes two states into one answer.

use super::db::Conn;
use crate::params;

use super::{PrincipalKind, State, StateError};

/// One stored policy document and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The inline policy's name, or the managed policy's name.
    pub name: String,
    /// Whose inline policy it is (the user, one of its groups, the role), or `None` for a
    /// managed policy.
    pub inline_of: Option<PrincipalKind>,
    /// The document (for a managed policy, its default version: the one in force).
    pub document: String,
}

/// The identity-based policies and the permissions boundary of one user, group or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityPolicies {
    /// The entity's ARN.
    pub arn: String,
    /// Its inline policies (by name), its attached managed policies (by name), then for a user
    /// the same of each of its groups (groups by name).
    pub policies: Vec<StoredPolicy>,
    /// Its permissions boundary, if set (users and roles only).
    pub boundary: Option<StoredPolicy>,
}

impl State {
    /// The policies in force for the user, group or role `name`; `NoSuchEntity` if it does not
    /// exist.
    pub fn entity_policies(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<EntityPolicies, StateError> {
        self.with_db(|db| {
            let arn = match kind {
                PrincipalKind::User => self.user_arn(&Self::require_user(db, name)?),
                PrincipalKind::Group => self.group_arn(&Self::require_group(db, name)?),
                PrincipalKind::Role => self.role_arn(&Self::require_role(db, name)?),
            };
            let mut policies = stored_policies(db, kind, name)?;
            if kind == PrincipalKind::User {
                let groups = db.query_map(
                    "SELECT group_name FROM group_members WHERE user_name = ?1 ORDER BY group_name",
                    params![name],
                    |r| r.get::<String>(0),
                )?;
                for g in groups {
                    policies.extend(stored_policies(db, PrincipalKind::Group, &g)?);
                }
            }
            let boundary = db.query_opt(
                "SELECT m.name, m.document FROM permissions_boundaries b
                     JOIN managed_policies m ON m.name = b.policy_name
                     WHERE b.kind = ?1 AND b.name = ?2",
                params![kind.word(), name],
                |r| {
                    Ok(StoredPolicy {
                        name: r.get(0)?,
                        inline_of: None,
                        document: r.get(1)?,
                    })
                },
            )?;
            Ok(EntityPolicies {
                arn,
                policies,
                boundary,
            })
        })
    }
}

/// The inline then attached managed policies of one entity (`kind` gives a fixed table prefix,
/// never input).
fn stored_policies(
    db: &dyn Conn,
    kind: PrincipalKind,
    name: &str,
) -> Result<Vec<StoredPolicy>, StateError> {
    let k = kind.word();
    let mut out = db.query_map(
        &format!(
        "SELECT policy_name, document FROM {k}_policies WHERE {k}_name = ?1 ORDER BY policy_name"
    ),
        params![name],
        |r| {
            Ok(StoredPolicy {
                name: r.get(0)?,
                inline_of: Some(kind),
                document: r.get(1)?,
            })
        },
    )?;
    let attached = db.query_map(
        &format!(
            "SELECT m.name, m.document FROM {k}_attachments a JOIN managed_policies m
         ON m.name = a.policy_name WHERE a.{k}_name = ?1 ORDER BY m.name"
        ),
        params![name],
        |r| {
            Ok(StoredPolicy {
                name: r.get(0)?,
                inline_of: None,
                document: r.get(1)?,
            })
        },
    )?;
    out.extend(attached);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{open, READ};
    use super::*;

    #[test]
    fn a_users_sources_include_its_groups_and_boundary() {
        let (_d, s) = open();
        s.create_user("ann", "/team/").unwrap();
        s.put_inline_policy(PrincipalKind::User, "ann", "own", READ)
            .unwrap();
        let managed = s.create_policy("Shared", "/", "", READ).unwrap();
        let managed_arn = s.policy_arn(&managed);
        s.attach_policy(PrincipalKind::User, "ann", &managed_arn)
            .unwrap();
        s.create_group("readers", "/").unwrap();
        s.put_inline_policy(PrincipalKind::Group, "readers", "grp", READ)
            .unwrap();
        s.add_user_to_group("readers", "ann").unwrap();
        s.set_boundary(PrincipalKind::User, "ann", Some(&managed_arn))
            .unwrap();

        let e = s.entity_policies(PrincipalKind::User, "ann").unwrap();
        assert_eq!(e.arn, "arn:aws:iam::123456789012:user/team/ann");
        let names: Vec<(&str, Option<PrincipalKind>)> = e
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p.inline_of))
            .collect();
        assert_eq!(
            names,
            [
                ("own", Some(PrincipalKind::User)),
                ("Shared", None),
                ("grp", Some(PrincipalKind::Group))
            ]
        );
        assert_eq!(e.policies[0].document, READ);
        assert_eq!(e.boundary.as_ref().map(|b| b.name.as_str()), Some("Shared"));

        let g = s.entity_policies(PrincipalKind::Group, "readers").unwrap();
        assert_eq!(g.arn, "arn:aws:iam::123456789012:group/readers");
        assert_eq!(g.policies.len(), 1);
        assert!(g.boundary.is_none());
        let missing = s.entity_policies(PrincipalKind::Role, "nope").unwrap_err();
        assert_eq!(missing.code(), "NoSuchEntity");
    }
}
