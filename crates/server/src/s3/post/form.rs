//! A `multipart/form-data` reader for browser-form POST uploads, sans I/O: [`parse_head`] reads
//! the fields before the `file` field from a bounded buffer, and [`FileScanner`] passes the
//! file's bytes through until the closing delimiter, holding back only a delimiter's length.
//! Neither ever holds more than its caller gave it plus one delimiter, and neither panics on
//! any input (property tests below).
//!
//! The form's layout is RFC 7578's: parts separated by `--BOUNDARY`, each with headers
//! (`Content-Disposition: form-data; name="..."`, and `filename="..."` on the file), a blank
//! line, then the value. S3 takes the `file` field last and ignores what follows it
//! (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html, "file": "The file or
//! text content must be the last field in the form").

use bytes::Bytes;

/// AWS's bound on the fields before `file`: more is `MaxPostPreDataLengthExceeded`.
pub const MAX_PRE_DATA_BYTES: usize = 20 * 1024;

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// Why a form cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// The body is not well-formed `multipart/form-data`; the reason says where.
    Malformed(String),
    /// The form ended without a `file` field.
    NoFile,
    /// A field value is not UTF-8.
    NotText(String),
}

/// The fields before `file`, and where the file's bytes start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormHead {
    /// Every field before `file`, in order: (name as sent, value).
    pub fields: Vec<(String, String)>,
    /// The file part's `filename` parameter, if any.
    pub file_name: Option<String>,
    /// Offset of the file's first byte in the buffer given to [`parse_head`].
    pub data_start: usize,
}

/// What [`parse_head`] found in the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// The `file` field's headers have not arrived yet.
    NeedMore,
    /// Everything up to the file's first byte.
    Done(FormHead),
}

/// The boundary of a `multipart/form-data` content type (`boundary=...`, quoted or not).
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty() && value.len() <= MAX_BOUNDARY && value.is_ascii())
            .then(|| value.to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn malformed(why: &str) -> FormError {
    FormError::Malformed(why.to_owned())
}

/// Reads the fields of `buf` up to the `file` field's data. `NeedMore` until the file's headers
/// are complete; the caller bounds `buf` (at [`MAX_PRE_DATA_BYTES`]).
pub fn parse_head(buf: &[u8], boundary: &str) -> Result<Head, FormError> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first boundary opens the body (a preamble before it is allowed and ignored).
    let first = if buf.starts_with(dash.as_bytes()) {
        0
    } else {
        match find(buf, delimiter.as_bytes(), 0) {
            Some(i) => i + 2,
            None => return Ok(Head::NeedMore),
        }
    };
    let mut pos = first + dash.len();
    let mut fields = Vec::new();
    loop {
        // After a delimiter: `--` ends the form, CRLF starts a part.
        let Some(after) = buf.get(pos..pos + 2) else {
            return Ok(Head::NeedMore);
        };
        if after == b"--" {
            return Err(FormError::NoFile);
        }
        if after != b"\r\n" {
            return Err(malformed("a boundary is not followed by a line break"));
        }
        let headers_start = pos + 2;
        let Some(headers_end) = find(buf, b"\r\n\r\n", headers_start) else {
            return Ok(Head::NeedMore);
        };
        let raw_headers = buf.get(headers_start..headers_end).unwrap_or_default();
        let (name, file_name) = part_disposition(raw_headers)?;
        let data_start = headers_end + 4;
        if name.eq_ignore_ascii_case("file") {
            return Ok(Head::Done(FormHead {
                fields,
                file_name: Some(file_name.unwrap_or_default()),
                data_start,
            }));
        }
        let Some(end) = find(buf, delimiter.as_bytes(), data_start) else {
            return Ok(Head::NeedMore);
        };
        let value = buf.get(data_start..end).unwrap_or_default();
        let value =
            String::from_utf8(value.to_vec()).map_err(|_| FormError::NotText(name.clone()))?;
        fields.push((name, value));
        pos = end + delimiter.len();
    }
}

/// The `name` and `filename` of a part's `Content-Disposition: form-data` header.
fn part_disposition(raw: &[u8]) -> Result<(String, Option<String>), FormError> {
    let text = std::str::from_utf8(raw).map_err(|_| malformed("a part's headers are not text"))?;
    for line in text.split("\r\n") {
        let Some((header, value)) = line.split_once(':') else {
            return Err(malformed("a part header has no `:`"));
        };
        if !header.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut params = split_params(value);
        let kind = params.first().map(|(k, _)| k.trim().to_ascii_lowercase());
        if kind.as_deref() != Some("form-data") {
            return Err(malformed("a part is not `Content-Disposition: form-data`"));
        }
        let mut name = None;
        let mut file_name = None;
        for (k, v) in params.drain(1..) {
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(v),
                "filename" => file_name = Some(v),
                _ => {}
            }
        }
        let name = name.ok_or_else(|| malformed("a part has no field name"))?;
        return Ok((name, file_name));
    }
    Err(malformed("a part has no Content-Disposition header"))
}

/// `form-data; name="a;b"; filename=c` → [("form-data", ""), ("name", "a;b"), ("filename", "c")].
/// Browsers percent-encode `"` as `%22` (kept) and send `\` as it is (HTML's multipart/form-data
/// encoding), so a Windows path keeps its backslashes; a `\` before `"` or `\` escapes it, as
/// in an RFC 9110 quoted-string, for clients that escape that way.
fn split_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(c) = chars.peek().copied() {
            if c == ';' || c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut v = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.peek().copied() {
                            Some(e @ ('"' | '\\')) => {
                                v.push(e);
                                chars.next();
                            }
                            _ => v.push('\\'),
                        },
                        '"' => break,
                        c => v.push(c),
                    }
                }
                while let Some(c) = chars.peek().copied() {
                    if c == ';' {
                        break;
                    }
                    chars.next();
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ';' {
                        break;
                    }
                    v.push(c);
                    chars.next();
                }
                v = v.trim().to_owned();
            }
        }
        out.push((name.trim().to_owned(), v));
        if chars.next().is_none() {
            return out;
        }
    }
}

/// Passes the `file` field's bytes through until `\r\n--BOUNDARY`, holding back at most a
/// delimiter's length of bytes that might be its start. A chunk with no delimiter passes through
/// without being copied (a slice of it), so the file costs one search and no copy here.
#[derive(Debug)]
pub struct FileScanner {
    finder: memchr::memmem::Finder<'static>,
    held: Vec<u8>,
    found: bool,
}

impl FileScanner {
    /// A scanner for the form with this boundary.
    pub fn new(boundary: &str) -> FileScanner {
        FileScanner {
            finder: memchr::memmem::Finder::new(format!("\r\n--{boundary}").as_bytes())
                .into_owned(),
            held: Vec::new(),
            found: false,
        }
    }

    /// The delimiter's length in bytes (`\r\n--BOUNDARY`).
    pub fn delimiter_len(&self) -> usize {
        self.finder.needle().len()
    }

    /// Feeds the next bytes of the body; returns (in order) the bytes that are certainly the
    /// file's. Once the delimiter is found, [`FileScanner::found`] is true and later input is
    /// ignored.
    pub fn feed(&mut self, chunk: Bytes) -> Vec<Bytes> {
        if self.found {
            return Vec::new();
        }
        let keep = self.delimiter_len().saturating_sub(1);
        // A delimiter that starts in the held bytes ends within the chunk's first `keep` bytes.
        if !self.held.is_empty() {
            let head = chunk.len().min(keep);
            let mut bridge = std::mem::take(&mut self.held);
            let held_len = bridge.len();
            bridge.extend_from_slice(chunk.get(..head).unwrap_or_default());
            if let Some(i) = self.finder.find(&bridge) {
                self.found = true;
                bridge.truncate(i);
                return vec![Bytes::from(bridge)];
            }
            bridge.truncate(held_len);
            self.held = bridge;
        }
        if let Some(i) = self.finder.find(&chunk) {
            self.found = true;
            let held = Bytes::from(std::mem::take(&mut self.held));
            return vec![held, chunk.slice(..i)];
        }
        // Keep the last `keep` bytes of held + chunk: they may start the delimiter.
        if chunk.len() >= keep {
            let cut = chunk.len() - keep;
            let out = vec![
                Bytes::from(std::mem::take(&mut self.held)),
                chunk.slice(..cut),
            ];
            self.held = chunk.get(cut..).unwrap_or_default().to_vec();
            out
        } else {
            self.held.extend_from_slice(&chunk);
            let cut = self.held.len().saturating_sub(keep);
            let tail = self.held.split_off(cut);
            vec![Bytes::from(std::mem::replace(&mut self.held, tail))]
        }
    }

    /// Whether the file's closing delimiter has been seen.
    pub fn found(&self) -> bool {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

    fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            out.extend_from_slice(
                format!("--{B}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        out.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(file);
        out.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
        out
    }

    #[test]
    fn quoted_parameters_keep_backslashes_browsers_send_as_they_are() {
        let p = split_params(r#"form-data; name="file"; filename="C:\dir\x.txt""#);
        assert_eq!(p[2], ("filename".to_owned(), r"C:\dir\x.txt".to_owned()));
        let p = split_params(r#"form-data; name="file"; filename="a\"b\\c""#);
        assert_eq!(p[2], ("filename".to_owned(), r#"a"b\c"#.to_owned()));
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("multipart/mixed; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn the_head_holds_the_fields_before_the_file_and_where_its_bytes_start() {
        let body = form(
            &[("key", "a/${filename}"), ("x-amz-meta-k", "v;w")],
            b"hello\r\nworld",
        );
        let Head::Done(head) = parse_head(&body, B).unwrap() else {
            panic!("head incomplete")
        };
        assert_eq!(
            head.fields,
            vec![
                ("key".to_owned(), "a/${filename}".to_owned()),
                ("x-amz-meta-k".to_owned(), "v;w".to_owned())
            ]
        );
        assert_eq!(head.file_name.as_deref(), Some("a b.txt"));
        let mut scanner = FileScanner::new(B);
        let data: Vec<u8> = scanner
            .feed(Bytes::copy_from_slice(body.get(head.data_start..).unwrap()))
            .concat();
        assert!(scanner.found());
        assert_eq!(data, b"hello\r\nworld");
        // Every prefix before the file's headers end asks for more.
        for cut in 0..head.data_start - 2 {
            assert_eq!(
                parse_head(&body[..cut], B).unwrap(),
                Head::NeedMore,
                "{cut}"
            );
        }
    }

    #[test]
    fn a_form_without_a_file_or_with_broken_parts_is_refused() {
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{B}--\r\n"
        );
        assert_eq!(parse_head(body.as_bytes(), B), Err(FormError::NoFile));
        let body = format!("--{B}\r\nContent-Type: text/plain\r\n\r\nk\r\n--{B}--\r\n");
        assert!(matches!(
            parse_head(body.as_bytes(), B),
            Err(FormError::Malformed(_))
        ));
        let mut body =
            format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n").into_bytes();
        body.push(0xff);
        body.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
        assert!(parse_head(&body, B).is_err());
    }

    proptest! {
        /// Any bytes: no panic, and a `Done` head points inside the input.
        #[test]
        fn parse_head_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..600),
                                   with_prefix in any::<bool>()) {
            let mut input = if with_prefix { format!("--{B}\r\n").into_bytes() } else { Vec::new() };
            input.extend_from_slice(&buf);
            if let Ok(Head::Done(h)) = parse_head(&input, B) {
                prop_assert!(h.data_start <= input.len());
            }
        }

        /// However the body is cut into chunks, the scanner returns exactly the file's bytes
        /// and never holds more than a chunk plus a delimiter.
        #[test]
        fn the_scanner_returns_the_file_whatever_the_chunks(
            file in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'-'), any::<u8>()], 0..2000),
            cuts in proptest::collection::vec(1usize..300, 1..20),
        ) {
            let body = form(&[("key", "k")], &file);
            let Ok(Head::Done(head)) = parse_head(&body, B) else {
                return Err(TestCaseError::fail("head"));
            };
            let rest = body.get(head.data_start..).unwrap_or_default();
            let mut scanner = FileScanner::new(B);
            let mut out = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < rest.len() {
                let n = cuts[i % cuts.len()].min(rest.len() - at);
                for piece in scanner.feed(Bytes::copy_from_slice(&rest[at..at + n])) {
                    out.extend_from_slice(&piece);
                }
                prop_assert!(scanner.held.len() < n + scanner.delimiter_len());
                at += n;
                i += 1;
            }
            prop_assert!(scanner.found());
            prop_assert_eq!(out, file);
        }
    }
}
