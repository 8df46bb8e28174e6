//! The IAM Query API (service `iam`): users, access keys, groups, roles with trust policies, inline
//! user, group and role policies and versioned managed policies, so `aws iam ...` and boto3's IAM
//! client work against keyhole unchanged.
//!
//! Requests are `POST /` with a form body (`Action=CreateUser&Version=2010-05-08&...`); responses
//! are `<ActionResponse>` XML in the IAM namespace
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/Welcome.html). Every action is described
//! ([`describe`]: `iam:ACTION` on the entity's ARN, with its condition keys) and authorized by the
//! one authorization stage ([`crate::authz`]) before [`handle`] runs it.
//!
//! Actions not listed in [`IamAction`] answer `501 NotImplemented`; none succeeds wrongly.

mod details;
mod keys;
mod paging;
mod simulate;

use http::{Response, StatusCode};
use keyhole_policy::Context;

use crate::auth::Principal;
use crate::authz::{Authorized, Describe, Permission, Requirement};
use crate::body::Body;
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::state::{PrincipalKind, State, StateError};
use crate::xml::XmlWriter;
use crate::Gateway;
use paging::Paging;

/// The IAM XML namespace.
pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// Declares the served actions once: the enum, its parser, its API name and its IAM action.
macro_rules! iam_actions {
    ($($name:ident),* $(,)?) => {
        /// The IAM actions keyhole serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum IamAction {
            $(
                #[doc = stringify!($name)]
                $name,
            )*
        }

        impl IamAction {
            /// Every served action.
            pub const ALL: &'static [IamAction] = &[$(IamAction::$name,)*];

            /// Parses the `Action` parameter.
            pub fn parse(name: &str) -> Option<IamAction> {
                match name {
                    $(stringify!($name) => Some(IamAction::$name),)*
                    _ => None,
                }
            }

            /// The API name.
            pub fn name(self) -> &'static str {
                match self {
                    $(IamAction::$name => stringify!($name),)*
                }
            }

            /// The IAM action checked (`iam:` + the API name).
            pub fn iam_action(self) -> &'static str {
                match self {
                    $(IamAction::$name => concat!("iam:", stringify!($name)),)*
                }
            }
        }
    };
}

iam_actions! {
    CreateUser, GetUser, ListUsers, DeleteUser, UpdateUser,
    CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey,
    PutUserPolicy, GetUserPolicy, ListUserPolicies, DeleteUserPolicy,
    CreatePolicy, GetPolicy, ListPolicies, DeletePolicy,
    AttachUserPolicy, DetachUserPolicy, ListAttachedUserPolicies,
    CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy, UpdateRole,
    PutRolePolicy, GetRolePolicy, ListRolePolicies, DeleteRolePolicy,
    AttachRolePolicy, DetachRolePolicy, ListAttachedRolePolicies,
    PutUserPermissionsBoundary, DeleteUserPermissionsBoundary,
    PutRolePermissionsBoundary, DeleteRolePermissionsBoundary,
    TagUser, UntagUser, ListUserTags, TagRole, UntagRole, ListRoleTags,
    CreateGroup, GetGroup, ListGroups, DeleteGroup, UpdateGroup,
    AddUserToGroup, RemoveUserFromGroup, ListGroupsForUser,
    PutGroupPolicy, GetGroupPolicy, ListGroupPolicies, DeleteGroupPolicy,
    AttachGroupPolicy, DetachGroupPolicy, ListAttachedGroupPolicies,
    CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions, DeletePolicyVersion,
    SetDefaultPolicyVersion, ListEntitiesForPolicy,
    SimulateCustomPolicy, SimulatePrincipalPolicy,
    GetContextKeysForCustomPolicy, GetContextKeysForPrincipalPolicy,
    CreateOpenIDConnectProvider, GetOpenIDConnectProvider, ListOpenIDConnectProviders,
    DeleteOpenIDConnectProvider, AddClientIDToOpenIDConnectProvider,
    RemoveClientIDFromOpenIDConnectProvider, UpdateOpenIDConnectProviderThumbprint,
    TagOpenIDConnectProvider, UntagOpenIDConnectProvider, ListOpenIDConnectProviderTags,
    GetAccessKeyLastUsed, GenerateCredentialReport, GetCredentialReport,
    GetAccountAuthorizationDetails,
}

impl IamAction {
    /// Whether the action changes state (its write-ahead audit record must be durable before it
    /// runs): everything but `Get*`, `List*` and `Simulate*`.
    pub fn mutating(self) -> bool {
        let n = self.name();
        !(n.starts_with("Get") || n.starts_with("List") || n.starts_with("Simulate"))
    }
}

/// A required parameter, or `ValidationError` naming it.
fn required<'a>(q: &'a Query, name: &str) -> Result<&'a str, S3Error> {
    q.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        S3Error::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(name)),
        )
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

impl From<StateError> for S3Error {
    #[track_caller]
    fn from(e: StateError) -> S3Error {
        if e.is_internal() {
            return S3Error::internal(e);
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        S3Error::new(e.code(), status, e.to_string())
    }
}

/// A Query-protocol list: `PREFIX.member.1`, `PREFIX.member.2`, ... in index order.
fn members(q: &Query, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|i| q.get(&format!("{prefix}.member.{i}")).map(str::to_owned))
        .collect()
}

/// `Tags.member.N.Key` / `Tags.member.N.Value` pairs.
fn tags_param(q: &Query) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = q.get(&format!("Tags.member.{i}.Key"))?;
            let value = q.get(&format!("Tags.member.{i}.Value")).unwrap_or("");
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

fn tags_xml(w: &mut XmlWriter, tags: &[(String, String)]) {
    w.open("Tags");
    for t in tags {
        tag_xml(w, t);
    }
    w.close("Tags");
}

/// One `member` of a `Tags` list.
fn tag_xml(w: &mut XmlWriter, (k, v): &(String, String)) {
    w.open("member");
    w.elem("Key", k);
    w.elem("Value", v);
    w.close("member");
}

/// A page of tags (List*Tags).
fn tags_page_xml(w: &mut XmlWriter, paging: Paging, tags: &[(String, String)]) {
    paging::list(w, paging, "Tags", tags, |w, t| {
        tag_xml(w, t);
    });
}

/// `MaxSessionDuration`, when given: a whole number of seconds (its range is the state's check).
fn max_session_duration(q: &Query) -> Result<Option<i64>, S3Error> {
    q.get("MaxSessionDuration")
        .map(|v| {
            // Digits only: `+7200` or ` 7200` is not a number of seconds to IAM (review 21, I1).
            let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            v.parse::<i64>().ok().filter(|_| digits).ok_or_else(|| {
                S3Error::new(
                    "ValidationError",
                    StatusCode::BAD_REQUEST,
                    format!("MaxSessionDuration `{v}` is not a number"),
                )
            })
        })
        .transpose()
}

/// A list action's `PathPrefix` ("/" when absent): "a string of characters consisting of either a
/// forward slash (/) by itself or a string that must begin and end with forward slashes"
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListUsers.html), at most 512.
fn path_prefix(q: &Query) -> Result<&str, S3Error> {
    let p = q.get("PathPrefix").unwrap_or("/");
    // The pattern is `\u002F[\u0021-\u007F]*`: a slash, then printable ASCII.
    if !p.starts_with('/') || p.len() > 512 || !p.bytes().all(|b| (0x21..=0x7f).contains(&b)) {
        return Err(S3Error::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            "PathPrefix must begin with `/` and hold only printable ASCII (at most 512 characters), e.g. /division_abc/",
        ));
    }
    Ok(p)
}

/// `ValidationError` for a parameter whose value is not one of those `allowed` lists.
fn not_one_of(name: &str, value: &str, allowed: &str) -> S3Error {
    S3Error::new(
        "ValidationError",
        StatusCode::BAD_REQUEST,
        format!("{name} `{value}` is not one of {allowed}"),
    )
}

/// `PolicyUsageFilter` (ListPolicies, ListEntitiesForPolicy) as (attached, used as a boundary):
/// "To list only permissions policies, set PolicyUsageFilter to PermissionsPolicy. To list only
/// the policies used to set permissions boundaries, set the value to PermissionsBoundary"
/// (API_ListPolicies.html); `None` when absent (no filter).
fn policy_usage(q: &Query) -> Result<Option<(bool, bool)>, S3Error> {
    match q.get("PolicyUsageFilter") {
        None => Ok(None),
        Some("PermissionsPolicy") => Ok(Some((true, false))),
        Some("PermissionsBoundary") => Ok(Some((false, true))),
        Some(other) => Err(not_one_of(
            "PolicyUsageFilter",
            other,
            "PermissionsPolicy, PermissionsBoundary",
        )),
    }
}

/// One `member` of a list of attached managed policies (`AttachedPolicies`,
/// `AttachedManagedPolicies`).
fn attached_policy_xml(w: &mut XmlWriter, (name, arn): &(String, String)) {
    w.open("member");
    w.elem("PolicyName", name);
    w.elem("PolicyArn", arn);
    w.close("member");
}

/// ListEntitiesForPolicy's answer
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListEntitiesForPolicy.html):
/// `EntityFilter` (User, Role, Group; LocalManagedPolicy and AWSManagedPolicy name no user,
/// group or role, so they list nothing), `PathPrefix` on the entities' paths, `PolicyUsageFilter`
/// (PermissionsPolicy: attached; PermissionsBoundary: used as a boundary; both when absent), and
/// one page over the groups, users and roles together, in that order.
fn entities_for_policy_xml(w: &mut XmlWriter, state: &State, q: &Query) -> Result<(), S3Error> {
    let kinds: &[PrincipalKind] = match q.get("EntityFilter") {
        None => &[
            PrincipalKind::Group,
            PrincipalKind::User,
            PrincipalKind::Role,
        ],
        Some("User") => &[PrincipalKind::User],
        Some("Role") => &[PrincipalKind::Role],
        Some("Group") => &[PrincipalKind::Group],
        Some("LocalManagedPolicy" | "AWSManagedPolicy") => &[],
        Some(other) => {
            return Err(not_one_of(
                "EntityFilter",
                other,
                "User, Role, Group, LocalManagedPolicy, AWSManagedPolicy",
            ))
        }
    };
    let (attached, boundary) = policy_usage(q)?.unwrap_or((true, true));
    let prefix = path_prefix(q)?;
    let paging = Paging::from_query(q)?;
    let mut entities = state.entities_for_policy(required(q, "PolicyArn")?)?;
    entities.retain(|e| {
        kinds.contains(&e.kind)
            && e.path.starts_with(prefix)
            && ((attached && e.attached) || (boundary && e.boundary))
    });
    let (page, next) = paging.page(&entities);
    for (kind, container, name_el, id_el) in [
        (PrincipalKind::Group, "PolicyGroups", "GroupName", "GroupId"),
        (PrincipalKind::User, "PolicyUsers", "UserName", "UserId"),
        (PrincipalKind::Role, "PolicyRoles", "RoleName", "RoleId"),
    ] {
        w.open(container);
        for e in page.iter().filter(|e| e.kind == kind) {
            w.open("member");
            w.elem(name_el, &e.name);
            w.elem(id_el, &e.id);
            w.close("member");
        }
        w.close(container);
    }
    paging::truncation(w, next.as_deref());
    Ok(())
}

/// The path of a managed policy named by its ARN (`arn:aws:iam::ACCOUNT:policy/PATH/NAME` gives
/// `/PATH/`).
fn policy_path(arn: &str) -> &str {
    let Some(rest) = arn.split_once(":policy").map(|(_, r)| r) else {
        return "/";
    };
    match rest.rfind('/') {
        Some(end) => rest.get(..=end).unwrap_or("/"),
        None => "/",
    }
}

/// The order users, groups and roles are listed in: by name without regard to case, then as
/// written (ceph/s3-tests' `test_account_*_list`: "sort order is independent of CreateDate,
/// Path, and UserName capitalization").
fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
        .then_with(|| a.cmp(b))
}

/// The user an action is about: `UserName`, or the caller for the actions that default to it.
fn target_user(q: &Query, principal: &Principal) -> Result<String, S3Error> {
    match q.get("UserName") {
        // "Length Constraints: Minimum length of 1" (API_GetUser.html and the key actions): an
        // empty one is an error, not the caller (review 21, I2).
        Some("") => {
            return Err(S3Error::new(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                "UserName is empty: name a user, or leave the parameter out to mean the caller",
            ))
        }
        Some(u) => return Ok(u.to_owned()),
        None => {}
    }
    match principal {
        Principal::User { name, .. } => Ok(name.clone()),
        _ => Err(S3Error::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            "UserName is required here: the caller is not an IAM user, so there is no user to default to (and the root user's access keys are not managed through this API)",
        )),
    }
}

/// The (action, resource) an IAM request must be allowed.
pub fn permission(
    action: IamAction,
    q: &Query,
    principal: &Principal,
    account_id: &str,
) -> Result<Permission, S3Error> {
    use IamAction as A;
    let user_arn = |name: &str| format!("arn:aws:iam::{account_id}:user/{name}");
    let resource = match action {
        A::TagUser
        | A::UntagUser
        | A::ListUserTags
        | A::PutUserPermissionsBoundary
        | A::DeleteUserPermissionsBoundary
        | A::DeleteUser
        | A::UpdateUser
        | A::PutUserPolicy
        | A::GetUserPolicy
        | A::ListUserPolicies
        | A::DeleteUserPolicy
        | A::AttachUserPolicy
        | A::DetachUserPolicy
        | A::ListAttachedUserPolicies
        | A::ListGroupsForUser => user_arn(required(q, "UserName")?),
        // The root user asking about itself: the root's ARN (it is always allowed).
        A::GetUser
            if matches!(principal, Principal::Root { .. }) && q.get("UserName").is_none() =>
        {
            format!("arn:aws:iam::{account_id}:root")
        }
        A::GetUser
        | A::CreateAccessKey
        | A::ListAccessKeys
        | A::UpdateAccessKey
        | A::DeleteAccessKey => user_arn(&target_user(q, principal)?),
        // The new entity's ARN with its path: the resource types are `user/${UserNameWithPath}`
        // and `role/${RoleNameWithPath}`
        // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html),
        // so a Deny on `user/admins/*` stops creating users under /admins/ (review round 3).
        A::CreateUser => format!(
            "arn:aws:iam::{account_id}:user{}{}",
            q.get("Path").unwrap_or("/"),
            required(q, "UserName")?
        ),
        A::CreateRole => format!(
            "arn:aws:iam::{account_id}:role{}{}",
            q.get("Path").unwrap_or("/"),
            required(q, "RoleName")?
        ),
        A::CreatePolicy => format!(
            "arn:aws:iam::{account_id}:policy{}{}",
            q.get("Path").unwrap_or("/"),
            required(q, "PolicyName")?
        ),
        A::GetPolicy
        | A::DeletePolicy
        | A::CreatePolicyVersion
        | A::GetPolicyVersion
        | A::ListPolicyVersions
        | A::DeletePolicyVersion
        | A::SetDefaultPolicyVersion
        | A::ListEntitiesForPolicy => required(q, "PolicyArn")?.to_owned(),
        // The group's ARN (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html):
        // AddUserToGroup and RemoveUserFromGroup are about the group, not the user.
        A::CreateGroup => format!(
            "arn:aws:iam::{account_id}:group{}{}",
            q.get("Path").unwrap_or("/"),
            required(q, "GroupName")?
        ),
        A::GetGroup
        | A::DeleteGroup
        | A::UpdateGroup
        | A::AddUserToGroup
        | A::RemoveUserFromGroup
        | A::PutGroupPolicy
        | A::GetGroupPolicy
        | A::ListGroupPolicies
        | A::DeleteGroupPolicy
        | A::AttachGroupPolicy
        | A::DetachGroupPolicy
        | A::ListAttachedGroupPolicies => format!(
            "arn:aws:iam::{account_id}:group/{}",
            required(q, "GroupName")?
        ),
        A::TagRole
        | A::UntagRole
        | A::ListRoleTags
        | A::PutRolePermissionsBoundary
        | A::DeleteRolePermissionsBoundary
        | A::GetRole
        | A::DeleteRole
        | A::UpdateAssumeRolePolicy
        | A::UpdateRole
        | A::PutRolePolicy
        | A::GetRolePolicy
        | A::ListRolePolicies
        | A::DeleteRolePolicy
        | A::AttachRolePolicy
        | A::DetachRolePolicy
        | A::ListAttachedRolePolicies => format!(
            "arn:aws:iam::{account_id}:role/{}",
            required(q, "RoleName")?
        ),
        // Listing everything has no resource type in AWS's authorization reference: `*`.
        A::ListUsers
        | A::ListPolicies
        | A::ListRoles
        | A::ListGroups
        | A::GetAccountAuthorizationDetails => "*".to_owned(),
        // The simulator reads the policies of the user, group or role it is asked about: its
        // ARN is the resource; custom simulations read only the request, `*`
        // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
        A::SimulateCustomPolicy | A::GetContextKeysForCustomPolicy => "*".to_owned(),
        A::SimulatePrincipalPolicy | A::GetContextKeysForPrincipalPolicy => {
            required(q, "PolicySourceArn")?.to_owned()
        }
        // The provider's ARN (`oidc-provider` resource type); creating one names it by its URL.
        A::CreateOpenIDConnectProvider => {
            crate::oidc::provider_arn(account_id, required(q, "Url")?)
        }
        A::ListOpenIDConnectProviders => "*".to_owned(),
        A::GetOpenIDConnectProvider
        | A::DeleteOpenIDConnectProvider
        | A::AddClientIDToOpenIDConnectProvider
        | A::RemoveClientIDFromOpenIDConnectProvider
        | A::UpdateOpenIDConnectProviderThumbprint
        | A::TagOpenIDConnectProvider
        | A::UntagOpenIDConnectProvider
        | A::ListOpenIDConnectProviderTags => required(q, "OpenIDConnectProviderArn")?.to_owned(),
        // The account's credential report has no resource type: `*`
        // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
        A::GenerateCredentialReport | A::GetCredentialReport => "*".to_owned(),
        // On the key owner's user, which only the state knows: [`describe`] names it
        // (`keys::last_used_resource`); a key nobody owns is `user/*`.
        A::GetAccessKeyLastUsed => {
            // "AccessKeyId ... Length Constraints: Minimum length of 16. Maximum length of 128.
            // Pattern: [\w]+" (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccessKeyLastUsed.html;
            // review 13: any value was accepted and echoed).
            let id = required(q, "AccessKeyId")?;
            if !(16..=128).contains(&id.len())
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(S3Error::new(
                    "ValidationError",
                    StatusCode::BAD_REQUEST,
                    "1 validation error detected: Value at 'accessKeyId' failed to satisfy constraint: Member must have length between 16 and 128 and satisfy regular expression pattern: [\\w]+",
                ));
            }
            format!("arn:aws:iam::{account_id}:user/*")
        }
    };
    Ok(Permission {
        action: action.iam_action(),
        resource,
    })
}

/// The ARN of an existing user, role or group with its path (`arn:aws:iam::ACCOUNT:user/team/
/// alice`), as AWS authorizes IAM actions on it, so a policy naming `user/team/*` applies
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).
/// Other resources, names not found, and ARNs that already carry a path are returned as given.
pub fn with_entity_path(state: &State, resource: &str) -> String {
    let Some((_account, rest)) = resource
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(':'))
    else {
        return resource.to_owned();
    };
    let Some((kind, name)) = rest.split_once('/') else {
        return resource.to_owned();
    };
    if name.contains('/') {
        return resource.to_owned();
    }
    let snapshot = state.snapshot();
    let found = match kind {
        "user" => snapshot.users.get(name).map(|u| u.arn.clone()),
        "role" => snapshot.roles.get(name).map(|r| r.arn.clone()),
        "group" => snapshot.group_arns.get(name).cloned(),
        _ => None,
    };
    found.unwrap_or_else(|| resource.to_owned())
}

/// Percent-encodes a policy document as IAM returns them (RFC 3986; SDKs decode it).
fn url_encode(s: &str) -> String {
    crate::client::encode_unreserved(s)
}

fn xml_date(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// A user as CreateUser, GetUser and the lists show it; `tags` only for CreateUser and GetUser
/// (lists "do not return tags", API_ListUsers.html).
fn user_xml(
    w: &mut XmlWriter,
    el: &str,
    u: &crate::state::UserRecord,
    arn: &str,
    boundary: Option<&str>,
    tags: &[(String, String)],
) {
    w.open(el);
    w.elem("Path", &u.path);
    w.elem("UserName", &u.name);
    w.elem("UserId", &u.id);
    w.elem("Arn", arn);
    w.elem("CreateDate", &xml_date(&u.created));
    boundary_xml(w, boundary);
    optional_tags_xml(w, tags);
    w.close(el);
}

/// `Tags` of a user or role (API_User.html, API_Role.html), left out when there are none.
fn optional_tags_xml(w: &mut XmlWriter, tags: &[(String, String)]) {
    if !tags.is_empty() {
        tags_xml(w, tags);
    }
}

/// `PermissionsBoundary` of a user or role
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AttachedPermissionsBoundary.html).
fn boundary_xml(w: &mut XmlWriter, boundary: Option<&str>) {
    if let Some(arn) = boundary {
        w.open("PermissionsBoundary");
        w.elem("PermissionsBoundaryType", "PermissionsBoundaryPolicy");
        w.elem("PermissionsBoundaryArn", arn);
        w.close("PermissionsBoundary");
    }
}

/// A role as GetRole, CreateRole and ListRoles show it; its trust policy as
/// [`State::displayed_trust_policy`] renders it (deleted principals as their unique ids).
fn role_xml(
    w: &mut XmlWriter,
    state: &State,
    el: &str,
    r: &crate::state::RoleRecord,
    with_tags: bool,
) -> Result<(), S3Error> {
    let arn = state.role_arn(r);
    let trust = state.displayed_trust_policy(r)?;
    let boundary = state.boundary_arn(PrincipalKind::Role, &r.name)?;
    let tags = if with_tags {
        state.list_tags(PrincipalKind::Role, &r.name)?
    } else {
        Vec::new()
    };
    w.open(el);
    w.elem("Path", &r.path);
    w.elem("RoleName", &r.name);
    w.elem("RoleId", &r.id);
    w.elem("Arn", &arn);
    w.elem("CreateDate", &xml_date(&r.created));
    w.elem("AssumeRolePolicyDocument", &url_encode(&trust));
    if !r.description.is_empty() {
        w.elem("Description", &r.description);
    }
    w.elem("MaxSessionDuration", &r.max_session_secs.to_string());
    boundary_xml(w, boundary.as_deref());
    optional_tags_xml(w, &tags);
    w.close(el);
    Ok(())
}

fn policy_xml(w: &mut XmlWriter, el: &str, p: &crate::state::ManagedPolicyRecord, arn: &str) {
    w.open(el);
    policy_fields(w, p, arn);
    w.close(el);
}

/// The elements of AWS's `Policy` (API_Policy.html), shared with GetAccountAuthorizationDetails'
/// `ManagedPolicyDetail`.
fn policy_fields(w: &mut XmlWriter, p: &crate::state::ManagedPolicyRecord, arn: &str) {
    w.elem("PolicyName", &p.name);
    w.elem("PolicyId", &p.id);
    w.elem("Arn", arn);
    w.elem("Path", &p.path);
    w.elem("DefaultVersionId", &p.default_version);
    w.elem("AttachmentCount", &p.attachments.to_string());
    w.elem(
        "PermissionsBoundaryUsageCount",
        &p.boundary_uses.to_string(),
    );
    w.elem("IsAttachable", "true");
    if !p.description.is_empty() {
        w.elem("Description", &p.description);
    }
    w.elem("CreateDate", &xml_date(&p.created));
    w.elem("UpdateDate", &xml_date(&p.updated));
}

fn group_xml(w: &mut XmlWriter, el: &str, g: &crate::state::GroupRecord, arn: &str) {
    w.open(el);
    w.elem("Path", &g.path);
    w.elem("GroupName", &g.name);
    w.elem("GroupId", &g.id);
    w.elem("Arn", arn);
    w.elem("CreateDate", &xml_date(&g.created));
    w.close(el);
}

/// A `PolicyVersion`; the document only where AWS returns it (GetPolicyVersion), URL-encoded
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_PolicyVersion.html).
fn version_xml(w: &mut XmlWriter, el: &str, v: &crate::state::PolicyVersionRecord, document: bool) {
    w.open(el);
    if document {
        w.elem("Document", &url_encode(&v.document));
    }
    w.elem("VersionId", &v.id);
    w.elem(
        "IsDefaultVersion",
        if v.is_default { "true" } else { "false" },
    );
    w.elem("CreateDate", &xml_date(&v.created));
    w.close(el);
}

/// A page of groups (ListGroups, ListGroupsForUser).
fn groups_list_xml(
    w: &mut XmlWriter,
    state: &State,
    paging: Paging,
    groups: &[crate::state::GroupRecord],
) {
    paging::list(w, paging, "Groups", groups, |w, g| {
        group_xml(w, "member", g, &state.group_arn(g));
    });
}

/// A page of names (the List*Policies of inline policies).
fn names_list_xml(w: &mut XmlWriter, paging: Paging, container: &str, names: &[String]) {
    paging::list(w, paging, container, names, |w, n| {
        w.elem("member", n);
    });
}

/// An optional boolean parameter (`true`/`false`, as the SDKs send them).
fn bool_param(q: &Query, name: &str) -> Result<bool, S3Error> {
    match q.get(name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(S3Error::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            format!("{name} must be `true` or `false`, not `{v}`"),
        )),
    }
}

/// Runs an authorized IAM action; returns its response and what the audit trail records of it
/// (CloudTrail's `responseElements` for the calls that create something; never a secret).
pub async fn handle(
    gw: &Gateway,
    principal: &Principal,
    call: Authorized<IamCall>,
    request_id: &str,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    let state = gw.state.clone();
    let caller = principal.clone();
    let rid = request_id.to_owned();
    let account = gw.account.record.clone();
    let recorder = gw.key_usage.clone();
    let call = call.into_call();
    crate::state::db::blocking(move || {
        let hygiene = Hygiene {
            recorder: &recorder,
            account: &account,
        };
        run(
            &state,
            &account.account_id,
            &caller,
            call.action,
            &call.form,
            &rid,
            &hygiene,
        )
    })
    .await
}

/// What the key hygiene actions read beside the state.
struct Hygiene<'a> {
    recorder: &'a crate::keys::Recorder,
    account: &'a crate::account::AccountRecord,
}

fn run(
    state: &State,
    account_id: &str,
    principal: &Principal,
    action: IamAction,
    q: &Query,
    request_id: &str,
    hygiene: &Hygiene<'_>,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    use IamAction as A;
    let name = action.name();
    let mut elements = None;
    let mut w = XmlWriter::new();
    w.root_ns(&format!("{name}Response"), IAM_NS);
    let result = format!("{name}Result");
    match action {
        A::CreateUser => {
            let boundary = q.get("PermissionsBoundary").filter(|b| !b.is_empty());
            let (u, arn) = state.create_user_with(
                required(q, "UserName")?,
                q.get("Path").unwrap_or("/"),
                boundary,
                &tags_param(q),
            )?;
            elements =
                Some(serde_json::json!({"user": {"userName": u.name, "userId": u.id, "arn": arn}}));
            let tags = state.list_tags(PrincipalKind::User, &u.name)?;
            w.open(&result);
            user_xml(&mut w, "User", &u, &arn, boundary, &tags);
            w.close(&result);
        }
        // GetUser without `UserName` "defaults to the user making the request"
        // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetUser.html); for the root
        // user that is the account's root: its ARN `arn:aws:iam::ACCOUNT:root`, the account id
        // as its id, no name or path (it is no IAM user).
        A::GetUser
            if matches!(principal, Principal::Root { .. }) && q.get("UserName").is_none() =>
        {
            let arn = format!("arn:aws:iam::{account_id}:root");
            elements = Some(serde_json::json!({"user": {"userId": account_id, "arn": arn}}));
            w.open(&result);
            w.open("User");
            w.elem("UserId", account_id);
            w.elem("Arn", &arn);
            w.elem("CreateDate", &xml_date(&hygiene.account.created));
            w.close("User");
            w.close(&result);
        }
        A::GetUser => {
            let (u, arn) = state.get_user(&target_user(q, principal)?)?;
            let boundary = state.boundary_arn(PrincipalKind::User, &u.name)?;
            let tags = state.list_tags(PrincipalKind::User, &u.name)?;
            w.open(&result);
            user_xml(&mut w, "User", &u, &arn, boundary.as_deref(), &tags);
            w.close(&result);
        }
        A::ListUsers => {
            let prefix = path_prefix(q)?;
            let paging = Paging::from_query(q)?;
            let mut users = state.list_users()?;
            users.retain(|(u, _)| u.path.starts_with(prefix));
            users.sort_by(|(a, _), (b, _)| name_order(&a.name, &b.name));
            w.open(&result);
            paging::try_list(&mut w, paging, "Users", &users, |w, (u, arn)| {
                let boundary = state.boundary_arn(PrincipalKind::User, &u.name)?;
                user_xml(w, "member", u, arn, boundary.as_deref(), &[]);
                Ok::<_, StateError>(())
            })?;
            w.close(&result);
        }
        A::DeleteUser => {
            state.delete_user(required(q, "UserName")?)?;
        }
        A::CreateAccessKey => {
            let (k, secret) = state.create_access_key(&target_user(q, principal)?)?;
            elements = Some(serde_json::json!({"accessKey": {
                "userName": k.user_name, "accessKeyId": k.id, "status": k.status}}));
            w.open(&result);
            w.open("AccessKey");
            w.elem("UserName", &k.user_name);
            w.elem("AccessKeyId", &k.id);
            w.elem("Status", &k.status);
            w.elem("SecretAccessKey", secret.expose());
            w.elem("CreateDate", &xml_date(&k.created));
            w.close("AccessKey");
            w.close(&result);
        }
        A::ListAccessKeys => {
            let user = target_user(q, principal)?;
            let paging = Paging::from_query(q)?;
            let access_keys = state.list_access_keys(&user)?;
            w.open(&result);
            w.elem("UserName", &user);
            paging::list(&mut w, paging, "AccessKeyMetadata", &access_keys, |w, k| {
                w.open("member");
                w.elem("UserName", &k.user_name);
                w.elem("AccessKeyId", &k.id);
                w.elem("Status", &k.status);
                w.elem("CreateDate", &xml_date(&k.created));
                w.close("member");
            });
            w.close(&result);
        }
        A::UpdateAccessKey => {
            state.update_access_key(
                &target_user(q, principal)?,
                required(q, "AccessKeyId")?,
                required(q, "Status")?,
            )?;
        }
        A::DeleteAccessKey => {
            state.delete_access_key(&target_user(q, principal)?, required(q, "AccessKeyId")?)?;
        }
        A::PutUserPolicy => {
            state.put_inline_policy(
                PrincipalKind::User,
                required(q, "UserName")?,
                required(q, "PolicyName")?,
                required(q, "PolicyDocument")?,
            )?;
        }
        A::GetUserPolicy => {
            let (user, policy) = (required(q, "UserName")?, required(q, "PolicyName")?);
            let doc = state.get_inline_policy(PrincipalKind::User, user, policy)?;
            w.open(&result);
            w.elem("UserName", user);
            w.elem("PolicyName", policy);
            w.elem("PolicyDocument", &url_encode(&doc));
            w.close(&result);
        }
        A::ListUserPolicies => {
            let paging = Paging::from_query(q)?;
            let names =
                state.list_inline_policies(PrincipalKind::User, required(q, "UserName")?)?;
            w.open(&result);
            names_list_xml(&mut w, paging, "PolicyNames", &names);
            w.close(&result);
        }
        A::DeleteUserPolicy => {
            state.delete_inline_policy(
                PrincipalKind::User,
                required(q, "UserName")?,
                required(q, "PolicyName")?,
            )?;
        }
        A::CreatePolicy => {
            let p = state.create_policy(
                required(q, "PolicyName")?,
                q.get("Path").unwrap_or("/"),
                q.get("Description").unwrap_or(""),
                required(q, "PolicyDocument")?,
            )?;
            let arn = state.policy_arn(&p);
            w.open(&result);
            policy_xml(&mut w, "Policy", &p, &arn);
            w.close(&result);
        }
        A::GetPolicy => {
            let p = state.get_policy(required(q, "PolicyArn")?)?;
            let arn = state.policy_arn(&p);
            w.open(&result);
            policy_xml(&mut w, "Policy", &p, &arn);
            w.close(&result);
        }
        A::ListPolicies => {
            // Only customer-managed policies exist here; `Scope=AWS` lists none.
            let aws_only = match q.get("Scope").unwrap_or("All") {
                "All" | "Local" => false,
                "AWS" => true,
                other => return Err(not_one_of("Scope", other, "All, AWS, Local")),
            };
            let prefix = path_prefix(q)?;
            let only_attached = bool_param(q, "OnlyAttached")?;
            // A customer managed policy is either by how it is in use: attached, or set as a
            // boundary.
            let usage = policy_usage(q)?;
            let paging = Paging::from_query(q)?;
            let mut policies = if aws_only {
                Vec::new()
            } else {
                state.list_policies()?
            };
            policies.retain(|p| {
                p.path.starts_with(prefix)
                    && (!only_attached || p.attachments > 0)
                    && usage.is_none_or(|(attached, boundary)| {
                        (attached && p.attachments > 0) || (boundary && p.boundary_uses > 0)
                    })
            });
            w.open(&result);
            paging::list(&mut w, paging, "Policies", &policies, |w, p| {
                policy_xml(w, "member", p, &state.policy_arn(p));
            });
            w.close(&result);
        }
        A::DeletePolicy => {
            state.delete_policy(required(q, "PolicyArn")?)?;
        }
        A::AttachUserPolicy => {
            state.attach_policy(
                PrincipalKind::User,
                required(q, "UserName")?,
                required(q, "PolicyArn")?,
            )?;
        }
        A::DetachUserPolicy => {
            state.detach_policy(
                PrincipalKind::User,
                required(q, "UserName")?,
                required(q, "PolicyArn")?,
            )?;
        }
        A::UpdateRole => {
            state.update_role(
                required(q, "RoleName")?,
                q.get("Description"),
                max_session_duration(q)?,
            )?;
            // Its output is an empty structure, wrapped as SDKs expect (`UpdateRoleResult`).
            w.open(&result);
            w.close(&result);
        }
        A::CreateRole => {
            let max = max_session_duration(q)?.unwrap_or(3600);
            let r = state.create_role_with(
                required(q, "RoleName")?,
                q.get("Path").unwrap_or("/"),
                required(q, "AssumeRolePolicyDocument")?,
                max,
                q.get("Description").unwrap_or(""),
                q.get("PermissionsBoundary").filter(|b| !b.is_empty()),
                &tags_param(q),
            )?;
            elements = Some(serde_json::json!({"role": {
                "roleName": r.name, "roleId": r.id, "arn": state.role_arn(&r)}}));
            w.open(&result);
            role_xml(&mut w, state, "Role", &r, true)?;
            w.close(&result);
        }
        A::GetRole => {
            let r = state.get_role(required(q, "RoleName")?)?;
            w.open(&result);
            role_xml(&mut w, state, "Role", &r, true)?;
            w.close(&result);
        }
        A::ListRoles => {
            let prefix = path_prefix(q)?;
            let paging = Paging::from_query(q)?;
            let mut roles = state.list_roles()?;
            roles.retain(|r| r.path.starts_with(prefix));
            roles.sort_by(|a, b| name_order(&a.name, &b.name));
            w.open(&result);
            paging::try_list(&mut w, paging, "Roles", &roles, |w, r| {
                role_xml(w, state, "member", r, false)
            })?;
            w.close(&result);
        }
        A::DeleteRole => state.delete_role(required(q, "RoleName")?)?,
        A::UpdateAssumeRolePolicy => {
            state.update_trust_policy(required(q, "RoleName")?, required(q, "PolicyDocument")?)?;
        }
        A::PutRolePolicy => {
            state.put_inline_policy(
                PrincipalKind::Role,
                required(q, "RoleName")?,
                required(q, "PolicyName")?,
                required(q, "PolicyDocument")?,
            )?;
        }
        A::GetRolePolicy => {
            let (role, policy) = (required(q, "RoleName")?, required(q, "PolicyName")?);
            let doc = state.get_inline_policy(PrincipalKind::Role, role, policy)?;
            w.open(&result);
            w.elem("RoleName", role);
            w.elem("PolicyName", policy);
            w.elem("PolicyDocument", &url_encode(&doc));
            w.close(&result);
        }
        A::ListRolePolicies => {
            let paging = Paging::from_query(q)?;
            let names =
                state.list_inline_policies(PrincipalKind::Role, required(q, "RoleName")?)?;
            w.open(&result);
            names_list_xml(&mut w, paging, "PolicyNames", &names);
            w.close(&result);
        }
        A::DeleteRolePolicy => state.delete_inline_policy(
            PrincipalKind::Role,
            required(q, "RoleName")?,
            required(q, "PolicyName")?,
        )?,
        A::AttachRolePolicy => state.attach_policy(
            PrincipalKind::Role,
            required(q, "RoleName")?,
            required(q, "PolicyArn")?,
        )?,
        A::DetachRolePolicy => state.detach_policy(
            PrincipalKind::Role,
            required(q, "RoleName")?,
            required(q, "PolicyArn")?,
        )?,
        A::TagUser => state.tag(
            PrincipalKind::User,
            required(q, "UserName")?,
            &tags_param(q),
        )?,
        A::UntagUser => state.untag(
            PrincipalKind::User,
            required(q, "UserName")?,
            &members(q, "TagKeys"),
        )?,
        A::TagRole => state.tag(
            PrincipalKind::Role,
            required(q, "RoleName")?,
            &tags_param(q),
        )?,
        A::UntagRole => state.untag(
            PrincipalKind::Role,
            required(q, "RoleName")?,
            &members(q, "TagKeys"),
        )?,
        A::CreateOpenIDConnectProvider => {
            let tags = tags_param(q);
            let arn = state.create_oidc_provider(
                required(q, "Url")?,
                &members(q, "ClientIDList"),
                &members(q, "ThumbprintList"),
                &tags,
            )?;
            elements = Some(serde_json::json!({"openIDConnectProviderArn": arn}));
            w.open(&result);
            w.elem("OpenIDConnectProviderArn", &arn);
            tags_xml(&mut w, &tags);
            w.close(&result);
        }
        A::GetOpenIDConnectProvider => {
            let e = state.get_oidc_provider(required(q, "OpenIDConnectProviderArn")?)?;
            // AWS shows the URL without its scheme.
            w.open(&result);
            w.elem("Url", crate::oidc::provider_name(&e.provider.url));
            w.open("ClientIDList");
            for id in &e.provider.client_ids {
                w.elem("member", id);
            }
            w.close("ClientIDList");
            w.open("ThumbprintList");
            for t in &e.provider.thumbprints {
                w.elem("member", t);
            }
            w.close("ThumbprintList");
            w.elem("CreateDate", &xml_date(&e.provider.created));
            tags_xml(&mut w, &e.tags);
            w.close(&result);
        }
        A::ListOpenIDConnectProviders => {
            w.open(&result);
            w.open("OpenIDConnectProviderList");
            for arn in state.list_oidc_providers()? {
                w.open("member");
                w.elem("Arn", &arn);
                w.close("member");
            }
            w.close("OpenIDConnectProviderList");
            w.close(&result);
        }
        A::DeleteOpenIDConnectProvider => {
            state.delete_oidc_provider(required(q, "OpenIDConnectProviderArn")?)?;
        }
        A::AddClientIDToOpenIDConnectProvider => {
            let id = required(q, "ClientID")?.to_owned();
            crate::state::oidc::validate_client_id(&id)?;
            state.update_oidc_provider(required(q, "OpenIDConnectProviderArn")?, |e| {
                if !e.provider.client_ids.contains(&id) {
                    e.provider.client_ids.push(id);
                }
                Ok(())
            })?;
        }
        A::RemoveClientIDFromOpenIDConnectProvider => {
            // "This operation is idempotent; it does not fail or return an error if you try to
            // remove a client ID that does not exist"
            // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_RemoveClientIDFromOpenIDConnectProvider.html).
            let id = required(q, "ClientID")?.to_owned();
            state.update_oidc_provider(required(q, "OpenIDConnectProviderArn")?, |e| {
                e.provider.client_ids.retain(|c| *c != id);
                Ok(())
            })?;
        }
        A::UpdateOpenIDConnectProviderThumbprint => {
            let list = members(q, "ThumbprintList");
            for t in &list {
                crate::state::oidc::validate_thumbprint(t)?;
            }
            if list.len() > crate::state::oidc::MAX_THUMBPRINTS {
                return Err(StateError::LimitExceeded(format!(
                    "a provider may have at most {} thumbprints",
                    crate::state::oidc::MAX_THUMBPRINTS
                ))
                .into());
            }
            state.update_oidc_provider(required(q, "OpenIDConnectProviderArn")?, |e| {
                e.provider.thumbprints = list;
                Ok(())
            })?;
        }
        A::TagOpenIDConnectProvider => {
            let tags = tags_param(q);
            state.update_oidc_provider(required(q, "OpenIDConnectProviderArn")?, |e| {
                for (k, v) in tags {
                    match e.tags.iter_mut().find(|(x, _)| x.eq_ignore_ascii_case(&k)) {
                        Some(slot) => slot.1 = v,
                        None => e.tags.push((k, v)),
                    }
                }
                Ok(())
            })?;
        }
        A::UntagOpenIDConnectProvider => {
            let keys = members(q, "TagKeys");
            state.update_oidc_provider(required(q, "OpenIDConnectProviderArn")?, |e| {
                e.tags
                    .retain(|(k, _)| !keys.iter().any(|x| x.eq_ignore_ascii_case(k)));
                Ok(())
            })?;
        }
        A::ListOpenIDConnectProviderTags => {
            let paging = Paging::from_query(q)?;
            let e = state.get_oidc_provider(required(q, "OpenIDConnectProviderArn")?)?;
            w.open(&result);
            tags_page_xml(&mut w, paging, &e.tags);
            w.close(&result);
        }
        A::ListUserTags | A::ListRoleTags => {
            let (kind, param) = if action == A::ListUserTags {
                (PrincipalKind::User, "UserName")
            } else {
                (PrincipalKind::Role, "RoleName")
            };
            let paging = Paging::from_query(q)?;
            let tags = state.list_tags(kind, required(q, param)?)?;
            w.open(&result);
            tags_page_xml(&mut w, paging, &tags);
            w.close(&result);
        }
        A::PutUserPermissionsBoundary => state.set_boundary(
            PrincipalKind::User,
            required(q, "UserName")?,
            Some(required(q, "PermissionsBoundary")?),
        )?,
        A::DeleteUserPermissionsBoundary => {
            state.set_boundary(PrincipalKind::User, required(q, "UserName")?, None)?;
        }
        A::PutRolePermissionsBoundary => state.set_boundary(
            PrincipalKind::Role,
            required(q, "RoleName")?,
            Some(required(q, "PermissionsBoundary")?),
        )?,
        A::DeleteRolePermissionsBoundary => {
            state.set_boundary(PrincipalKind::Role, required(q, "RoleName")?, None)?;
        }
        A::ListAttachedUserPolicies
        | A::ListAttachedGroupPolicies
        | A::ListAttachedRolePolicies => {
            let prefix = path_prefix(q)?;
            let paging = Paging::from_query(q)?;
            let mut attached = match action {
                A::ListAttachedUserPolicies => {
                    state.list_attached_policies(PrincipalKind::User, required(q, "UserName")?)?
                }
                A::ListAttachedGroupPolicies => {
                    state.list_attached_policies(PrincipalKind::Group, required(q, "GroupName")?)?
                }
                _ => state.list_attached_policies(PrincipalKind::Role, required(q, "RoleName")?)?,
            };
            attached.retain(|(_, arn)| policy_path(arn).starts_with(prefix));
            w.open(&result);
            paging::list(
                &mut w,
                paging,
                "AttachedPolicies",
                &attached,
                attached_policy_xml,
            );
            w.close(&result);
        }
        A::CreateGroup => {
            let g = state.create_group(required(q, "GroupName")?, q.get("Path").unwrap_or("/"))?;
            w.open(&result);
            group_xml(&mut w, "Group", &g, &state.group_arn(&g));
            w.close(&result);
        }
        A::GetGroup => {
            let paging = Paging::from_query(q)?;
            let (g, users) = state.get_group(required(q, "GroupName")?)?;
            w.open(&result);
            group_xml(&mut w, "Group", &g, &state.group_arn(&g));
            paging::list(&mut w, paging, "Users", &users, |w, (u, arn)| {
                user_xml(w, "member", u, arn, None, &[]);
            });
            w.close(&result);
        }
        A::ListGroups => {
            let prefix = path_prefix(q)?;
            let paging = Paging::from_query(q)?;
            let mut groups = state.list_groups(prefix)?;
            groups.sort_by(|a, b| name_order(&a.name, &b.name));
            w.open(&result);
            groups_list_xml(&mut w, state, paging, &groups);
            w.close(&result);
        }
        A::ListGroupsForUser => {
            let paging = Paging::from_query(q)?;
            let groups = state.list_groups_for_user(required(q, "UserName")?)?;
            w.open(&result);
            groups_list_xml(&mut w, state, paging, &groups);
            w.close(&result);
        }
        A::UpdateUser => {
            let (new_name, new_path) = (q.get("NewUserName"), q.get("NewPath"));
            state.update_user(required(q, "UserName")?, new_name, new_path)?;
        }
        A::DeleteGroup => state.delete_group(required(q, "GroupName")?)?,
        A::UpdateGroup => {
            let (new_name, new_path) = (q.get("NewGroupName"), q.get("NewPath"));
            state.update_group(required(q, "GroupName")?, new_name, new_path)?;
        }
        A::AddUserToGroup => {
            state.add_user_to_group(required(q, "GroupName")?, required(q, "UserName")?)?;
        }
        A::RemoveUserFromGroup => {
            state.remove_user_from_group(required(q, "GroupName")?, required(q, "UserName")?)?;
        }
        A::PutGroupPolicy => state.put_inline_policy(
            PrincipalKind::Group,
            required(q, "GroupName")?,
            required(q, "PolicyName")?,
            required(q, "PolicyDocument")?,
        )?,
        A::GetGroupPolicy => {
            let (group, policy) = (required(q, "GroupName")?, required(q, "PolicyName")?);
            let doc = state.get_inline_policy(PrincipalKind::Group, group, policy)?;
            w.open(&result);
            w.elem("GroupName", group);
            w.elem("PolicyName", policy);
            w.elem("PolicyDocument", &url_encode(&doc));
            w.close(&result);
        }
        A::ListGroupPolicies => {
            let paging = Paging::from_query(q)?;
            let names =
                state.list_inline_policies(PrincipalKind::Group, required(q, "GroupName")?)?;
            w.open(&result);
            names_list_xml(&mut w, paging, "PolicyNames", &names);
            w.close(&result);
        }
        A::DeleteGroupPolicy => state.delete_inline_policy(
            PrincipalKind::Group,
            required(q, "GroupName")?,
            required(q, "PolicyName")?,
        )?,
        A::AttachGroupPolicy => state.attach_policy(
            PrincipalKind::Group,
            required(q, "GroupName")?,
            required(q, "PolicyArn")?,
        )?,
        A::DetachGroupPolicy => state.detach_policy(
            PrincipalKind::Group,
            required(q, "GroupName")?,
            required(q, "PolicyArn")?,
        )?,
        A::CreatePolicyVersion => {
            let v = state.create_policy_version(
                required(q, "PolicyArn")?,
                required(q, "PolicyDocument")?,
                bool_param(q, "SetAsDefault")?,
            )?;
            w.open(&result);
            version_xml(&mut w, "PolicyVersion", &v, false);
            w.close(&result);
        }
        A::GetPolicyVersion => {
            let v =
                state.get_policy_version(required(q, "PolicyArn")?, required(q, "VersionId")?)?;
            w.open(&result);
            version_xml(&mut w, "PolicyVersion", &v, true);
            w.close(&result);
        }
        A::ListPolicyVersions => {
            let paging = Paging::from_query(q)?;
            let versions = state.list_policy_versions(required(q, "PolicyArn")?)?;
            w.open(&result);
            paging::list(&mut w, paging, "Versions", &versions, |w, v| {
                version_xml(w, "member", v, false);
            });
            w.close(&result);
        }
        A::GetAccountAuthorizationDetails => {
            w.open(&result);
            details::write(&mut w, state, q)?;
            w.close(&result);
        }
        A::ListEntitiesForPolicy => {
            w.open(&result);
            entities_for_policy_xml(&mut w, state, q)?;
            w.close(&result);
        }
        A::DeletePolicyVersion => {
            state.delete_policy_version(required(q, "PolicyArn")?, required(q, "VersionId")?)?;
        }
        A::SetDefaultPolicyVersion => {
            state
                .set_default_policy_version(required(q, "PolicyArn")?, required(q, "VersionId")?)?;
        }
        A::GetAccessKeyLastUsed => {
            keys::get_access_key_last_used(
                state,
                hygiene.recorder,
                hygiene.account,
                q,
                &mut w,
                &result,
            )?;
        }
        A::GenerateCredentialReport => {
            keys::generate_credential_report(
                state,
                hygiene.recorder,
                hygiene.account,
                &mut w,
                &result,
            )?;
        }
        A::GetCredentialReport => {
            keys::get_credential_report(state, &mut w, &result)?;
        }
        A::SimulateCustomPolicy => {
            w.open(&result);
            simulate::simulate_custom(q, account_id, &mut w)?;
            w.close(&result);
        }
        A::SimulatePrincipalPolicy => {
            w.open(&result);
            simulate::simulate_principal(state, q, account_id, &mut w)?;
            w.close(&result);
        }
        A::GetContextKeysForCustomPolicy => {
            w.open(&result);
            simulate::context_keys_custom(q, &mut w)?;
            w.close(&result);
        }
        A::GetContextKeysForPrincipalPolicy => {
            w.open(&result);
            simulate::context_keys_principal(state, q, account_id, &mut w)?;
            w.close(&result);
        }
    }
    w.open("ResponseMetadata");
    w.elem("RequestId", request_id);
    w.close("ResponseMetadata");
    w.close(&format!("{name}Response"));
    Ok((crate::s3::xml_response(w.finish(), "text/xml"), elements))
}

/// An IAM request, described for authorization: the action, its parameters, the pairs it needs
/// and its condition keys.
#[derive(Debug)]
pub struct IamCall {
    /// The action.
    pub action: IamAction,
    form: Query,
    permissions: Vec<Permission>,
    context: Context,
}

impl Describe for IamCall {
    fn requirement(&self) -> Requirement {
        Requirement::Permissions(self.permissions.clone())
    }

    fn add_context(&self, context: &mut Context) {
        context.extend(self.context.clone());
    }
}

impl IamCall {
    /// What the audit trail records of the request (CloudTrail's `requestParameters`): the
    /// names and ARNs it is about, never a document or a secret.
    pub fn audit_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for name in [
            "UserName",
            "GroupName",
            "RoleName",
            "PolicyName",
            "PolicyArn",
            "VersionId",
            "AccessKeyId",
            "Status",
            "Path",
            "PermissionsBoundary",
            "PolicySourceArn",
            "MaxSessionDuration",
            "Description",
            "PathPrefix",
            "Url",
            "OpenIDConnectProviderArn",
            "ClientID",
            "NewGroupName",
            "NewUserName",
            "NewPath",
            "EntityFilter",
            "PolicyUsageFilter",
        ] {
            if let Some(v) = self.form.get(name) {
                m.insert(lower_first(name), serde_json::Value::String(v.to_owned()));
            }
        }
        m
    }
}

/// The actions for which AWS sets `iam:PermissionsBoundary`
/// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html#awsidentityandaccessmanagementiam-policy-keys):
/// the boundary asked for (CreateUser, CreateRole, Put*PermissionsBoundary) or the entity's
/// current one (the others), so "you may create users only with boundary X" can be written
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html#access_policies_boundaries-delegate).
fn permissions_boundary_key(gw: &Gateway, action: IamAction, q: &Query) -> Option<String> {
    use IamAction as A;
    let asked = || {
        q.get("PermissionsBoundary")
            .filter(|b| !b.is_empty())
            .map(str::to_owned)
    };
    // From the snapshot: describing a request reads no database.
    let current = |kind, param| -> Option<String> {
        let snap = gw.state.snapshot();
        let name = q.get(param)?;
        match kind {
            PrincipalKind::User => snap.users.get(name)?.boundary_arn.clone(),
            PrincipalKind::Role => snap.roles.get(name)?.boundary_arn.clone(),
            PrincipalKind::Group => None,
        }
    };
    match action {
        A::CreateUser
        | A::CreateRole
        | A::PutUserPermissionsBoundary
        | A::PutRolePermissionsBoundary => asked(),
        A::DeleteUserPermissionsBoundary
        | A::AttachUserPolicy
        | A::DetachUserPolicy
        | A::PutUserPolicy
        | A::DeleteUserPolicy => current(PrincipalKind::User, "UserName"),
        A::DeleteRolePermissionsBoundary
        | A::AttachRolePolicy
        | A::DetachRolePolicy
        | A::PutRolePolicy
        | A::DeleteRolePolicy => current(PrincipalKind::Role, "RoleName"),
        _ => None,
    }
}

/// The tags of the existing IAM user, role or OIDC provider `resource` names (none for anything
/// else, or an entity that does not exist).
pub fn resource_tags(gw: &Gateway, resource: &str) -> Vec<(String, String)> {
    let snapshot = gw.state.snapshot();
    if let Some(u) = snapshot.users.values().find(|u| u.arn == resource) {
        return u.tags.to_vec();
    }
    if let Some(r) = snapshot.roles.values().find(|r| r.arn == resource) {
        return r.tags.to_vec();
    }
    let account = &gw.account.record.account_id;
    snapshot
        .oidc_providers
        .values()
        .find(|p| crate::oidc::provider_arn(account, &p.provider.url) == resource)
        .map(|p| p.tags.clone())
        .unwrap_or_default()
}

/// The request with its `UserName`, `RoleName` and `GroupName` spelt as the entity they name is
/// stored: "IAM user, group, role, and policy names must be unique within the account. Names are
/// not distinguished by case" (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateUser.html),
/// so `BOB` names the user `Bob`. Done before anything else reads the request, so the ARN
/// authorization decides on, the handler and the audit record all name the entity as stored: a
/// Deny on `user/Bob` binds a request for `BOB` ([`describe`] also requires the resource as sent,
/// first). A name no entity has (CreateUser's, say) stays as sent. IAM names are ASCII (`[\w+=,.@-]+`), so ASCII case folding is the whole rule.
fn canonical_names(gw: &Gateway, mut form: Query) -> Query {
    /// The stored spelling of `asked`, when it differs from it only by case.
    fn stored<'a, V>(
        entities: &'a std::collections::HashMap<String, V>,
        asked: &str,
    ) -> Option<&'a String> {
        if entities.contains_key(asked) {
            return None;
        }
        entities.keys().find(|n| n.eq_ignore_ascii_case(asked))
    }
    let snap = gw.state.snapshot();
    for param in NAME_PARAMS {
        let Some(asked) = form.get(param) else {
            continue;
        };
        let found = match param {
            "UserName" => stored(&snap.users, asked),
            "RoleName" => stored(&snap.roles, asked),
            _ => stored(&snap.group_arns, asked),
        };
        if let Some(name) = found.cloned() {
            form.set_first(param, &name);
        }
    }
    form
}

/// The names and paths a request gives a new or renamed entity are checked against AWS's
/// patterns before authorization, as AWS validates input first: otherwise the request would be
/// decided (and its write-ahead record written) on an ARN that cannot exist (review 31, L3).
fn check_new_names(action: IamAction, form: &Query) -> Result<(), StateError> {
    use crate::state::{validate_name, validate_path};
    use IamAction as A;
    let (name_param, field, max) = match action {
        A::CreateUser => ("UserName", "userName", 64),
        A::CreateRole => ("RoleName", "roleName", 64),
        A::CreateGroup => ("GroupName", "groupName", 128),
        A::CreatePolicy => ("PolicyName", "policyName", 128),
        A::UpdateGroup => ("NewGroupName", "newGroupName", 128),
        A::UpdateUser => ("NewUserName", "newUserName", 64),
        _ => return Ok(()),
    };
    if let Some(name) = form.get(name_param) {
        validate_name(field, name, max)?;
    }
    let path_param = if matches!(action, A::UpdateGroup | A::UpdateUser) {
        "NewPath"
    } else {
        "Path"
    };
    if let Some(path) = form.get(path_param) {
        validate_path(path)?;
    }
    Ok(())
}

/// UpdateGroup's and UpdateUser's target: the entity's ARN with `NewPath` and `new_name_param`
/// in place of the current ones (`current`, the ARN with its stored path, of resource type
/// `kind`: `group` or `user`); `None` when neither is given.
fn renamed_arn(form: &Query, kind: &str, new_name_param: &str, current: &str) -> Option<String> {
    let (new_name, new_path) = (form.get(new_name_param), form.get("NewPath"));
    if new_name.is_none() && new_path.is_none() {
        return None;
    }
    let (prefix, path_and_name) = current.split_once(&format!(":{kind}"))?;
    let (path, name) = match path_and_name.rfind('/') {
        Some(i) => path_and_name.split_at(i + 1),
        None => ("/", path_and_name),
    };
    Some(format!(
        "{prefix}:{kind}{}{}",
        new_path.unwrap_or(path),
        new_name.unwrap_or(name)
    ))
}

/// The parameters that name a user, role or group ([`canonical_names`]).
const NAME_PARAMS: [&str; 3] = ["UserName", "RoleName", "GroupName"];

/// Describes a verified `iam` request: the action (unknown ones are `NotImplemented`), the
/// pairs it must be allowed and its condition keys. Creating a user or role with tags also needs
/// `iam:TagUser` / `iam:TagRole` on it, as in AWS
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags_users.html#id_tags_users_permissions),
/// and every call that sets or removes tags has `aws:RequestTag/KEY` and `aws:TagKeys`.
pub fn describe(gw: &Gateway, principal: &Principal, form: Query) -> Result<IamCall, S3Error> {
    use IamAction as A;
    let sent = form.clone();
    let form = canonical_names(gw, form);
    let name = form.get("Action").unwrap_or("");
    let Some(action) = IamAction::parse(name) else {
        return Err(S3Error::not_implemented(&format!(
            "the IAM action `{name}`"
        )));
    };
    check_new_names(action, &form)?;
    let mut main = permission(action, &form, principal, &gw.account.record.account_id)?;
    main.resource = with_entity_path(&gw.state, &main.resource);
    if action == A::GetAccessKeyLastUsed {
        main.resource = keys::last_used_resource(
            &gw.state,
            &gw.account.record,
            required(&form, "AccessKeyId")?,
        );
    }
    let mut permissions = vec![main.clone()];
    // A name sent in another case than the entity's: the request must be allowed on the
    // resource as it named it too, checked first, so that a refusal names only what the caller
    // sent and never tells a caller without rights whether (and how) such an entity exists
    // (review 22, L1). Allowed there, it is decided on the stored one as well (a Deny on
    // `user/Bob` binds a request for `BOB`).
    if NAME_PARAMS.iter().any(|p| sent.get(p) != form.get(p)) {
        let as_sent = permission(action, &sent, principal, &gw.account.record.account_id)?;
        if as_sent.resource != main.resource {
            permissions.insert(0, as_sent);
        }
    }
    let mut context = Context::new();
    if let Some(b) = permissions_boundary_key(gw, action, &form) {
        context.insert("iam:PermissionsBoundary", b);
    }
    // The target entity's tags, as AWS sets them for IAM users, roles and OIDC providers
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html#access_iam-tags_control-resources;
    // review round 4: tag-based guardrails on IAM resources did nothing).
    crate::context::add_resource_tags(&mut context, &resource_tags(gw, &main.resource));
    let tags = tags_param(&form);
    match action {
        A::CreateUser if !tags.is_empty() => {
            permissions.push(Permission::new("iam:TagUser", main.resource.clone()));
        }
        A::CreateRole if !tags.is_empty() => {
            permissions.push(Permission::new("iam:TagRole", main.resource.clone()));
        }
        A::CreateOpenIDConnectProvider if !tags.is_empty() => {
            permissions.push(Permission::new(
                "iam:TagOpenIDConnectProvider",
                main.resource.clone(),
            ));
        }
        // "To change a user group name the requester must have appropriate permissions on both
        // the source object and the target object" (API_UpdateGroup.html; API_UpdateUser.html
        // says the same of users: "to change Bob to Robert, the entity making the request must
        // have permission on Bob and Robert"): the entity as it will be named is a resource of
        // the request too.
        A::UpdateGroup | A::UpdateUser => {
            let (kind, param) = if action == A::UpdateGroup {
                ("group", "NewGroupName")
            } else {
                ("user", "NewUserName")
            };
            if let Some(target) = renamed_arn(&form, kind, param, &main.resource) {
                if target != main.resource {
                    permissions.push(Permission::new(action.iam_action(), target));
                }
            }
        }
        _ => {}
    }
    if !tags.is_empty() {
        crate::context::add_request_tags(&mut context, &tags);
    } else if matches!(
        action,
        A::UntagUser | A::UntagRole | A::UntagOpenIDConnectProvider
    ) {
        context.insert_multi("aws:TagKeys", members(&form, "TagKeys"));
    }
    Ok(IamCall {
        action,
        form,
        permissions,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GetAccessKeyLastUsed's AccessKeyId has AWS's constraints: 16 to 128 word characters
    /// (API_GetAccessKeyLastUsed.html; review 13).
    #[test]
    fn access_key_ids_are_checked_before_anything_else() {
        let ask = |id: &str| {
            let q = Query::parse(Some(&format!(
                "Action=GetAccessKeyLastUsed&AccessKeyId={id}"
            )));
            permission(
                IamAction::GetAccessKeyLastUsed,
                &q,
                &Principal::Anonymous,
                "123456789012",
            )
        };
        assert!(ask("AKIAABCDEFGHIJKLMNOP").is_ok());
        for bad in [
            "AKIASHORT",
            "AKIA%20ABCDEFGHIJKLMN",
            &"A".repeat(129),
            "AKIA%00ABCDEFGHIJKLMN",
        ] {
            assert_eq!(ask(bad).unwrap_err().code(), "ValidationError", "{bad}");
        }
    }

    #[test]
    fn actions_round_trip_and_resources() {
        for n in ["CreateUser", "ListAttachedUserPolicies", "DeleteAccessKey"] {
            assert_eq!(IamAction::parse(n).unwrap().name(), n);
        }
        assert!(IamAction::parse("CreateLoginProfile").is_none());
        assert_eq!(IamAction::CreateRole.iam_action(), "iam:CreateRole");
        let q = Query::parse(Some("Action=PutUserPolicy&UserName=alice&PolicyName=p"));
        let p = permission(
            IamAction::PutUserPolicy,
            &q,
            &Principal::Anonymous,
            "123456789012",
        )
        .unwrap();
        assert_eq!(p.action, "iam:PutUserPolicy");
        assert_eq!(p.resource, "arn:aws:iam::123456789012:user/alice");
        let q = Query::parse(Some("Action=CreateUser"));
        let e = permission(IamAction::CreateUser, &q, &Principal::Anonymous, "1").unwrap_err();
        assert_eq!(e.code(), "ValidationError");
        assert!(e.message().contains("userName"));
        // Created entities are named with their path (review round 3).
        for (action, q, want) in [
            (
                IamAction::CreateUser,
                "UserName=eve&Path=/admins/",
                "user/admins/eve",
            ),
            (
                IamAction::CreateRole,
                "RoleName=r&Path=/svc/ml/",
                "role/svc/ml/r",
            ),
            (IamAction::CreateUser, "UserName=eve", "user/eve"),
        ] {
            let p = permission(action, &Query::parse(Some(q)), &Principal::Anonymous, "1").unwrap();
            assert_eq!(p.resource, format!("arn:aws:iam::1:{want}"), "{q}");
        }
    }

    /// Resources from the service authorization reference
    /// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html):
    /// group actions are on the group, ListGroupsForUser on the user, versions on the policy.
    #[test]
    fn group_and_policy_version_actions_name_their_resources() {
        let resource = |action: IamAction, query: &str| {
            permission(
                action,
                &Query::parse(Some(query)),
                &Principal::Anonymous,
                "123456789012",
            )
            .unwrap()
            .resource
        };
        assert_eq!(
            resource(IamAction::AddUserToGroup, "GroupName=g&UserName=u"),
            "arn:aws:iam::123456789012:group/g"
        );
        assert_eq!(
            resource(IamAction::CreateGroup, "GroupName=g&Path=%2Fteam%2F"),
            "arn:aws:iam::123456789012:group/team/g"
        );
        assert_eq!(
            resource(IamAction::ListGroupsForUser, "UserName=u"),
            "arn:aws:iam::123456789012:user/u"
        );
        assert_eq!(resource(IamAction::ListGroups, ""), "*");
        let arn = "arn:aws:iam::123456789012:policy/P";
        assert_eq!(
            resource(
                IamAction::SetDefaultPolicyVersion,
                &format!("PolicyArn={arn}&VersionId=v2")
            ),
            arn
        );
        assert_eq!(
            IamAction::parse("ListAttachedGroupPolicies")
                .unwrap()
                .iam_action(),
            "iam:ListAttachedGroupPolicies"
        );
    }

    /// The simulator's resources (service authorization reference, as above): the entity whose
    /// policies are read, `*` for custom policies given in the request.
    #[test]
    fn simulator_actions_name_their_resources() {
        let permission_of = |action: &str, query: &str| {
            let action = IamAction::parse(action).unwrap();
            permission(
                action,
                &Query::parse(Some(query)),
                &Principal::Anonymous,
                "123456789012",
            )
        };
        let arn = "arn:aws:iam::123456789012:role/r";
        for action in [
            "SimulatePrincipalPolicy",
            "GetContextKeysForPrincipalPolicy",
        ] {
            let p = permission_of(action, &format!("PolicySourceArn={arn}")).unwrap();
            assert_eq!(p.resource, arn);
            assert_eq!(p.action, format!("iam:{action}"));
            assert_eq!(
                permission_of(action, "").unwrap_err().code(),
                "ValidationError"
            );
        }
        for action in ["SimulateCustomPolicy", "GetContextKeysForCustomPolicy"] {
            assert_eq!(permission_of(action, "").unwrap().resource, "*");
        }
    }

    #[test]
    fn policy_documents_are_url_encoded_like_iam() {
        assert_eq!(
            url_encode(r#"{"A": "s3:*"}"#),
            "%7B%22A%22%3A%20%22s3%3A%2A%22%7D"
        );
        assert_eq!(url_encode("a-b.c_d~"), "a-b.c_d~");
    }
}
