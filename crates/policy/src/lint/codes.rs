//! Issue codes: Access Analyzer's where it has a check for the mistake, keyhole's own otherwise.
//!
//! Access Analyzer's codes are its check names in capitals with underscores ("Error – Invalid
//! action" is `INVALID_ACTION`), and their link is the check's section of "IAM Access Analyzer
//! policy check reference"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html>).
//! keyhole's own codes (for checks Access Analyzer does not have, such as a statement whose
//! actions apply to none of its resources) link to the AWS page the check rests on.

use super::FindingType;

const CHECKS: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html#access-analyzer-reference-policy-checks-";

/// Where a code's documentation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A section of the Access Analyzer check reference (the anchor after the common prefix).
    Check(&'static str),
    /// Another AWS documentation page.
    Page(&'static str),
}

/// An issue code with its class and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The code, e.g. `INVALID_ACTION`.
    pub code: &'static str,
    /// The class.
    pub finding_type: FindingType,
    /// Whether the code is Access Analyzer's (else keyhole's own).
    pub aws: bool,
    /// The page.
    pub link: Link,
}

impl Code {
    /// The `learnMoreLink`.
    pub fn link(&self) -> String {
        match self.link {
            Link::Check(anchor) => format!("{CHECKS}{anchor}"),
            Link::Page(url) => url.to_owned(),
        }
    }
}

macro_rules! aws {
    ($name:ident, $ty:ident, $anchor:literal) => {
        #[doc = concat!("Access Analyzer's `", stringify!($name), "`.")]
        pub const $name: Code = Code {
            code: stringify!($name),
            finding_type: FindingType::$ty,
            aws: true,
            link: Link::Check($anchor),
        };
    };
}

macro_rules! own {
    ($name:ident, $ty:ident, $url:literal) => {
        #[doc = concat!("keyhole's `", stringify!($name), "` (see ", $url, ").")]
        pub const $name: Code = Code {
            code: stringify!($name),
            finding_type: FindingType::$ty,
            aws: false,
            link: Link::Page($url),
        };
    };
}

// Documents keyhole refuses (the parser's errors).
aws!(JSON_SYNTAX_ERROR, Error, "error-json-syntax-error");
aws!(DATA_TYPE_MISMATCH, Error, "error-data-type-mismatch");
aws!(
    INVALID_POLICY_ELEMENT,
    Error,
    "error-invalid-policy-element"
);
aws!(INVALID_PRINCIPAL_KEY, Error, "error-invalid-principal-key");
aws!(
    INVALID_PRINCIPAL_FORMAT,
    Error,
    "error-invalid-principal-format"
);
aws!(MISSING_EFFECT, Error, "error-missing-effect");
aws!(MISSING_ACTION, Error, "error-missing-action");
aws!(MISSING_STATEMENT, Error, "error-missing-statement");
aws!(INVALID_EFFECT, Error, "error-invalid-effect");
aws!(INVALID_VERSION, Error, "error-invalid-version");
aws!(INVALID_ARN_RESOURCE, Error, "error-invalid-arn-resource");
aws!(
    INVALID_CONDITION_OPERATOR,
    Error,
    "error-invalid-condition-operator"
);
aws!(
    UNSUPPORTED_ELEMENT_COMBINATION,
    Error,
    "error-unsupported-element-combination"
);
aws!(MISSING_PRINCIPAL, Error, "error-missing-principal");
aws!(UNSUPPORTED_PRINCIPAL, Error, "error-unsupported-principal");
aws!(MISSING_RESOURCE, Error, "error-missing-resource");
own!(
    EMPTY_ARRAY,
    Error,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html"
);
own!(
    POLICY_SIZE_EXCEEDED,
    Error,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"
);

// Names against the catalogues.
aws!(INVALID_ACTION, Error, "error-invalid-action");
aws!(INVALID_SERVICE, Error, "error-invalid-service");
aws!(
    INVALID_GLOBAL_CONDITION_KEY,
    Error,
    "error-invalid-global-condition-key"
);
aws!(
    INVALID_SERVICE_CONDITION_KEY,
    Error,
    "error-invalid-service-condition-key"
);
aws!(
    UNSUPPORTED_ACTION_FOR_CONDITION_KEY,
    Error,
    "error-unsupported-action-for-condition-key"
);
aws!(
    MISSING_ACTION_FOR_CONDITION_KEY,
    Error,
    "error-missing-action-for-condition-key"
);
aws!(
    WILDCARD_IN_SERVICE_NAME,
    Suggestion,
    "suggestion-wildcard-in-service-name"
);

// Operators and values.
aws!(TYPE_MISMATCH, Warning, "general-warning-type-mismatch");
aws!(
    TYPE_MISMATCH_IP_RANGE,
    Warning,
    "general-warning-type-mismatch-ip-range"
);
aws!(
    TYPE_MISMATCH_DATE,
    Warning,
    "general-warning-type-mismatch-date"
);
aws!(
    TYPE_MISMATCH_NUMBER,
    Warning,
    "general-warning-type-mismatch-number"
);
aws!(
    TYPE_MISMATCH_BOOLEAN,
    Warning,
    "general-warning-type-mismatch-boolean"
);
aws!(
    TYPE_MISMATCH_STRING,
    Warning,
    "general-warning-type-mismatch-string"
);
aws!(
    WILDCARD_WITHOUT_LIKE_OPERATOR,
    Warning,
    "general-warning-wildcard-without-like-operator"
);
aws!(
    FORALLVALUES_WITH_SINGLE_VALUED_KEY,
    SecurityWarning,
    "security-warning-forallvalues-with-single-valued-key"
);
own!(
    IF_EXISTS_ON_ALWAYS_PRESENT_KEY,
    Warning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists"
);
own!(
    FORANYVALUE_WITH_NEGATED_OPERATOR,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html"
);
own!(
    FORANYVALUE_NEGATED_IN_DENY,
    Warning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html"
);

// Statements that can never match.
own!(
    RESOURCE_TYPE_MISMATCH,
    Error,
    "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html#amazons3-actions-as-permissions"
);

// Over-permissive grants.
aws!(
    ALLOW_WITH_NOT_PRINCIPAL,
    SecurityWarning,
    "security-warning-allow-with-not-principal"
);
aws!(
    PASS_ROLE_WITH_STAR_IN_RESOURCE,
    SecurityWarning,
    "security-warning-pass-role-with-star-in-resource"
);
aws!(
    PASS_ROLE_WITH_STAR_IN_ACTION_AND_RESOURCE,
    SecurityWarning,
    "security-warning-pass-role-with-star-in-action-and-resource"
);
aws!(
    PASS_ROLE_WITH_NOT_RESOURCE,
    SecurityWarning,
    "security-warning-pass-role-with-not-resource"
);
aws!(
    MISSING_CONDITION_KEY_FOR_OIDC_PRINCIPAL,
    SecurityWarning,
    "security-warning-missing-condition-key-for-oidc-principal"
);
aws!(
    MISSING_GITHUB_REPO_CONDITION_KEY,
    SecurityWarning,
    "security-warning-missing-github-repo-condition-key"
);
own!(
    ALLOW_WITH_NOT_ACTION,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html"
);
own!(
    ALLOW_WITH_NOT_RESOURCE,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html"
);
own!(
    ALL_ACTIONS_ALLOWED,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege"
);
own!(
    SERVICE_WILDCARD_ON_ALL_RESOURCES,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege"
);
own!(
    PUBLIC_PRINCIPAL,
    SecurityWarning,
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-policy-status"
);
own!(
    CROSS_ACCOUNT_PRINCIPAL,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies-cross-account-resource-access.html"
);
own!(
    TRUST_ANY_PRINCIPAL,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-anonymous"
);
own!(
    TRUST_WHOLE_ACCOUNT_WITHOUT_CONDITION,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-accounts"
);
own!(
    SELF_PERMISSIONS_MANAGEMENT,
    SecurityWarning,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_controlling.html#access_controlling-policies"
);

// Redundancy and style.
aws!(REDUNDANT_ACTION, Suggestion, "suggestion-redundant-action");
aws!(
    REDUNDANT_RESOURCE,
    Suggestion,
    "suggestion-redundant-resource"
);
aws!(
    REDUNDANT_STATEMENT,
    Suggestion,
    "suggestion-redundant-statement"
);
aws!(
    EMPTY_OBJECT_CONDITION,
    Suggestion,
    "suggestion-empty-object-condition"
);
aws!(MISSING_VERSION, Warning, "general-warning-missing-version");
aws!(
    UNIQUE_SIDS_RECOMMENDED,
    Warning,
    "general-warning-unique-sids-recommended"
);
own!(
    OVERLAPPING_ALLOW,
    Suggestion,
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html"
);
own!(
    MISSING_SECURE_TRANSPORT,
    Suggestion,
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html#transit"
);

/// Every code the linter emits, for the docs table and tests.
pub const ALL: &[Code] = &[
    JSON_SYNTAX_ERROR,
    DATA_TYPE_MISMATCH,
    INVALID_POLICY_ELEMENT,
    INVALID_PRINCIPAL_KEY,
    INVALID_PRINCIPAL_FORMAT,
    MISSING_EFFECT,
    MISSING_ACTION,
    MISSING_STATEMENT,
    INVALID_EFFECT,
    INVALID_VERSION,
    INVALID_ARN_RESOURCE,
    INVALID_CONDITION_OPERATOR,
    UNSUPPORTED_ELEMENT_COMBINATION,
    MISSING_PRINCIPAL,
    UNSUPPORTED_PRINCIPAL,
    MISSING_RESOURCE,
    EMPTY_ARRAY,
    POLICY_SIZE_EXCEEDED,
    INVALID_ACTION,
    INVALID_SERVICE,
    INVALID_GLOBAL_CONDITION_KEY,
    INVALID_SERVICE_CONDITION_KEY,
    UNSUPPORTED_ACTION_FOR_CONDITION_KEY,
    MISSING_ACTION_FOR_CONDITION_KEY,
    WILDCARD_IN_SERVICE_NAME,
    TYPE_MISMATCH,
    TYPE_MISMATCH_IP_RANGE,
    TYPE_MISMATCH_DATE,
    TYPE_MISMATCH_NUMBER,
    TYPE_MISMATCH_BOOLEAN,
    TYPE_MISMATCH_STRING,
    WILDCARD_WITHOUT_LIKE_OPERATOR,
    FORALLVALUES_WITH_SINGLE_VALUED_KEY,
    IF_EXISTS_ON_ALWAYS_PRESENT_KEY,
    FORANYVALUE_WITH_NEGATED_OPERATOR,
    FORANYVALUE_NEGATED_IN_DENY,
    RESOURCE_TYPE_MISMATCH,
    ALLOW_WITH_NOT_PRINCIPAL,
    PASS_ROLE_WITH_STAR_IN_RESOURCE,
    PASS_ROLE_WITH_STAR_IN_ACTION_AND_RESOURCE,
    PASS_ROLE_WITH_NOT_RESOURCE,
    MISSING_CONDITION_KEY_FOR_OIDC_PRINCIPAL,
    MISSING_GITHUB_REPO_CONDITION_KEY,
    ALLOW_WITH_NOT_ACTION,
    ALLOW_WITH_NOT_RESOURCE,
    ALL_ACTIONS_ALLOWED,
    SERVICE_WILDCARD_ON_ALL_RESOURCES,
    PUBLIC_PRINCIPAL,
    CROSS_ACCOUNT_PRINCIPAL,
    TRUST_ANY_PRINCIPAL,
    TRUST_WHOLE_ACCOUNT_WITHOUT_CONDITION,
    SELF_PERMISSIONS_MANAGEMENT,
    REDUNDANT_ACTION,
    REDUNDANT_RESOURCE,
    REDUNDANT_STATEMENT,
    EMPTY_OBJECT_CONDITION,
    MISSING_VERSION,
    UNIQUE_SIDS_RECOMMENDED,
    OVERLAPPING_ALLOW,
    MISSING_SECURE_TRANSPORT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_links_are_aws_pages() {
        for (i, c) in ALL.iter().enumerate() {
            assert!(
                ALL.iter().skip(i + 1).all(|d| d.code != c.code),
                "{}",
                c.code
            );
            assert!(c.link().starts_with("https://docs.aws.amazon.com/"));
            if let Link::Check(anchor) = c.link {
                // The anchor is the check's class and name, as the check reference spells it.
                let name = anchor
                    .split_once('-')
                    .map(|(_, n)| n)
                    .unwrap_or_default()
                    .trim_start_matches("warning-");
                assert_eq!(name.replace('-', "_").to_uppercase(), c.code);
            }
        }
    }
}
