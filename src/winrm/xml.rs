//! A small namespace-aware XML tree for reading WS-Management replies.
//!
//! Windows, pywinrm and test servers all pick their own prefixes (`s:`/`env:`, `rsp:`, `w:`…),
//! so elements and attributes are matched by namespace URI plus local name, never by prefix.
//! Replies are at most the MaxEnvelopeSize we announce (150 KiB); a tree keeps the lookups simple.
//!
//! The input comes from servers we do not control, so the parser is bounded in every direction
//! (see [`Limits`]): nesting depth, attributes and namespace declarations per element, elements in
//! all, and time. Nothing here recurses in proportion to the input: walks use an explicit stack,
//! and dropping a tree is iterative.

use std::time::Instant;

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// The bounds a document must stay within. A WinRS reply is 6 to 10 elements deep with a few
/// attributes each; the defaults leave room for provider faults and newer servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Elements open at once (below 65,535: quick-xml's namespace resolver counts levels in a
    /// `u16`, and it sees a start tag before we do).
    pub max_depth: usize,
    /// Attributes (namespace declarations included) on one start tag.
    pub max_attributes: usize,
    /// `xmlns` / `xmlns:*` declarations on one start tag.
    pub max_namespace_declarations: usize,
    /// Elements in the whole document.
    pub max_elements: usize,
}

impl Limits {
    /// The bounds for WS-Management replies.
    pub const REPLY: Limits = Limits {
        max_depth: 64,
        max_attributes: 64,
        max_namespace_declarations: 32,
        max_elements: 20_000,
    };
}

/// How many events are parsed between two looks at the clock.
const EVENTS_PER_CLOCK_CHECK: usize = 256;

/// An expanded name: namespace URI (if any) and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub ns: Option<String>,
    pub local: String,
}

impl Name {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }
}

/// An element with its attributes, children and concatenated direct text. (No `Clone`: a
/// derived one would recurse once per level.)
#[derive(Debug)]
pub(crate) struct Element {
    pub name: Name,
    pub attrs: Vec<(Name, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Drop for Element {
    /// Iterative: the default drop would recurse once per level of nesting.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut el) = pending.pop() {
            pending.append(&mut el.children);
        }
    }
}

impl Element {
    /// True if the element has this namespace URI and local name.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.name.is(ns, local)
    }

    /// Value of an unqualified attribute (the WinRS attributes `Name`, `State`, `End`… are).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n.ns.is_none() && n.local == local)
            .map(|(_, v)| v.as_str())
    }

    /// First direct child with this name.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// Follows a path of direct children.
    pub fn path(&self, steps: &[(&str, &str)]) -> Option<&Element> {
        steps
            .iter()
            .try_fold(self, |el, (ns, local)| el.child(ns, local))
    }

    /// All descendants (depth first, document order), excluding `self`.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack: Vec<&Element> = self.children.iter().rev().collect();
        while let Some(el) = stack.pop() {
            out.push(el);
            stack.extend(el.children.iter().rev());
        }
        out
    }

    /// First descendant with this name.
    pub fn find(&self, ns: &str, local: &str) -> Option<&Element> {
        self.descendants().into_iter().find(|e| e.is(ns, local))
    }

    /// All text in the subtree, in document order.
    pub fn deep_text(&self) -> String {
        let mut s = self.text.clone();
        for el in self.descendants() {
            s.push_str(&el.text);
        }
        s
    }
}

/// A parsed document.
#[derive(Debug)]
pub(crate) struct Document {
    root: Element,
}

impl Document {
    /// Parses UTF-8 XML within [`Limits::REPLY`], with no time limit (for text already bounded
    /// in size). The error is a short description for a protocol error message.
    pub fn parse(bytes: &[u8]) -> Result<Document, String> {
        Document::parse_within(bytes, &Limits::REPLY, None)
    }

    /// Parses UTF-8 XML within `limits`, giving up once `deadline` has passed.
    pub fn parse_within(
        bytes: &[u8],
        limits: &Limits,
        deadline: Option<Instant>,
    ) -> Result<Document, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("reply is not UTF-8: {e}"))?;
        let mut reader = NsReader::from_str(text);
        reader
            .resolver_mut()
            .set_max_declarations_per_element(limits.max_namespace_declarations);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        let mut elements = 0usize;
        let mut events = 0usize;
        loop {
            events += 1;
            if events.is_multiple_of(EVENTS_PER_CLOCK_CHECK)
                && let Some(deadline) = deadline
                && Instant::now() >= deadline
            {
                return Err("the command's deadline passed while the reply was being read".into());
            }
            let position = reader.buffer_position();
            let (resolved, event) = reader.read_resolved_event().map_err(|e| match e {
                quick_xml::Error::Namespace(
                    quick_xml::name::NamespaceError::TooManyDeclarations(n),
                ) => format!(
                    "an element of the reply declares more than {n} namespaces (after byte {position})"
                ),
                e => format!("malformed XML after byte {position}: {e}"),
            })?;
            let ns = match resolved {
                ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
                _ => None,
            };
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    elements += 1;
                    if elements > limits.max_elements {
                        return Err(format!(
                            "the reply has more than {} elements",
                            limits.max_elements
                        ));
                    }
                    if !is_empty && stack.len() >= limits.max_depth {
                        return Err(format!(
                            "the reply nests elements more than {} deep (after byte {position})",
                            limits.max_depth
                        ));
                    }
                    let mut attrs = Vec::new();
                    for (count, attr) in start.attributes().enumerate() {
                        if count >= limits.max_attributes {
                            return Err(format!(
                                "an element of the reply has more than {} attributes (after byte {position})",
                                limits.max_attributes
                            ));
                        }
                        let attr = attr.map_err(|e| format!("malformed attribute: {e}"))?;
                        let key = attr.key;
                        if key.as_ref().starts_with(b"xmlns") {
                            continue;
                        }
                        let (attr_ns, local) = reader.resolver().resolve_attribute(key);
                        let attr_ns = match attr_ns {
                            ResolveResult::Bound(n) => {
                                Some(String::from_utf8_lossy(n.as_ref()).into_owned())
                            }
                            _ => None,
                        };
                        let value = attr
                            .normalized_value(XmlVersion::Implicit1_0)
                            .map_err(|e| format!("malformed attribute value: {e}"))?
                            .into_owned();
                        attrs.push((
                            Name {
                                ns: attr_ns,
                                local: String::from_utf8_lossy(local.as_ref()).into_owned(),
                            },
                            value,
                        ));
                    }
                    let element = Element {
                        name: Name {
                            ns,
                            local: String::from_utf8_lossy(start.local_name().as_ref())
                                .into_owned(),
                        },
                        attrs,
                        children: Vec::new(),
                        text: String::new(),
                    };
                    if is_empty {
                        close(&mut stack, &mut root, element)?;
                    } else {
                        stack.push(element);
                    }
                }
                Event::End(_) => {
                    let element = stack.pop().ok_or("unbalanced end tag")?;
                    close(&mut stack, &mut root, element)?;
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        let s = t.decode().map_err(|e| format!("bad text: {e}"))?;
                        top.text.push_str(&s);
                    }
                }
                Event::CData(c) => {
                    if let Some(top) = stack.last_mut() {
                        let s = c.decode().map_err(|e| format!("bad CDATA: {e}"))?;
                        top.text.push_str(&s);
                    }
                }
                Event::GeneralRef(r) => {
                    if let Some(top) = stack.last_mut() {
                        let name = r.decode().map_err(|e| format!("bad reference: {e}"))?;
                        let reference = format!("&{name};");
                        let resolved = quick_xml::escape::unescape(&reference)
                            .map_err(|e| format!("unknown entity {reference}: {e}"))?;
                        top.text.push_str(&resolved);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !stack.is_empty() {
            return Err("document ends inside an element".into());
        }
        root.map(|root| Document { root })
            .ok_or_else(|| "empty document".into())
    }

    /// The document element.
    pub fn root(&self) -> &Element {
        &self.root
    }
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err("more than one document element".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_by_uri_not_prefix() {
        let doc = Document::parse(
            br#"<?xml version="1.0"?><q:Root xmlns:q="urn:a" xmlns="urn:default"><Child Name="x" q:Other="y">a &amp; b&#x41;<![CDATA[<c>]]></Child><z:Z xmlns:z="urn:a"/></q:Root>"#,
        )
        .unwrap();
        let root = doc.root();
        assert!(root.is("urn:a", "Root"));
        let child = root.child("urn:default", "Child").unwrap();
        assert_eq!(child.attr("Name"), Some("x"));
        assert_eq!(child.attr("Other"), None);
        assert_eq!(child.text, "a & bA<c>");
        assert!(root.child("urn:a", "Z").is_some());
        assert_eq!(root.find("urn:a", "Z").unwrap().name.local, "Z");
    }

    #[test]
    fn errors() {
        assert!(Document::parse(b"").is_err());
        assert!(Document::parse(b"<a><b></a>").is_err());
        assert!(Document::parse(b"<a>").is_err());
        assert!(Document::parse(b"\xff\xfe").is_err());
        assert!(Document::parse(b"<a/><b/>").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        // A million levels: the old parser's recursive drop overflowed the stack at ~50,000.
        let depth = 1_000_000;
        let mut doc = "<a>".repeat(depth);
        doc.push_str(&"</a>".repeat(depth));
        let err = Document::parse(doc.as_bytes()).unwrap_err();
        assert!(err.contains("more than 64 deep"), "{err}");
        // Within the limit, a deep tree parses, walks and drops iteratively. (quick-xml's
        // namespace resolver counts levels in a u16: a limit must stay below 65,535.)
        let limits = Limits {
            max_depth: 60_000,
            max_elements: 200_000,
            ..Limits::REPLY
        };
        let depth = 60_000;
        let mut doc = "<a>".repeat(depth);
        doc.push('x');
        doc.push_str(&"</a>".repeat(depth));
        let parsed = Document::parse_within(doc.as_bytes(), &limits, None).unwrap();
        assert_eq!(parsed.root().descendants().len(), depth - 1);
        assert_eq!(parsed.root().deep_text(), "x");
        drop(parsed);
    }

    #[test]
    fn attribute_and_namespace_floods_are_refused() {
        let attrs: String = (0..160_000).map(|i| format!(" a{i}=\"\"")).collect();
        let doc = format!("<r{attrs}/>");
        let started = Instant::now();
        let err = Document::parse(doc.as_bytes()).unwrap_err();
        assert!(err.contains("more than 64 attributes"), "{err}");
        assert!(
            started.elapsed().as_secs() < 5,
            "took {:?}",
            started.elapsed()
        );

        let decls: String = (0..100_000)
            .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
            .collect();
        let doc = format!("<r{decls}/>");
        let err = Document::parse(doc.as_bytes()).unwrap_err();
        assert!(
            err.starts_with("an element of the reply declares more than 32 namespaces"),
            "{err}"
        );

        let doc = format!("<r>{}</r>", "<e/>".repeat(30_000));
        let err = Document::parse(doc.as_bytes()).unwrap_err();
        assert!(err.contains("more than 20000 elements"), "{err}");
    }

    #[test]
    fn parsing_stops_at_the_deadline() {
        let doc = format!("<r>{}</r>", "<e/>".repeat(1_000));
        let past = Instant::now() - std::time::Duration::from_millis(1);
        let err = Document::parse_within(doc.as_bytes(), &Limits::REPLY, Some(past)).unwrap_err();
        assert!(err.contains("deadline"), "{err}");
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert!(Document::parse_within(doc.as_bytes(), &Limits::REPLY, Some(later)).is_ok());
    }
}
