//! Which actions exist: the action catalogue of every service keyhole authorizes (besides S3,
//! whose catalogue with resources and condition keys is [`crate::s3`]).
//!
//! A typo in an action string (`iam:CreateUsr`) would make a permission no policy can ever grant;
//! the gateway's endpoint table is tested against this catalogue so that cannot ship.
//!
//! Sources: IAM and STS API operations as AWS's API references list them (the operation names of
//! IAM API version 2010-05-08 and STS API version 2011-06-15, as shipped in botocore 1.44's service
//! models), plus the permission-only actions of the Service Authorization Reference
//! (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html>:
//! `iam:PassRole`;
//! <https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecuritytokenservice.html>:
//! `sts:TagSession`, `sts:SetSourceIdentity`, `sts:SetContext`). keyhole's own service, `keyhole`,
//! is listed here as keyhole defines it.

/// IAM actions (without the `iam:` prefix).
pub const IAM_ACTIONS: &[&str] = &[
    "AcceptDelegationRequest",
    "AcquireRole",
    "AddClientIDToOpenIDConnectProvider",
    "AddRoleToInstanceProfile",
    "AddUserToGroup",
    "AssociateDelegationRequest",
    "AttachGroupPolicy",
    "AttachRolePolicy",
    "AttachUserPolicy",
    "ChangePassword",
    "CreateAccessKey",
    "CreateAccountAlias",
    "CreateDelegationRequest",
    "CreateGroup",
    "CreateInstanceProfile",
    "CreateLoginProfile",
    "CreateOpenIDConnectProvider",
    "CreatePolicy",
    "CreatePolicyVersion",
    "CreateRole",
    "CreateSAMLProvider",
    "CreateServiceLinkedRole",
    "CreateServiceSpecificCredential",
    "CreateUser",
    "CreateVirtualMFADevice",
    "DeactivateMFADevice",
    "DeleteAccessKey",
    "DeleteAccountAlias",
    "DeleteAccountPasswordPolicy",
    "DeleteGroup",
    "DeleteGroupPolicy",
    "DeleteInstanceProfile",
    "DeleteLoginProfile",
    "DeleteOpenIDConnectProvider",
    "DeletePolicy",
    "DeletePolicyVersion",
    "DeleteRole",
    "DeleteRolePermissionsBoundary",
    "DeleteRolePolicy",
    "DeleteSAMLProvider",
    "DeleteSSHPublicKey",
    "DeleteServerCertificate",
    "DeleteServiceLinkedRole",
    "DeleteServiceSpecificCredential",
    "DeleteSigningCertificate",
    "DeleteUser",
    "DeleteUserPermissionsBoundary",
    "DeleteUserPolicy",
    "DeleteVirtualMFADevice",
    "DetachGroupPolicy",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "DisableOrganizationsRootCredentialsManagement",
    "DisableOrganizationsRootSessions",
    "DisableOutboundWebIdentityFederation",
    "EnableMFADevice",
    "EnableOrganizationsRootCredentialsManagement",
    "EnableOrganizationsRootSessions",
    "EnableOutboundWebIdentityFederation",
    "GenerateCredentialReport",
    "GenerateOrganizationsAccessReport",
    "GenerateServiceLastAccessedDetails",
    "GetAccessKeyLastUsed",
    "GetAccountAuthorizationDetails",
    "GetAccountPasswordPolicy",
    "GetAccountProperties",
    "GetAccountSummary",
    "GetContextKeysForCustomPolicy",
    "GetContextKeysForPrincipalPolicy",
    "GetCredentialReport",
    "GetDelegationRequest",
    "GetGroup",
    "GetGroupPolicy",
    "GetHumanReadableSummary",
    "GetInstanceProfile",
    "GetLoginProfile",
    "GetMFADevice",
    "GetOpenIDConnectProvider",
    "GetOrganizationsAccessReport",
    "GetOutboundWebIdentityFederationInfo",
    "GetPolicy",
    "GetPolicyVersion",
    "GetRole",
    "GetRolePolicy",
    "GetRoleTemplateVersion",
    "GetSAMLProvider",
    "GetSSHPublicKey",
    "GetServerCertificate",
    "GetServiceLastAccessedDetails",
    "GetServiceLastAccessedDetailsWithEntities",
    "GetServiceLinkedRoleDeletionStatus",
    "GetUser",
    "GetUserPolicy",
    "ListAccessKeys",
    "ListAccountAliases",
    "ListAttachedGroupPolicies",
    "ListAttachedRolePolicies",
    "ListAttachedUserPolicies",
    "ListDelegationRequests",
    "ListEntitiesForPolicy",
    "ListGroupPolicies",
    "ListGroups",
    "ListGroupsForUser",
    "ListInstanceProfileTags",
    "ListInstanceProfiles",
    "ListInstanceProfilesForRole",
    "ListMFADeviceTags",
    "ListMFADevices",
    "ListOpenIDConnectProviderTags",
    "ListOpenIDConnectProviders",
    "ListOrganizationsFeatures",
    "ListPolicies",
    "ListPoliciesGrantingServiceAccess",
    "ListPolicyTags",
    "ListPolicyVersions",
    "ListRolePolicies",
    "ListRoleTags",
    "ListRoles",
    "ListSAMLProviderTags",
    "ListSAMLProviders",
    "ListSSHPublicKeys",
    "ListServerCertificateTags",
    "ListServerCertificates",
    "ListServiceSpecificCredentials",
    "ListSigningCertificates",
    "ListUserPolicies",
    "ListUserTags",
    "ListUsers",
    "ListVirtualMFADevices",
    "PassRole",
    "PutAccountProperties",
    "PutGroupPolicy",
    "PutRolePermissionsBoundary",
    "PutRolePolicy",
    "PutUserPermissionsBoundary",
    "PutUserPolicy",
    "RejectDelegationRequest",
    "RemoveClientIDFromOpenIDConnectProvider",
    "RemoveRoleFromInstanceProfile",
    "RemoveUserFromGroup",
    "ResetServiceSpecificCredential",
    "ResyncMFADevice",
    "SendDelegationToken",
    "SetDefaultPolicyVersion",
    "SetSecurityTokenServicePreferences",
    "SimulateCustomPolicy",
    "SimulatePrincipalPolicy",
    "TagInstanceProfile",
    "TagMFADevice",
    "TagOpenIDConnectProvider",
    "TagPolicy",
    "TagRole",
    "TagSAMLProvider",
    "TagServerCertificate",
    "TagUser",
    "UntagInstanceProfile",
    "UntagMFADevice",
    "UntagOpenIDConnectProvider",
    "UntagPolicy",
    "UntagRole",
    "UntagSAMLProvider",
    "UntagServerCertificate",
    "UntagUser",
    "UpdateAccessKey",
    "UpdateAccountPasswordPolicy",
    "UpdateAssumeRolePolicy",
    "UpdateDelegationRequest",
    "UpdateGroup",
    "UpdateLoginProfile",
    "UpdateOpenIDConnectProviderThumbprint",
    "UpdateRole",
    "UpdateRoleDescription",
    "UpdateSAMLProvider",
    "UpdateSSHPublicKey",
    "UpdateServerCertificate",
    "UpdateServiceSpecificCredential",
    "UpdateSigningCertificate",
    "UpdateUser",
    "UploadSSHPublicKey",
    "UploadServerCertificate",
    "UploadSigningCertificate",
];

/// STS actions (without the `sts:` prefix).
pub const STS_ACTIONS: &[&str] = &[
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
    "GetCallerIdentity",
    "GetDelegatedAccessToken",
    "GetFederationToken",
    "GetSessionToken",
    "GetWebIdentityToken",
    "SetContext",
    "SetSourceIdentity",
    "TagSession",
];

/// keyhole's own actions (without the `keyhole:` prefix): the keyhole API and the credential
/// endpoint.
pub const KEYHOLE_ACTIONS: &[&str] = &[
    "CorsPreflight",
    "CreateJob",
    "FinishJob",
    "GetAccessReport",
    "GetJob",
    "GetJobCredentials",
    "GetJobReport",
    "GetMetrics",
    "ListJobs",
    "ListUnusedAccess",
    "RevokeSession",
];

/// Whether `action` (`service:Name`, the service case-insensitive as in policies) is an action
/// of a service keyhole knows: S3 ([`crate::s3::action`]), IAM, STS or keyhole.
pub fn is_known(action: &str) -> bool {
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    let list = match service.to_ascii_lowercase().as_str() {
        "s3" => return crate::s3::action(action).is_some(),
        "iam" => IAM_ACTIONS,
        "sts" => STS_ACTIONS,
        "keyhole" => KEYHOLE_ACTIONS,
        _ => return false,
    };
    list.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Every action of every service keyhole knows, as `service:Name` (S3, IAM, STS, keyhole).
pub fn all_actions() -> impl Iterator<Item = String> {
    crate::s3::ACTIONS
        .iter()
        .map(|a| format!("s3:{}", a.name))
        .chain(IAM_ACTIONS.iter().map(|a| format!("iam:{a}")))
        .chain(STS_ACTIONS.iter().map(|a| format!("sts:{a}")))
        .chain(KEYHOLE_ACTIONS.iter().map(|a| format!("keyhole:{a}")))
}

/// The known actions a policy's action pattern covers (`s3:Get*`, `iam:*`, `*`), matched as
/// policies match them: wildcards `*` and `?`, case-insensitively
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html).
/// Actions of services keyhole does not serve cover nothing here.
pub fn expand(pattern: &str) -> Vec<String> {
    let p = crate::pattern::Pattern::wildcard(pattern, true);
    all_actions().filter(|a| p.matches(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_against_the_catalogue() {
        let gets = expand("s3:GetObject*");
        assert!(gets.contains(&"s3:GetObject".to_owned()));
        assert!(gets.contains(&"s3:GetObjectTagging".to_owned()));
        assert!(!gets.contains(&"s3:PutObject".to_owned()));
        assert_eq!(expand("STS:assumerole"), ["sts:AssumeRole"]);
        assert!(expand("ec2:*").is_empty());
        let everything = expand("*");
        assert_eq!(everything.len(), all_actions().count());
        assert!(everything.contains(&"keyhole:CreateJob".to_owned()));
        assert!(expand("iam:*").iter().all(|a| a.starts_with("iam:")));
    }

    #[test]
    fn known_actions_and_typos() {
        for a in [
            "s3:GetObject",
            "iam:CreateUser",
            "IAM:createuser",
            "iam:PassRole",
            "sts:AssumeRole",
            "sts:TagSession",
            "keyhole:CreateJob",
        ] {
            assert!(is_known(a), "{a}");
        }
        for a in [
            "s3:GetObjet",
            "iam:CreateUsr",
            "sts:AssumeRol",
            "ec2:RunInstances",
            "CreateUser",
        ] {
            assert!(!is_known(a), "{a}");
        }
        for list in [IAM_ACTIONS, STS_ACTIONS, KEYHOLE_ACTIONS] {
            assert!(
                list.windows(2).all(|w| matches!(w, [a, b] if a < b)),
                "sorted, no duplicates"
            );
        }
    }
}
