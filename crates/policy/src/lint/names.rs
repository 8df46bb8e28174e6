//! Names against the catalogues: unknown services and actions (with a "did you mean"), unknown
//! condition keys, and condition keys that no action of their statement supports.
//!
//! keyhole catalogues the services it authorizes ([`crate::catalogue`], [`crate::s3`]). Actions
//! and keys of other AWS services are not checked (keyhole does not know their names); a service
//! prefix that is neither keyhole's nor one of [`AWS_SERVICES`] is reported as unknown.

use super::{codes, Cx, Finding};
use crate::model::{ActionRule, Statement};
use crate::s3::{self, KeyType};

/// Service prefixes of other AWS services ("Actions, resources, and condition keys for AWS
/// services", <https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html>):
/// the widely used ones, so that a policy shared with AWS is not reported for them. Their
/// actions and keys are not checked.
pub const AWS_SERVICES: &[&str] = &[
    "access-analyzer",
    "account",
    "acm",
    "acm-pca",
    "airflow",
    "amplify",
    "aoss",
    "apigateway",
    "appconfig",
    "appflow",
    "application-autoscaling",
    "appmesh",
    "apprunner",
    "appstream",
    "appsync",
    "aps",
    "athena",
    "autoscaling",
    "backup",
    "batch",
    "bedrock",
    "billing",
    "budgets",
    "ce",
    "chatbot",
    "cloud9",
    "cloudformation",
    "cloudfront",
    "cloudhsm",
    "cloudsearch",
    "cloudshell",
    "cloudtrail",
    "cloudwatch",
    "codeartifact",
    "codebuild",
    "codecommit",
    "codedeploy",
    "codeguru",
    "codepipeline",
    "codestar",
    "codestar-connections",
    "codestar-notifications",
    "cognito-identity",
    "cognito-idp",
    "cognito-sync",
    "comprehend",
    "config",
    "connect",
    "cur",
    "databrew",
    "datapipeline",
    "datasync",
    "dax",
    "detective",
    "devicefarm",
    "directconnect",
    "dlm",
    "dms",
    "ds",
    "dynamodb",
    "ebs",
    "ec2",
    "ec2messages",
    "ecr",
    "ecr-public",
    "ecs",
    "eks",
    "elasticache",
    "elasticbeanstalk",
    "elasticfilesystem",
    "elasticloadbalancing",
    "elasticmapreduce",
    "elastictranscoder",
    "emr-containers",
    "emr-serverless",
    "es",
    "events",
    "execute-api",
    "firehose",
    "fis",
    "fms",
    "forecast",
    "freetier",
    "fsx",
    "gamelift",
    "geo",
    "glacier",
    "globalaccelerator",
    "glue",
    "grafana",
    "greengrass",
    "guardduty",
    "health",
    "iam",
    "identitystore",
    "imagebuilder",
    "inspector",
    "inspector2",
    "iot",
    "iotevents",
    "iotsitewise",
    "ivs",
    "kafka",
    "kafka-cluster",
    "kendra",
    "kinesis",
    "kinesisanalytics",
    "kinesisvideo",
    "kms",
    "lakeformation",
    "lambda",
    "lex",
    "license-manager",
    "lightsail",
    "logs",
    "macie2",
    "mediaconvert",
    "medialive",
    "mediapackage",
    "mediastore",
    "memorydb",
    "mgn",
    "mobiletargeting",
    "mq",
    "neptune-db",
    "network-firewall",
    "networkmanager",
    "oam",
    "organizations",
    "outposts",
    "personalize",
    "pi",
    "pipes",
    "polly",
    "pricing",
    "qldb",
    "quicksight",
    "ram",
    "rds",
    "rds-data",
    "rds-db",
    "redshift",
    "redshift-data",
    "redshift-serverless",
    "rekognition",
    "resource-explorer-2",
    "resource-groups",
    "robomaker",
    "route53",
    "route53domains",
    "route53resolver",
    "rum",
    "s3",
    "s3-object-lambda",
    "s3-outposts",
    "s3express",
    "sagemaker",
    "savingsplans",
    "scheduler",
    "schemas",
    "sdb",
    "secretsmanager",
    "securityhub",
    "securitylake",
    "serverlessrepo",
    "servicecatalog",
    "servicediscovery",
    "servicequotas",
    "ses",
    "shield",
    "signer",
    "sms",
    "sns",
    "sqs",
    "ssm",
    "ssm-contacts",
    "ssm-incidents",
    "ssmmessages",
    "sso",
    "sso-directory",
    "sso-oauth",
    "states",
    "storagegateway",
    "sts",
    "support",
    "swf",
    "synthetics",
    "tag",
    "textract",
    "timestream",
    "transcribe",
    "transfer",
    "translate",
    "trustedadvisor",
    "vpc-lattice",
    "waf",
    "waf-regional",
    "wafv2",
    "wellarchitected",
    "workdocs",
    "workmail",
    "workspaces",
    "xray",
];

/// Global condition keys AWS documents that keyhole does not fill ("AWS global condition
/// context keys", <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>),
/// with their types. Policies may use them; in keyhole they are absent from every request.
pub const OTHER_GLOBAL_KEYS: &[(&str, KeyType)] = &[
    ("aws:AssumedRoot", KeyType::Bool),
    ("aws:CalledVia", KeyType::ArrayOfString),
    ("aws:CalledViaFirst", KeyType::String),
    ("aws:CalledViaLast", KeyType::String),
    ("aws:Ec2InstanceSourcePrivateIPv4", KeyType::Ip),
    ("aws:Ec2InstanceSourceVpc", KeyType::String),
    ("aws:FederatedProvider", KeyType::String),
    ("aws:PrincipalOrgPaths", KeyType::ArrayOfString),
    ("aws:PrincipalServiceName", KeyType::String),
    ("aws:PrincipalServiceNamesList", KeyType::ArrayOfString),
    ("aws:ResourceOrgID", KeyType::String),
    ("aws:ResourceOrgPaths", KeyType::ArrayOfString),
    ("aws:SourceOrgID", KeyType::String),
    ("aws:SourceOrgPaths", KeyType::ArrayOfString),
    ("aws:SourceVpcArn", KeyType::Arn),
    ("aws:VpcSourceIp", KeyType::Ip),
];

/// IAM and STS condition keys ("Actions, resources, and condition keys" for IAM,
/// <https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html>,
/// and for STS, <https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecuritytokenservice.html>).
pub const IAM_STS_KEYS: &[(&str, KeyType)] = &[
    ("iam:AWSServiceName", KeyType::String),
    ("iam:AssociatedResourceArn", KeyType::Arn),
    ("iam:FIDO-FIPS-140-2-certification", KeyType::String),
    ("iam:FIDO-FIPS-140-3-certification", KeyType::String),
    ("iam:FIDO-certification", KeyType::String),
    ("iam:OrganizationsPolicyId", KeyType::String),
    ("iam:PassedToService", KeyType::String),
    ("iam:PermissionsBoundary", KeyType::String),
    ("iam:PolicyARN", KeyType::Arn),
    ("iam:RegisterSecurityKey", KeyType::String),
    ("iam:ResourceTag/", KeyType::String),
    ("iam:ServiceSpecificCredentialAgeDays", KeyType::Numeric),
    ("iam:ServiceSpecificCredentialServiceName", KeyType::String),
    ("sts:AWSServiceName", KeyType::String),
    ("sts:DurationSeconds", KeyType::Numeric),
    ("sts:ExternalId", KeyType::String),
    ("sts:RoleSessionName", KeyType::String),
    ("sts:SourceIdentity", KeyType::String),
    ("sts:TransitiveTagKeys", KeyType::ArrayOfString),
];

/// The codes of this module's findings about names (what `keyhole policy validate` shows as
/// warnings).
pub const CATALOGUE_CODES: &[&str] = &[
    codes::INVALID_ACTION.code,
    codes::INVALID_SERVICE.code,
    codes::INVALID_GLOBAL_CONDITION_KEY.code,
    codes::INVALID_SERVICE_CONDITION_KEY.code,
];

/// What the catalogues say about a condition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInfo {
    /// A known key of this type.
    Known(KeyType),
    /// A key of a service or identity provider keyhole does not catalogue.
    Unchecked,
    /// A key of a catalogued service (or `aws:`) that does not exist.
    Unknown,
}

fn family_match(name: &str, key: &str) -> bool {
    if name.ends_with('/') {
        key.len() > name.len()
            && key
                .get(..name.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(name))
    } else {
        name.eq_ignore_ascii_case(key)
    }
}

/// Looks a condition key up in every catalogue the linter has.
pub fn key_info(key: &str) -> KeyInfo {
    if let Some(k) = s3::condition_key(key) {
        return KeyInfo::Known(k.kind);
    }
    if let Some((_, t)) = OTHER_GLOBAL_KEYS
        .iter()
        .chain(IAM_STS_KEYS)
        .find(|(n, _)| family_match(n, key))
    {
        return KeyInfo::Known(*t);
    }
    let Some((service, _)) = key.split_once(':') else {
        return KeyInfo::Unknown;
    };
    let service = service.to_ascii_lowercase();
    match service.as_str() {
        "aws" | "s3" | "iam" | "sts" => KeyInfo::Unknown,
        // Identity-provider keys (`saml:aud`, `token.actions.githubusercontent.com:sub`) and
        // other services' keys.
        s if s == "saml" || s.contains('.') || AWS_SERVICES.contains(&s) => KeyInfo::Unchecked,
        _ => KeyInfo::Unknown,
    }
}

/// The catalogued keys of a service prefix (`aws`, `s3`, `iam`, `sts`), for suggestions.
fn keys_of(service: &str) -> Vec<&'static str> {
    let p = format!("{service}:");
    s3::CONDITION_KEYS
        .iter()
        .map(|k| k.name)
        .chain(
            OTHER_GLOBAL_KEYS
                .iter()
                .chain(IAM_STS_KEYS)
                .map(|(n, _)| *n),
        )
        .filter(|n| {
            n.len() > p.len() && n.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(&p))
        })
        .collect()
}

/// Edit distance (insertions, deletions, substitutions, adjacent swaps), case-insensitive.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev2: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let (ai, bj) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(ai != bj);
            let mut best = (prev.get(j).copied().unwrap_or(usize::MAX) + 1)
                .min(cur.get(j - 1).copied().unwrap_or(usize::MAX) + 1)
                .min(prev.get(j - 1).copied().unwrap_or(usize::MAX) + cost);
            if i > 1 && j > 1 && ai == b.get(j - 2) && a.get(i - 2) == bj {
                best = best.min(prev2.get(j - 2).copied().unwrap_or(usize::MAX) + 1);
            }
            if let Some(c) = cur.get_mut(j) {
                *c = best;
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev.get(b.len()).copied().unwrap_or(usize::MAX)
}

/// The closest candidate, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The actions (with service prefix) of a catalogued service.
pub fn service_actions(service: &str) -> Option<Vec<String>> {
    let list: &[&str] = match service.to_ascii_lowercase().as_str() {
        "s3" => {
            return Some(
                s3::ACTIONS
                    .iter()
                    .map(|a| format!("s3:{}", a.name))
                    .collect(),
            )
        }
        "iam" => crate::catalogue::IAM_ACTIONS,
        "sts" => crate::catalogue::STS_ACTIONS,
        "keyhole" => crate::catalogue::KEYHOLE_ACTIONS,
        _ => return None,
    };
    Some(list.iter().map(|a| format!("{service}:{a}")).collect())
}

fn hint(s: Option<&str>) -> String {
    s.map(|x| format!(" Did you mean `{x}`?"))
        .unwrap_or_default()
}

/// The action patterns of a statement with `Action` (not `NotAction`).
pub(crate) fn actions(st: &Statement) -> Option<&crate::model::OneOrMore<String>> {
    match &st.action {
        ActionRule::Action(a) => Some(a),
        ActionRule::NotAction(_) => None,
    }
}

/// Runs the checks.
pub(crate) fn check(cx: &Cx<'_>, out: &mut Vec<Finding>) {
    for (i, st) in cx.statements() {
        let (element, list) = match &st.action {
            ActionRule::Action(a) => ("Action", a),
            ActionRule::NotAction(a) => ("NotAction", a),
        };
        for (j, a) in list.iter().enumerate() {
            if let Some(f) = check_action(cx, a, cx.value_path(i, element, list, j)) {
                out.push(f);
            }
        }
        for c in &st.conditions {
            let op = c.operator.to_string();
            let path = || vec![cx.condition_key_path(i, &op, &c.key)];
            if key_info(&c.key) != KeyInfo::Unknown {
                continue;
            }
            let service = c.key.split_once(':').map_or("", |(s, _)| s);
            let code = if service.eq_ignore_ascii_case("aws") {
                codes::INVALID_GLOBAL_CONDITION_KEY
            } else if ["s3", "iam", "sts"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(service))
            {
                codes::INVALID_SERVICE_CONDITION_KEY
            } else {
                codes::INVALID_SERVICE
            };
            let suggestion = if code.code == codes::INVALID_SERVICE.code {
                did_you_mean(service, AWS_SERVICES.iter().copied().chain(["aws"]))
                    .map(str::to_owned)
            } else {
                did_you_mean(&c.key, keys_of(&service.to_ascii_lowercase()))
                    .map(|k| k.trim_end_matches('/').to_owned())
            };
            let details = if code.code == codes::INVALID_SERVICE.code {
                format!(
                    "The service `{service}` of condition key `{}` does not exist.{}",
                    c.key,
                    hint(suggestion.as_deref())
                )
            } else {
                format!(
                    "The condition key `{}` does not exist; the condition compares a key no request carries.{}",
                    c.key,
                    hint(suggestion.as_deref())
                )
            };
            out.push(cx.finding(code, details, path()));
        }
        unsupported_keys(cx, i, st, out);
    }
}

fn check_action(cx: &Cx<'_>, action: &str, path: Vec<super::PathElement>) -> Option<Finding> {
    if action == "*" {
        return None;
    }
    let (service, name) = action.split_once(':')?;
    if service.contains(['*', '?']) {
        return Some(cx.finding(
            codes::WILDCARD_IN_SERVICE_NAME,
            format!("Avoid wildcards in the service name of `{action}`: it covers services you may not mean."),
            vec![path],
        ));
    }
    let lower = service.to_ascii_lowercase();
    let Some(all) = service_actions(&lower) else {
        if AWS_SERVICES.contains(&lower.as_str()) {
            return None;
        }
        let guess = did_you_mean(&lower, AWS_SERVICES.iter().copied().chain(["keyhole"]));
        return Some(cx.finding(
            codes::INVALID_SERVICE,
            format!(
                "The service `{service}` in `{action}` does not exist.{}",
                hint(guess)
            ),
            vec![path],
        ));
    };
    let p = crate::pattern::Pattern::wildcard(action, true);
    if all.iter().any(|a| p.matches(a)) {
        return None;
    }
    let guess = if name.contains(['*', '?']) {
        None
    } else {
        did_you_mean(action, all.iter().map(String::as_str))
    };
    let details = if name.contains(['*', '?']) {
        format!("The action pattern `{action}` matches no {lower} action; the statement grants nothing through it.")
    } else {
        format!("The action `{action}` does not exist.{}", hint(guess))
    };
    Some(cx.finding(codes::INVALID_ACTION, details, vec![path]))
}

/// S3-specific condition keys that the statement's actions do not support.
fn unsupported_keys(cx: &Cx<'_>, i: usize, st: &Statement, out: &mut Vec<Finding>) {
    let Some(list) = actions(st) else { return };
    // Every action the statement names, expanded; explicit (wildcard-free) ones kept apart.
    let mut expanded: Vec<&s3::Action> = Vec::new();
    let mut explicit: Vec<&str> = Vec::new();
    let mut other_service = false;
    for a in list.iter() {
        if a == "*" || a.starts_with("*:") {
            return;
        }
        let service = a.split_once(':').map_or("", |(s, _)| s);
        if !service.eq_ignore_ascii_case("s3") {
            other_service = true;
            continue;
        }
        let found = s3::expand(a);
        if !a.contains(['*', '?']) && !found.is_empty() {
            explicit.push(a);
        }
        expanded.extend(found);
    }
    for c in &st.conditions {
        let is_s3_key = c
            .key
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("s3:"));
        if !is_s3_key || s3::condition_key(&c.key).is_none() {
            continue;
        }
        let op = c.operator.to_string();
        let path = vec![cx.condition_key_path(i, &op, &c.key)];
        let supports = |a: &s3::Action| s3::action_accepts_key(a, &c.key);
        if expanded.is_empty() && !other_service {
            continue;
        }
        if !expanded.iter().any(|a| supports(a)) {
            let needed: Vec<String> = s3::ACTIONS
                .iter()
                .filter(|a| a.condition_keys.iter().any(|k| family_match(k, &c.key)))
                .take(3)
                .map(|a| format!("s3:{}", a.name))
                .collect();
            let add = if needed.is_empty() {
                String::new()
            } else {
                format!(
                    " Add {} to the statement, or move the condition to a statement that has it.",
                    needed.join(" or ")
                )
            };
            out.push(cx.finding(
                codes::MISSING_ACTION_FOR_CONDITION_KEY,
                format!(
                    "No action in this statement supports the condition key `{}`; requests never carry it, so the condition never holds as written.{add}",
                    c.key
                ),
                path,
            ));
            continue;
        }
        let unsupported: Vec<&str> = explicit
            .iter()
            .copied()
            .filter(|a| s3::action(a).is_some_and(|x| !supports(x)))
            .collect();
        if !unsupported.is_empty() {
            out.push(cx.finding(
                codes::UNSUPPORTED_ACTION_FOR_CONDITION_KEY,
                format!(
                    "The following actions: {} are not supported by the condition key `{}`. The condition will not be evaluated for these actions; move them to a statement without this condition key.",
                    unsupported.join(", "),
                    c.key
                ),
                path,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos() {
        assert_eq!(distance("GetObjct", "GetObject"), 1);
        assert_eq!(distance("prefx", "prefix"), 1);
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(
            did_you_mean("s3:GetObjct", ["s3:GetObject", "s3:PutObject"]),
            Some("s3:GetObject")
        );
        assert_eq!(did_you_mean("s3:Frobnicate", ["s3:GetObject"]), None);
    }

    #[test]
    fn key_lookup() {
        assert_eq!(key_info("s3:prefix"), KeyInfo::Known(KeyType::String));
        assert_eq!(
            key_info("aws:CalledVia"),
            KeyInfo::Known(KeyType::ArrayOfString)
        );
        assert_eq!(
            key_info("iam:ResourceTag/team"),
            KeyInfo::Known(KeyType::String)
        );
        assert_eq!(key_info("s3:prefx"), KeyInfo::Unknown);
        assert_eq!(key_info("aws:SourceIP"), KeyInfo::Known(KeyType::Ip));
        assert_eq!(key_info("aws:SorceIp"), KeyInfo::Unknown);
        assert_eq!(key_info("ec2:Vpc"), KeyInfo::Unchecked);
        assert_eq!(
            key_info("token.actions.githubusercontent.com:sub"),
            KeyInfo::Unchecked
        );
        assert_eq!(key_info("nosuchservice:key"), KeyInfo::Unknown);
        assert!(keys_of("s3").contains(&"s3:prefix"));
        for w in AWS_SERVICES.windows(2) {
            assert!(matches!(w, [a, b] if a < b), "{w:?}");
        }
    }
}
