//! String operators (`StringEquals`, `StringNotEquals`, `...IgnoreCase`, `StringLike`,
//! `StringNotLike`): exact, ASCII-case-insensitive or `*`/`?` wildcard matching, with policy
//! variables in the values.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String>

use super::ValueError;
use crate::model::OperatorKind;
use crate::pattern::{Pattern, Syntax};

/// Compiles the policy values of a string operator.
pub(crate) fn compile(
    kind: OperatorKind,
    texts: &[&str],
    variables: bool,
) -> Result<Vec<Pattern>, ValueError> {
    let syntax = Syntax {
        wildcards: matches!(kind, OperatorKind::StringLike | OperatorKind::StringNotLike),
        variables,
        ignore_case: matches!(
            kind,
            OperatorKind::StringEqualsIgnoreCase | OperatorKind::StringNotEqualsIgnoreCase
        ),
    };
    texts
        .iter()
        .enumerate()
        .map(|(index, v)| {
            Pattern::new(v, syntax).map_err(|e| ValueError {
                index,
                value: (*v).to_owned(),
                expected: e.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_only_for_like() {
        let eq = compile(OperatorKind::StringEquals, &["a*"], true).unwrap();
        assert!(eq[0].matches("a*") && !eq[0].matches("ab"));
        let like = compile(OperatorKind::StringLike, &["a*"], true).unwrap();
        assert!(like[0].matches("ab"));
        let ic = compile(OperatorKind::StringEqualsIgnoreCase, &["MiXed"], true).unwrap();
        assert!(ic[0].matches("mixed"));
        assert_eq!(
            compile(OperatorKind::StringEquals, &["ok", "${bad"], true)
                .unwrap_err()
                .index,
            1
        );
    }
}
