//! `Bool` (and the values of `Null`): `true`/`false`, compared case-insensitively.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Boolean>

/// Reads `true`/`false` in any letter case.
pub fn parse(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse("TRUE"), Some(true));
        assert_eq!(parse("false"), Some(false));
        assert_eq!(parse("yes"), None);
    }
}
