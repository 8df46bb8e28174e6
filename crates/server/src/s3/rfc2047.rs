//! User metadata values that are not US-ASCII, as S3 carries them in headers: "Values of such
//! headers are character decoded as per RFC 2047 before storing and encoded as per RFC 2047 to
//! make them mail-safe before returning"
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html).
//!
//! A value arrives either as RFC 2047 encoded-words (`=?UTF-8?B?...?=`, `=?ISO-8859-1?Q?...?=`),
//! which are decoded, or as raw bytes outside US-ASCII, read as UTF-8 when they are valid UTF-8
//! and as ISO-8859-1 (what HTTP headers historically carried, and what Python's HTTP client
//! sends) otherwise. A value is stored as text and answered as it was when it is US-ASCII, as
//! one `=?UTF-8?B?...?=` word otherwise.

use std::borrow::Cow;

use base64::Engine as _;

/// The stored text of a metadata header value.
pub(crate) fn decode(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) if s.is_ascii() => decode_words(s).unwrap_or_else(|| s.to_owned()),
        Ok(s) => s.to_owned(),
        Err(_) => raw.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The header value of a stored metadata value.
pub(crate) fn encode(value: &str) -> Cow<'_, str> {
    if value.is_ascii() {
        Cow::Borrowed(value)
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        Cow::Owned(format!("=?UTF-8?B?{b64}?="))
    }
}

/// A value made only of encoded-words separated by whitespace, decoded; `None` when it is
/// anything else (then it is kept as sent).
fn decode_words(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut any = false;
    for word in s.split_ascii_whitespace() {
        let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
        let mut fields = inner.splitn(3, '?');
        let (charset, encoding, text) = (fields.next()?, fields.next()?, fields.next()?);
        let bytes = match encoding {
            "B" | "b" => base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
            "Q" | "q" => decode_q(text)?,
            _ => return None,
        };
        let charset = charset.split('*').next()?.to_ascii_lowercase();
        match charset.as_str() {
            "utf-8" | "us-ascii" => out.push_str(std::str::from_utf8(&bytes).ok()?),
            "iso-8859-1" | "latin1" => out.extend(bytes.iter().map(|&b| char::from(b))),
            _ => return None,
        }
        any = true;
    }
    any.then_some(out)
}

/// RFC 2047's "Q" encoding: `_` is a space, `=XX` a byte in hex.
fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_from_words_utf8_or_latin1_and_ascii_stays_as_sent() {
        assert_eq!(decode(b"plain value"), "plain value");
        assert_eq!(
            decode(b"=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="),
            "Hello World\u{e9}"
        );
        assert_eq!(
            decode(b"=?iso-8859-1?q?caf=E9_cr=E8me?="),
            "caf\u{e9} cr\u{e8}me"
        );
        assert_eq!(decode("Hello World\u{e9}".as_bytes()), "Hello World\u{e9}");
        assert_eq!(decode(b"Hello World\xe9"), "Hello World\u{e9}");
        // Not (only) encoded-words: kept exactly.
        assert_eq!(
            decode(b"=?UTF-8?B?not base64!?="),
            "=?UTF-8?B?not base64!?="
        );
        assert_eq!(decode(b"x =?UTF-8?B?QQ==?="), "x =?UTF-8?B?QQ==?=");
        assert_eq!(decode(b"=?KOI8-R?B?QQ==?="), "=?KOI8-R?B?QQ==?=");
    }

    #[test]
    fn non_ascii_values_are_answered_as_one_utf8_word() {
        assert_eq!(encode("plain"), "plain");
        assert_eq!(
            encode("Hello World\u{e9}"),
            "=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="
        );
        for v in ["\u{65e5}\u{672c}", "caf\u{e9}", "a b"] {
            assert_eq!(decode(encode(v).as_bytes()), v);
        }
    }
}
