//! `BinaryEquals`: the policy's values are base64, decoded when compiled; a request's value is
//! compared with them byte for byte as it is.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_BinaryEquals>

use base64::Engine as _;

/// Decodes standard base64.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode("!!"), None);
    }
}
