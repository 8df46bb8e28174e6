//! GetAccountAuthorizationDetails: every user, group, role and managed policy of the account with
//! the policies that apply to it, in one paged answer
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountAuthorizationDetails.html),
//! what account-audit tools read to see who may do what.
//!
//! `Filter.member.N` (User, Role, Group, LocalManagedPolicy, AWSManagedPolicy) chooses the lists;
//! none chooses all. There are no AWS managed policies here, so `AWSManagedPolicy` lists nothing,
//! and roles have no instance profiles (`InstanceProfileList` is empty). One page runs over the
//! users, groups, roles and policies together, in that order, each by name; the details of an
//! entity deleted while the page is written are left out.

use super::paging::{self, Paging};
use super::{
    attached_policy_xml, boundary_xml, members, not_one_of, optional_tags_xml, policy_fields,
    url_encode, version_xml, xml_date, Query,
};
use crate::error::S3Error;
use crate::state::{
    GroupRecord, ManagedPolicyRecord, PrincipalKind, RoleRecord, State, StateError, UserRecord,
};
use crate::xml::XmlWriter;

/// One entry of the combined list, before its details are read.
enum Entry {
    User(UserRecord, String),
    Group(GroupRecord),
    Role(RoleRecord),
    Policy(ManagedPolicyRecord),
}

impl Entry {
    /// The answer's list the entry belongs in.
    fn list(&self) -> &'static str {
        match self {
            Entry::User(..) => "UserDetailList",
            Entry::Group(_) => "GroupDetailList",
            Entry::Role(_) => "RoleDetailList",
            Entry::Policy(_) => "Policies",
        }
    }
}

/// Which lists `Filter` asks for.
#[derive(Default)]
struct Chosen {
    users: bool,
    groups: bool,
    roles: bool,
    local_policies: bool,
}

fn chosen(q: &Query) -> Result<Chosen, S3Error> {
    let filter = members(q, "Filter");
    if filter.is_empty() {
        return Ok(Chosen {
            users: true,
            groups: true,
            roles: true,
            local_policies: true,
        });
    }
    let mut c = Chosen::default();
    for f in &filter {
        match f.as_str() {
            "User" => c.users = true,
            "Group" => c.groups = true,
            "Role" => c.roles = true,
            "LocalManagedPolicy" => c.local_policies = true,
            "AWSManagedPolicy" => {}
            other => {
                return Err(not_one_of(
                    "Filter",
                    other,
                    "User, Role, Group, LocalManagedPolicy, AWSManagedPolicy",
                ))
            }
        }
    }
    Ok(c)
}

/// Writes the answer's elements (inside `GetAccountAuthorizationDetailsResult`).
pub fn write(w: &mut XmlWriter, state: &State, q: &Query) -> Result<(), S3Error> {
    let c = chosen(q)?;
    let paging = Paging::from_query(q)?;
    let by_name = super::name_order;
    let mut entries = Vec::new();
    if c.users {
        let mut users = state.list_users()?;
        users.sort_by(|(a, _), (b, _)| by_name(&a.name, &b.name));
        entries.extend(users.into_iter().map(|(u, arn)| Entry::User(u, arn)));
    }
    if c.groups {
        let mut groups = state.list_groups("/")?;
        groups.sort_by(|a, b| by_name(&a.name, &b.name));
        entries.extend(groups.into_iter().map(Entry::Group));
    }
    if c.roles {
        let mut roles = state.list_roles()?;
        roles.sort_by(|a, b| by_name(&a.name, &b.name));
        entries.extend(roles.into_iter().map(Entry::Role));
    }
    if c.local_policies {
        entries.extend(state.list_policies()?.into_iter().map(Entry::Policy));
    }
    let (page, next) = paging.page(&entries);
    paging::truncation(w, next.as_deref());
    for list in [
        "UserDetailList",
        "GroupDetailList",
        "RoleDetailList",
        "Policies",
    ] {
        w.open(list);
        for e in page.iter().filter(|e| e.list() == list) {
            skip_gone(match e {
                Entry::User(u, arn) => user_detail(w, state, u, arn),
                Entry::Group(g) => group_detail(w, state, g),
                Entry::Role(r) => role_detail(w, state, r),
                Entry::Policy(p) => policy_detail(w, state, p),
            })?;
        }
        w.close(list);
    }
    Ok(())
}

/// An entity deleted after it was listed is left out rather than failing the whole answer.
fn skip_gone(r: Result<(), StateError>) -> Result<(), StateError> {
    match r {
        Err(StateError::NoSuchEntity(_)) => Ok(()),
        other => other,
    }
}

/// Everything is read before anything is written, so a vanished entity leaves no half element.
fn inline_policies(
    state: &State,
    kind: PrincipalKind,
    name: &str,
) -> Result<Vec<(String, String)>, StateError> {
    state
        .list_inline_policies(kind, name)?
        .into_iter()
        .map(|p| {
            let doc = state.get_inline_policy(kind, name, &p)?;
            Ok((p, doc))
        })
        .collect()
}

fn inline_xml(w: &mut XmlWriter, el: &str, policies: &[(String, String)]) {
    w.open(el);
    for (name, doc) in policies {
        w.open("member");
        w.elem("PolicyName", name);
        w.elem("PolicyDocument", &url_encode(doc));
        w.close("member");
    }
    w.close(el);
}

fn attached_xml(w: &mut XmlWriter, attached: &[(String, String)]) {
    w.open("AttachedManagedPolicies");
    for a in attached {
        attached_policy_xml(w, a);
    }
    w.close("AttachedManagedPolicies");
}

fn user_detail(
    w: &mut XmlWriter,
    state: &State,
    u: &UserRecord,
    arn: &str,
) -> Result<(), StateError> {
    let kind = PrincipalKind::User;
    let inline = inline_policies(state, kind, &u.name)?;
    let groups = state.list_groups_for_user(&u.name)?;
    let attached = state.list_attached_policies(kind, &u.name)?;
    let boundary = state.boundary_arn(kind, &u.name)?;
    let tags = state.list_tags(kind, &u.name)?;
    w.open("member");
    w.elem("Path", &u.path);
    w.elem("UserName", &u.name);
    w.elem("UserId", &u.id);
    w.elem("Arn", arn);
    w.elem("CreateDate", &xml_date(&u.created));
    inline_xml(w, "UserPolicyList", &inline);
    w.open("GroupList");
    for g in &groups {
        w.elem("member", &g.name);
    }
    w.close("GroupList");
    attached_xml(w, &attached);
    boundary_xml(w, boundary.as_deref());
    optional_tags_xml(w, &tags);
    w.close("member");
    Ok(())
}

fn group_detail(w: &mut XmlWriter, state: &State, g: &GroupRecord) -> Result<(), StateError> {
    let kind = PrincipalKind::Group;
    let inline = inline_policies(state, kind, &g.name)?;
    let attached = state.list_attached_policies(kind, &g.name)?;
    w.open("member");
    w.elem("Path", &g.path);
    w.elem("GroupName", &g.name);
    w.elem("GroupId", &g.id);
    w.elem("Arn", &state.group_arn(g));
    w.elem("CreateDate", &xml_date(&g.created));
    inline_xml(w, "GroupPolicyList", &inline);
    attached_xml(w, &attached);
    w.close("member");
    Ok(())
}

fn role_detail(w: &mut XmlWriter, state: &State, r: &RoleRecord) -> Result<(), StateError> {
    let kind = PrincipalKind::Role;
    let trust = state.displayed_trust_policy(r)?;
    let inline = inline_policies(state, kind, &r.name)?;
    let attached = state.list_attached_policies(kind, &r.name)?;
    let boundary = state.boundary_arn(kind, &r.name)?;
    let tags = state.list_tags(kind, &r.name)?;
    w.open("member");
    w.elem("Path", &r.path);
    w.elem("RoleName", &r.name);
    w.elem("RoleId", &r.id);
    w.elem("Arn", &state.role_arn(r));
    w.elem("CreateDate", &xml_date(&r.created));
    w.elem("AssumeRolePolicyDocument", &url_encode(&trust));
    w.open("InstanceProfileList");
    w.close("InstanceProfileList");
    inline_xml(w, "RolePolicyList", &inline);
    attached_xml(w, &attached);
    boundary_xml(w, boundary.as_deref());
    optional_tags_xml(w, &tags);
    w.close("member");
    Ok(())
}

fn policy_detail(
    w: &mut XmlWriter,
    state: &State,
    p: &ManagedPolicyRecord,
) -> Result<(), StateError> {
    let arn = state.policy_arn(p);
    let versions = state.list_policy_versions(&arn)?;
    w.open("member");
    policy_fields(w, p, &arn);
    w.open("PolicyVersionList");
    for v in &versions {
        version_xml(w, "member", v, true);
    }
    w.close("PolicyVersionList");
    w.close("member");
    Ok(())
}
