//! ARN operators (`ArnEquals`, `ArnLike`, `ArnNotEquals`, `ArnNotLike`): "each of the six
//! colon-delimited components of the ARN is checked separately and each can include
//! multi-character match wildcards (*) or single-character match wildcards (?)"; `ArnEquals`
//! and `ArnLike` behave the same.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN>

use super::ValueError;
use crate::pattern::ArnPattern;

/// Compiles the policy values of an ARN operator.
pub(crate) fn compile(texts: &[&str], variables: bool) -> Result<Vec<ArnPattern>, ValueError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, v)| {
            ArnPattern::new(v, variables, true).map_err(|e| ValueError {
                index,
                value: (*v).to_owned(),
                expected: format!("an ARN with six colon-separated parts or `*` ({e})"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::NoVariables;

    #[test]
    fn segments_match_separately() {
        let p = compile(&["arn:aws:sns:*:111122223333:*"], false).unwrap();
        assert!(p[0].matches_with("arn:aws:sns:eu-west-1:111122223333:topic", &NoVariables));
        assert!(!p[0].matches_with("arn:aws:sqs:eu-west-1:111122223333:topic", &NoVariables));
        assert!(compile(&["not-an-arn"], false).is_err());
    }
}
