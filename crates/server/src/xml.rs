//! XML for the S3 wire format: a small escaping writer for responses and a bounded reader that
//! turns a request body into a tiny element tree.

use quick_xml::events::Event;
use quick_xml::Reader;

/// The S3 XML namespace on response documents.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// Deepest element nesting accepted in a request body (S3's request documents use 4).
const MAX_DEPTH: usize = 16;
/// Most elements accepted in a request body (1000 keys of DeleteObjects, with room to spare).
const MAX_ELEMENTS: usize = 20_000;

/// Builds an XML document with the declaration and escaped text.
#[derive(Debug)]
pub struct XmlWriter {
    out: String,
}

impl Default for XmlWriter {
    fn default() -> Self {
        XmlWriter::new()
    }
}

impl XmlWriter {
    /// A document that starts with the XML declaration.
    pub fn new() -> XmlWriter {
        XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        }
    }

    /// Opens the root element with the S3 namespace.
    pub fn root(&mut self, name: &str) {
        self.root_ns(name, S3_NS);
    }

    /// Opens the root element with the given namespace.
    pub fn root_ns(&mut self, name: &str, ns: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" xmlns=\"");
        self.out.push_str(ns);
        self.out.push_str("\">");
    }

    /// Opens an element.
    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Opens an element with attributes (values escaped).
    pub fn open_with(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attributes {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_into(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('>');
    }

    /// Closes an element.
    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Writes `<name>text</name>` with the text escaped.
    pub fn elem(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name);
    }

    /// Writes escaped text inside the current element.
    pub fn elem_text(&mut self, text: &str) {
        escape_into(&mut self.out, text);
    }

    /// Writes the element only when there is a value.
    pub fn opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.elem(name, t);
        }
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes text for element content. Characters XML 1.0 cannot carry at all (most C0 controls)
/// are written as character references so the document stays well-formed for lenient parsers;
/// clients that need exact keys use `encoding-type=url`.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            // NUL cannot be written in XML at all, not even as a reference.
            '\0' => out.push('\u{FFFD}'),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {
                out.push_str(&format!("&#{};", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// One element of a parsed request document.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    /// Local name (namespace prefix dropped).
    pub name: String,
    /// Concatenated text content of this element (not of its children).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child with this name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Why a request body is not acceptable XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed.
    #[error("{0}")]
    Syntax(String),
    /// Deeper or larger than any S3 request document.
    #[error("document exceeds {0}")]
    TooLarge(&'static str),
    /// No root element.
    #[error("document is empty")]
    Empty,
}

/// Parses a request body into an element tree, refusing DTDs and oversized documents.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge("the element limit"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooLarge("the nesting limit"));
                }
                if root.is_some() {
                    return Err(XmlError::Syntax("content after the root element".into()));
                }
                stack.push(Element {
                    name: local_name(start.local_name().as_ref())?,
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge("the element limit"));
                }
                let el = Element {
                    name: local_name(start.local_name().as_ref())?,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(XmlError::Syntax("content after the root element".into())),
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(XmlError::Syntax("unexpected end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| XmlError::Syntax(e.to_string()))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(XmlError::Syntax("text outside the root element".into())),
                }
            }
            Event::CData(t) => {
                let text = std::str::from_utf8(&t).map_err(|e| XmlError::Syntax(e.to_string()))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(text);
                }
            }
            Event::DocType(_) => return Err(XmlError::Syntax("DTDs are not accepted".into())),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn local_name(raw: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|e| XmlError::Syntax(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_escapes_and_declares() {
        let mut w = XmlWriter::new();
        w.root("R");
        w.elem("K", "a&b<c>\"'\u{1}");
        w.close("R");
        let s = w.finish();
        assert_eq!(
            s,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><R xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><K>a&amp;b&lt;c&gt;&quot;&apos;&#1;</K></R>"
        );
    }

    #[test]
    fn parses_delete_document_with_namespace() {
        let doc = br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a &amp; b</Key></Object><Object><Key>c</Key><VersionId/></Object></Delete>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Delete");
        assert_eq!(root.child_text("Quiet"), Some("true"));
        let keys: Vec<_> = root
            .children_named("Object")
            .map(|o| o.child_text("Key").unwrap().to_owned())
            .collect();
        assert_eq!(keys, vec!["a & b", "c"]);
    }

    #[test]
    fn refuses_malformed_and_hostile_documents() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a></a><b></b>").is_err());
        assert!(parse(b"<!DOCTYPE x [<!ENTITY e \"x\">]><a>&e;</a>").is_err());
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(matches!(parse(deep.as_bytes()), Err(XmlError::TooLarge(_))));
    }

    /// NUL cannot appear in XML 1.0, not even as `&#0;` (review round 4).
    #[test]
    fn nul_cannot_break_a_document() {
        let mut out = String::new();
        escape_into(&mut out, "a\0b\u{1}");
        assert_eq!(out, "a\u{FFFD}b&#1;");
    }
}
