//! The request side of a decision: who asks ([`RequestPrincipal`]) and what ([`Request`]).

use crate::context::Context;
use crate::pattern::split_arn;

/// Who makes the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestPrincipal {
    /// No signature.
    Anonymous,
    /// The account's root user.
    Root {
        /// Account id.
        account: String,
    },
    /// An IAM user.
    User {
        /// User ARN.
        arn: String,
        /// Account id.
        account: String,
    },
    /// An IAM role acting without a session ARN (as in simulations).
    Role {
        /// Role ARN.
        arn: String,
        /// Account id.
        account: String,
    },
    /// An assumed-role session.
    Session {
        /// `arn:aws:sts::ID:assumed-role/ROLE/SESSION`.
        session_arn: String,
        /// The role's ARN (`aws:PrincipalArn`).
        role_arn: String,
        /// Account id.
        account: String,
    },
    /// Anything else (service, federated, canonical user), matched by string equality.
    Other {
        /// The principal string.
        id: String,
        /// Account id, if known.
        account: Option<String>,
    },
}

/// How a federated identity provider's principal string is kept, apart from `AWS` and `Service`
/// principals: a `{"Federated": ARN}` policy value matches only a web identity caller of that
/// provider, never a principal of another type spelt the same.
pub const FEDERATED_PREFIX: &str = "Federated:";

impl RequestPrincipal {
    /// A caller federated by the identity provider `provider_arn` (AssumeRoleWithWebIdentity):
    /// matched only by `{"Federated": provider_arn}`
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-federated-web-identity).
    pub fn federated(provider_arn: &str, account: &str) -> Self {
        RequestPrincipal::Other {
            id: format!("{FEDERATED_PREFIX}{provider_arn}"),
            account: Some(account.to_owned()),
        }
    }

    /// Classifies a principal ARN. For sessions, `role_arn` (the `aws:PrincipalArn`, which keeps
    /// the role path) is used when given; otherwise it is derived without a path.
    pub fn from_arn(arn: &str, role_arn: Option<&str>) -> Self {
        match split_arn(arn) {
            Some(["arn", _, "iam", "", account, "root"]) => RequestPrincipal::Root {
                account: account.to_owned(),
            },
            Some(["arn", _, "iam", "", account, rest]) if rest.starts_with("user/") => {
                RequestPrincipal::User {
                    arn: arn.to_owned(),
                    account: account.to_owned(),
                }
            }
            Some(["arn", _, "iam", "", account, rest]) if rest.starts_with("role/") => {
                RequestPrincipal::Role {
                    arn: arn.to_owned(),
                    account: account.to_owned(),
                }
            }
            Some(["arn", partition, "sts", "", account, rest])
                if rest.starts_with("assumed-role/") =>
            {
                let role_name = rest
                    .trim_start_matches("assumed-role/")
                    .split('/')
                    .next()
                    .unwrap_or_default();
                RequestPrincipal::Session {
                    session_arn: arn.to_owned(),
                    role_arn: role_arn.map_or_else(
                        || format!("arn:{partition}:iam::{account}:role/{role_name}"),
                        str::to_owned,
                    ),
                    account: account.to_owned(),
                }
            }
            Some(["arn", _, _, _, account, _]) if !account.is_empty() => RequestPrincipal::Other {
                id: arn.to_owned(),
                account: Some(account.to_owned()),
            },
            _ => RequestPrincipal::Other {
                id: arn.to_owned(),
                account: None,
            },
        }
    }

    /// The principal's account, if it has one.
    pub fn account(&self) -> Option<&str> {
        match self {
            RequestPrincipal::Anonymous => None,
            RequestPrincipal::Root { account }
            | RequestPrincipal::User { account, .. }
            | RequestPrincipal::Role { account, .. }
            | RequestPrincipal::Session { account, .. } => Some(account),
            RequestPrincipal::Other { account, .. } => account.as_deref(),
        }
    }
}

/// An authorization request: who, what action, on which resource, with which context.
#[derive(Debug, Clone)]
pub struct Request {
    pub(super) principal: RequestPrincipal,
    action: String,
    pub(super) action_lower: String,
    pub(super) resource: String,
    resource_account: Option<String>,
    pub(super) context: Context,
    /// The unique id of the IAM entity behind the principal (`AIDA...` for a user, the role's
    /// `AROA...` for a role session), when known; principals that a stored policy bound to a
    /// unique id match only the entity with that id.
    pub(super) unique_id: Option<String>,
}

impl Request {
    /// A request. `resource_account` is the account owning the resource (S3 ARNs carry none);
    /// `None` means the principal's own account.
    pub fn new(
        principal: RequestPrincipal,
        action: &str,
        resource: &str,
        resource_account: Option<&str>,
        context: Context,
    ) -> Self {
        Self {
            principal,
            action: action.to_owned(),
            action_lower: action.to_ascii_lowercase(),
            resource: resource.to_owned(),
            resource_account: resource_account.map(str::to_owned),
            context,
            unique_id: None,
        }
    }

    /// The same request, made by the IAM entity with this unique id (`AIDA...` for a user, the
    /// role's `AROA...` for a role session). A principal ARN that a stored policy bound to a
    /// unique id (see [`crate::CompiledPolicy::compile_bound`]) matches only the entity with that
    /// id, so a user or role deleted and created again under the same name does not inherit what
    /// the policy granted its namesake, as in AWS
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids>).
    pub fn with_unique_id(mut self, id: impl Into<String>) -> Self {
        self.unique_id = Some(id.into());
        self
    }

    /// The unique id given with [`Request::with_unique_id`].
    pub fn unique_id(&self) -> Option<&str> {
        self.unique_id.as_deref()
    }

    /// The principal.
    pub fn principal(&self) -> &RequestPrincipal {
        &self.principal
    }

    /// The action as given.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The resource ARN.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Mutable context (e.g. to change `aws:CurrentTime` between decisions).
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    pub(super) fn same_account(&self) -> bool {
        match (&self.resource_account, self.principal.account()) {
            (None, _) => true,
            (Some(r), Some(p)) => r == p,
            (Some(_), None) => false,
        }
    }
}
