//! Numeric condition operators (`NumericEquals`, `NumericLessThan`, ...).
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Numeric>

use crate::model::OperatorKind;

/// Parses an integer or decimal number as AWS accepts them (no `inf`/`nan`).
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `request OP policy` for the positive form of a numeric operator.
pub(crate) fn compare(kind: OperatorKind, request: f64, policy: f64) -> bool {
    match kind {
        OperatorKind::NumericEquals | OperatorKind::NumericNotEquals => request == policy,
        OperatorKind::NumericLessThan => request < policy,
        OperatorKind::NumericLessThanEquals => request <= policy,
        OperatorKind::NumericGreaterThan => request > policy,
        OperatorKind::NumericGreaterThanEquals => request >= policy,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("12abc"), None);
    }

    #[test]
    fn compares() {
        assert!(compare(OperatorKind::NumericLessThan, 1.0, 2.0));
        assert!(!compare(OperatorKind::NumericLessThan, 2.0, 2.0));
        assert!(compare(OperatorKind::NumericLessThanEquals, 2.0, 2.0));
        assert!(compare(OperatorKind::NumericGreaterThan, 3.0, 2.0));
        assert!(compare(OperatorKind::NumericGreaterThanEquals, 2.0, 2.0));
        assert!(compare(OperatorKind::NumericNotEquals, 2.0, 2.0));
    }
}
