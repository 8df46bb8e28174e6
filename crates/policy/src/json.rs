//! A small JSON reader that keeps byte spans for every value and object key.
//!
//! `serde_json` forgets where values came from; policy diagnostics need the JSON path and the
//! line/column of the offending value, so documents are read with this span-tracking parser first.
//! Depth and size are capped by the caller-provided [`crate::MAX_JSON_DEPTH`].

use std::fmt::Write as _;

/// A byte range in the source document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

/// A JSON value with the span it was read from.
#[derive(Debug, Clone)]
pub(crate) struct Json {
    pub(crate) kind: JsonKind,
    pub(crate) span: Span,
}

/// The JSON value itself.
#[derive(Debug, Clone)]
pub(crate) enum JsonKind {
    Null,
    Bool(bool),
    /// The number exactly as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in document order, keys with their own spans.
    Object(Vec<(String, Span, Json)>),
}

impl JsonKind {
    /// A short name of the JSON type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool(_) => "a boolean",
            JsonKind::Number(_) => "a number",
            JsonKind::String(_) => "a string",
            JsonKind::Array(_) => "an array",
            JsonKind::Object(_) => "an object",
        }
    }
}

/// Why the text is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) offset: usize,
}

struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    max_depth: usize,
}

/// Reads one JSON document (trailing whitespace allowed, nothing else).
pub(crate) fn parse(text: &str, max_depth: usize) -> Result<Json, SyntaxError> {
    let mut r = Reader {
        src: text.as_bytes(),
        pos: 0,
        max_depth,
    };
    r.skip_ws();
    let v = r.value(0)?;
    r.skip_ws();
    if r.pos != r.src.len() {
        return Err(r.err("unexpected text after the JSON document"));
    }
    Ok(v)
}

impl Reader<'_> {
    fn err(&self, message: &str) -> SyntaxError {
        SyntaxError {
            message: message.to_owned(),
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_lit(&mut self, lit: &[u8]) -> Result<(), SyntaxError> {
        if self.src.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.err("invalid literal; expected a JSON value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        if depth >= self.max_depth {
            return Err(self.err(&format!("nesting deeper than {} levels", self.max_depth)));
        }
        let start = self.pos;
        let kind = match self.peek() {
            None => return Err(self.err("unexpected end of input; expected a JSON value")),
            Some(b'n') => {
                self.expect_lit(b"null")?;
                JsonKind::Null
            }
            Some(b't') => {
                self.expect_lit(b"true")?;
                JsonKind::Bool(true)
            }
            Some(b'f') => {
                self.expect_lit(b"false")?;
                JsonKind::Bool(false)
            }
            Some(b'"') => JsonKind::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => JsonKind::Number(self.number()?),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        items.push(self.value(depth + 1)?);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.err("expected `,` or `]` in array")),
                        }
                    }
                }
                JsonKind::Array(items)
            }
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        if self.peek() != Some(b'"') {
                            return Err(self.err("expected a string key in object"));
                        }
                        let kstart = self.pos;
                        let key = self.string()?;
                        let kspan = Span {
                            offset: kstart,
                            len: self.pos - kstart,
                        };
                        self.skip_ws();
                        if self.peek() != Some(b':') {
                            return Err(self.err("expected `:` after object key"));
                        }
                        self.pos += 1;
                        self.skip_ws();
                        let v = self.value(depth + 1)?;
                        members.push((key, kspan, v));
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.err("expected `,` or `}` in object")),
                        }
                    }
                }
                JsonKind::Object(members)
            }
            Some(_) => return Err(self.err("unexpected character; expected a JSON value")),
        };
        Ok(Json {
            kind,
            span: Span {
                offset: start,
                len: self.pos - start,
            },
        })
    }

    fn number(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number: digits expected after `.`"));
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number: digits expected in exponent"));
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        let raw = self.src.get(start..self.pos).unwrap_or_default();
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid `\\u` escape: four hex digits expected")),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        // INVARIANT: called with `self.pos` at the opening quote.
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = self.src.get(run_start..self.pos).unwrap_or_default();
            // The input is a `&str`, and runs stop only at ASCII bytes, so runs are valid UTF-8.
            out.push_str(std::str::from_utf8(run).map_err(|_| self.err("invalid UTF-8"))?);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek();
                    self.pos += 1;
                    match esc {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.src.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.err("unpaired surrogate in `\\u` escape"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("unpaired surrogate in `\\u` escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(c) => out.push(c),
                                None => return Err(self.err("invalid `\\u` escape")),
                            }
                        }
                        _ => return Err(self.err("invalid escape in string")),
                    }
                }
                Some(_) => return Err(self.err("control character in string; escape it")),
            }
        }
    }
}

/// Line and column (both 1-based, column counted in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.as_bytes().get(..offset).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let col_bytes = before.get(line_start..).unwrap_or_default();
    let col = String::from_utf8_lossy(col_bytes).chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// Sorted line starts, for fast offset → line lookups of many offsets.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> u32 {
        let idx = match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        u32::try_from(idx).unwrap_or(u32::MAX)
    }
}

/// Appends a JSON string literal for `s` to `out`.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_values_with_spans() {
        let text = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\"]}";
        let v = parse(text, 8).unwrap();
        let JsonKind::Object(m) = v.kind else {
            panic!()
        };
        assert_eq!(m[0].0, "a");
        let JsonKind::Array(items) = &m[0].2.kind else {
            panic!()
        };
        assert!(matches!(&items[1].kind, JsonKind::Number(n) if n == "-2.5e3"));
        assert!(matches!(&items[4].kind, JsonKind::String(s) if s == "xé😀"));
        assert_eq!(items[0].span, Span { offset: 7, len: 1 });
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "\"\\x\"",
            "tru",
            "[1] 2",
            "\"a\nb\"",
            "1.",
        ] {
            assert!(parse(bad, 8).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn depth_is_capped() {
        let deep = "[".repeat(10) + &"]".repeat(10);
        assert!(parse(&deep, 9).is_err());
        assert!(parse(&deep, 10).is_ok());
    }

    #[test]
    fn line_and_column() {
        let t = "{\n  \"é\": x";
        assert_eq!(line_col(t, t.find('x').unwrap()), (2, 8));
        let li = LineIndex::new(t);
        assert_eq!(li.line(0), 1);
        assert_eq!(li.line(2), 2);
    }
}
