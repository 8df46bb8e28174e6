//! IAM groups: named sets of users whose inline and attached policies apply to every member
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_groups.html). A group is not a principal:
//! nothing authenticates as one, and its policies reach decisions only through the members'
//! snapshot entries ([`super::UserEntry::policies`]). Group policies themselves are the generic
//! user/group/role code in the parent module ([`PrincipalKind::Group`]).

use super::db::{Conn, Row, Touched};
use crate::params;

use super::{
    now, validate_name, validate_path, GroupRecord, PrincipalKind, State, StateError, UserRecord,
    MAX_GROUPS_PER_USER,
};

impl State {
    fn group_from_row(r: &Row) -> Result<GroupRecord, StateError> {
        Ok(GroupRecord {
            name: r.get(0)?,
            id: r.get(1)?,
            path: r.get(2)?,
            created: r.get(3)?,
        })
    }

    pub(super) fn require_group(db: &dyn Conn, name: &str) -> Result<GroupRecord, StateError> {
        db.query_opt(
            "SELECT name, id, path, created FROM iam_groups WHERE name = ?1",
            params![name],
            Self::group_from_row,
        )?
        .ok_or_else(|| {
            StateError::NoSuchEntity(format!("The group with name {name} cannot be found."))
        })
    }

    /// The ARN of a group.
    pub fn group_arn(&self, g: &GroupRecord) -> String {
        format!("arn:aws:iam::{}:group{}{}", self.account_id, g.path, g.name)
    }

    /// CreateGroup: names of 1-128 characters, unique regardless of case
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateGroup.html).
    pub fn create_group(&self, name: &str, path: &str) -> Result<GroupRecord, StateError> {
        validate_name("groupName", name, 128)?;
        validate_path(path)?;
        self.change(|tx| {
            tx.touch(Touched::Group(name.to_owned()));
            if Self::name_holder(tx, "iam_groups", name, None)?.is_some() {
                return Err(StateError::EntityAlreadyExists(format!(
                    "Group with name {name} already exists."
                )));
            }
            let rec = GroupRecord {
                name: name.to_owned(),
                id: crate::account::new_id("AGPA", 17),
                path: path.to_owned(),
                created: now(),
            };
            tx.execute(
                "INSERT INTO iam_groups (name, id, path, created) VALUES (?1, ?2, ?3, ?4)",
                params![rec.name, rec.id, rec.path, rec.created],
            )?;
            Ok(rec)
        })
    }

    /// UpdateGroup: a new name and/or path. The group keeps its unique id, members and
    /// policies under the new name; policies that name it as a resource are not changed
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_groups_manage_rename.html). A new
    /// name is unique regardless of case, like CreateGroup's; a change of case alone is a rename.
    pub fn update_group(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<GroupRecord, StateError> {
        if let Some(n) = new_name {
            validate_name("newGroupName", n, 128)?;
        }
        if let Some(p) = new_path {
            validate_path(p)?;
        }
        self.change(|tx| {
            let group = Self::require_group(tx, name)?;
            let target = new_name.unwrap_or(&group.name).to_owned();
            let path = new_path.unwrap_or(&group.path).to_owned();
            tx.touch(Touched::Group(group.name.clone()));
            tx.touch(Touched::Group(target.clone()));
            if target != group.name {
                if let Some(other) =
                    Self::name_holder(tx, "iam_groups", &target, Some(&group.name))?
                {
                    return Err(StateError::EntityAlreadyExists(format!(
                        "Group with name {other} already exists."
                    )));
                }
                for table in ["group_members", "group_policies", "group_attachments"] {
                    tx.execute(
                        &format!("UPDATE {table} SET group_name = ?1 WHERE group_name = ?2"),
                        params![target, group.name],
                    )?;
                }
            }
            tx.execute(
                "UPDATE iam_groups SET name = ?1, path = ?2 WHERE name = ?3",
                params![target, path, group.name],
            )?;
            Ok(GroupRecord {
                name: target,
                path,
                ..group
            })
        })
    }

    /// GetGroup: the group and its members (sorted by name).
    pub fn get_group(
        &self,
        name: &str,
    ) -> Result<(GroupRecord, Vec<(UserRecord, String)>), StateError> {
        let (group, users) = self.with_db(|db| {
            let group = Self::require_group(db, name)?;
            let users = db.query_map(
                "SELECT u.name, u.id, u.path, u.created FROM group_members m
                 JOIN users u ON u.name = m.user_name WHERE m.group_name = ?1 ORDER BY u.name",
                params![name],
                |r| {
                    Ok(UserRecord {
                        name: r.get(0)?,
                        id: r.get(1)?,
                        path: r.get(2)?,
                        created: r.get(3)?,
                    })
                },
            )?;
            Ok((group, users))
        })?;
        let users = users
            .into_iter()
            .map(|u| {
                let arn = self.user_arn(&u);
                (u, arn)
            })
            .collect();
        Ok((group, users))
    }

    /// ListGroups (sorted by name), only those whose path starts with `path_prefix`.
    pub fn list_groups(&self, path_prefix: &str) -> Result<Vec<GroupRecord>, StateError> {
        let groups = self.with_db(|db| {
            let rows = db.query_map(
                "SELECT name, id, path, created FROM iam_groups ORDER BY name",
                params![],
                Self::group_from_row,
            )?;
            Ok(rows)
        })?;
        Ok(groups
            .into_iter()
            .filter(|g| g.path.starts_with(path_prefix))
            .collect())
    }

    /// ListGroupsForUser (sorted by name).
    pub fn list_groups_for_user(&self, user: &str) -> Result<Vec<GroupRecord>, StateError> {
        self.with_db(|db| {
            Self::require_user(db, user)?;
            let rows = db.query_map(
                "SELECT g.name, g.id, g.path, g.created FROM group_members m
                 JOIN iam_groups g ON g.name = m.group_name WHERE m.user_name = ?1 ORDER BY g.name",
                params![user],
                Self::group_from_row,
            )?;
            Ok(rows)
        })
    }

    /// DeleteGroup: refused while it has members or policies, as AWS does.
    pub fn delete_group(&self, name: &str) -> Result<(), StateError> {
        self.delete_principal(PrincipalKind::Group, name)
    }

    /// AddUserToGroup: a user belongs to at most 10 groups; adding a member again changes nothing.
    pub fn add_user_to_group(&self, group: &str, user: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(Touched::User(user.to_owned()));
            Self::require_group(tx, group)?;
            Self::require_user(tx, user)?;
            let member: Option<i64> = tx.query_opt(
                "SELECT 1 FROM group_members WHERE group_name = ?1 AND user_name = ?2",
                params![group, user],
                |r| r.get(0),
            )?;
            if member.is_some() {
                return Ok(());
            }
            let n: i64 = tx.query_one(
                "SELECT count(*) FROM group_members WHERE user_name = ?1",
                params![user],
                |r| r.get(0),
            )?;
            if n as usize >= MAX_GROUPS_PER_USER {
                return Err(StateError::LimitExceeded(format!(
                    "Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}"
                )));
            }
            tx.execute(
                "INSERT INTO group_members (group_name, user_name) VALUES (?1, ?2)",
                params![group, user],
            )?;
            Ok(())
        })
    }

    /// RemoveUserFromGroup: `NoSuchEntity` when the user is not a member.
    pub fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(Touched::User(user.to_owned()));
            Self::require_group(tx, group)?;
            Self::require_user(tx, user)?;
            let n = tx.execute(
                "DELETE FROM group_members WHERE group_name = ?1 AND user_name = ?2",
                params![group, user],
            )?;
            if n == 0 {
                return Err(StateError::NoSuchEntity(format!(
                    "The user {user} is not a member of the group {group}."
                )));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use keyhole_policy::DecisionKind;

    use super::super::tests::{decide, open, READ};
    use super::*;

    const DENY_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"}]}"#;

    #[test]
    fn a_renamed_group_keeps_its_id_members_and_policies() {
        let (_d, s) = open();
        s.create_user("ann", "/").unwrap();
        let g = s.create_group("readers", "/").unwrap();
        s.create_group("Writers", "/").unwrap();
        s.put_inline_policy(PrincipalKind::Group, "readers", "read", READ)
            .unwrap();
        s.add_user_to_group("readers", "ann").unwrap();
        let get = || decide(&s, "ann", "s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(get(), DecisionKind::Allowed);
        let renamed = s
            .update_group("readers", Some("Readers"), Some("/ml/"))
            .unwrap();
        assert_eq!(
            (renamed.id.as_str(), renamed.path.as_str()),
            (g.id.as_str(), "/ml/")
        );
        assert_eq!(get(), DecisionKind::Allowed, "the member still reads");
        assert_eq!(
            s.snapshot().users["ann"].policies[0].name(),
            Some("inline policy `read` of group `Readers`")
        );
        assert_eq!(s.get_group("readers").unwrap_err().code(), "NoSuchEntity");
        assert_eq!(s.get_group("Readers").unwrap().1.len(), 1);
        assert_eq!(
            s.update_group("Readers", Some("writers"), None)
                .unwrap_err()
                .code(),
            "EntityAlreadyExists"
        );
        for bad in ["no-slash", "//", "/a"] {
            assert_eq!(
                s.update_group("Readers", None, Some(bad))
                    .unwrap_err()
                    .code(),
                "ValidationError",
                "{bad}"
            );
        }
        assert!(s.update_group("Readers", None, Some("///")).is_ok());
        s.update_group("Readers", None, Some("/ml/")).unwrap();
        assert_eq!(s.list_groups("/ml/").unwrap().len(), 1);
    }

    #[test]
    fn group_policies_reach_members_only_while_they_are_members() {
        let (_d, s) = open();
        s.create_user("ann", "/").unwrap();
        let g = s.create_group("readers", "/ml/").unwrap();
        assert!(g.id.starts_with("AGPA"));
        assert_eq!(
            s.group_arn(&g),
            "arn:aws:iam::123456789012:group/ml/readers"
        );
        s.put_inline_policy(PrincipalKind::Group, "readers", "read", READ)
            .unwrap();
        let get = |key: &str| decide(&s, "ann", "s3:GetObject", &format!("arn:aws:s3:::b/{key}"));
        assert_eq!(get("k"), DecisionKind::ImplicitlyDenied, "not a member yet");

        s.add_user_to_group("readers", "ann").unwrap();
        s.add_user_to_group("readers", "ann").unwrap();
        assert_eq!(get("k"), DecisionKind::Allowed);
        assert_eq!(
            s.snapshot().users["ann"].policies[0].name(),
            Some("inline policy `read` of group `readers`")
        );
        // A Deny in a group's attached managed policy wins over the group's own Allow.
        let deny = s.create_policy("NoSecrets", "/", "", DENY_READ).unwrap();
        s.attach_policy(PrincipalKind::Group, "readers", &s.policy_arn(&deny))
            .unwrap();
        assert_eq!(get("secret/x"), DecisionKind::ExplicitlyDenied);
        assert_eq!(get("k"), DecisionKind::Allowed);
        assert_eq!(s.get_policy(&s.policy_arn(&deny)).unwrap().attachments, 1);

        let (group, members) = s.get_group("readers").unwrap();
        assert_eq!(group, g);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].1, "arn:aws:iam::123456789012:user/ann");
        assert_eq!(s.list_groups_for_user("ann").unwrap(), vec![g.clone()]);
        assert_eq!(s.list_groups("/ml/").unwrap(), vec![g.clone()]);
        assert!(s.list_groups("/other/").unwrap().is_empty());

        s.remove_user_from_group("readers", "ann").unwrap();
        assert_eq!(get("k"), DecisionKind::ImplicitlyDenied, "left the group");
        assert!(s.snapshot().users["ann"].policies.is_empty());
        assert_eq!(
            s.remove_user_from_group("readers", "ann")
                .unwrap_err()
                .code(),
            "NoSuchEntity"
        );
    }

    /// https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteGroup.html and
    /// https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteUser.html: members, policies
    /// and memberships must go first.
    #[test]
    fn deleting_groups_and_members_conflicts_as_in_aws() {
        let (_d, s) = open();
        s.create_user("bo", "/").unwrap();
        s.create_group("g", "/").unwrap();
        s.add_user_to_group("g", "bo").unwrap();
        let err = s.delete_group("g").unwrap_err();
        assert_eq!(err.code(), "DeleteConflict");
        assert!(err.to_string().contains("remove all users"), "{err}");
        let err = s.delete_user("bo").unwrap_err();
        assert_eq!(err.code(), "DeleteConflict");
        assert!(err.to_string().contains("from all groups"), "{err}");
        s.remove_user_from_group("g", "bo").unwrap();

        s.put_inline_policy(PrincipalKind::Group, "g", "p", READ)
            .unwrap();
        assert_eq!(s.delete_group("g").unwrap_err().code(), "DeleteConflict");
        s.delete_inline_policy(PrincipalKind::Group, "g", "p")
            .unwrap();
        let p = s.create_policy("P", "/", "", READ).unwrap();
        s.attach_policy(PrincipalKind::Group, "g", &s.policy_arn(&p))
            .unwrap();
        assert_eq!(s.delete_group("g").unwrap_err().code(), "DeleteConflict");
        assert_eq!(
            s.delete_policy(&s.policy_arn(&p)).unwrap_err().code(),
            "DeleteConflict",
            "attached to a group"
        );
        s.detach_policy(PrincipalKind::Group, "g", &s.policy_arn(&p))
            .unwrap();
        s.delete_group("g").unwrap();
        s.delete_user("bo").unwrap();
        assert_eq!(s.get_group("g").unwrap_err().code(), "NoSuchEntity");
        // A re-created group starts empty.
        s.create_group("g", "/").unwrap();
        assert!(s.get_group("g").unwrap().1.is_empty());
    }

    /// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
    #[test]
    fn group_names_and_quotas() {
        let (_d, s) = open();
        assert_eq!(
            s.create_group("bad name", "/").unwrap_err().code(),
            "ValidationError"
        );
        assert_eq!(
            s.create_group(&"g".repeat(129), "/").unwrap_err().code(),
            "ValidationError"
        );
        s.create_group(&"g".repeat(128), "/").unwrap();
        s.create_group("Admins", "/").unwrap();
        assert_eq!(
            s.create_group("ADMINS", "/").unwrap_err().code(),
            "EntityAlreadyExists",
            "names are unique regardless of case"
        );
        assert_eq!(
            s.add_user_to_group("Admins", "nobody").unwrap_err().code(),
            "NoSuchEntity"
        );
        s.create_user("cy", "/").unwrap();
        assert_eq!(
            s.add_user_to_group("nope", "cy").unwrap_err().code(),
            "NoSuchEntity"
        );
        for i in 0..MAX_GROUPS_PER_USER {
            s.create_group(&format!("g{i}"), "/").unwrap();
            s.add_user_to_group(&format!("g{i}"), "cy").unwrap();
        }
        let err = s.add_user_to_group("Admins", "cy").unwrap_err();
        assert_eq!(err.code(), "LimitExceeded");
        assert!(err.to_string().contains("GroupsPerUser: 10"), "{err}");

        // 5,120 characters of inline policies per group.
        let big = |n: usize| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}"}}]}}"#,
                "x".repeat(n)
            )
        };
        s.put_inline_policy(PrincipalKind::Group, "Admins", "a", &big(2500))
            .unwrap();
        s.put_inline_policy(PrincipalKind::Group, "Admins", "b", &big(2400))
            .unwrap();
        assert_eq!(
            s.put_inline_policy(PrincipalKind::Group, "Admins", "c", &big(300))
                .unwrap_err()
                .code(),
            "LimitExceeded"
        );
        for i in 0..10 {
            let p = s.create_policy(&format!("P{i}"), "/", "", READ).unwrap();
            s.attach_policy(PrincipalKind::Group, "Admins", &s.policy_arn(&p))
                .unwrap();
        }
        let p = s.create_policy("P10", "/", "", READ).unwrap();
        let err = s
            .attach_policy(PrincipalKind::Group, "Admins", &s.policy_arn(&p))
            .unwrap_err();
        assert_eq!(err.code(), "LimitExceeded");
        assert!(err.to_string().contains("PoliciesPerGroup"), "{err}");
    }
}
