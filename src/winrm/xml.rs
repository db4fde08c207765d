//! A small namespace-aware XML tree for reading WS-Management replies.
//!
//! Windows, pywinrm and test servers all pick their own prefixes (`s:`/`env:`, `rsp:`, `w:`…),
//! so elements and attributes are matched by namespace URI plus local name, never by prefix.
//! Replies are at most a few hundred kilobytes; a tree keeps the lookups simple.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

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

/// An element with its attributes, children and concatenated direct text.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    pub name: Name,
    pub attrs: Vec<(Name, String)>,
    pub children: Vec<Element>,
    pub text: String,
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
        fn walk<'a>(el: &'a Element, out: &mut Vec<&'a Element>) {
            for c in &el.children {
                out.push(c);
                walk(c, out);
            }
        }
        walk(self, &mut out);
        out
    }

    /// First descendant with this name.
    pub fn find(&self, ns: &str, local: &str) -> Option<&Element> {
        self.descendants().into_iter().find(|e| e.is(ns, local))
    }

    /// All text in the subtree, in document order.
    pub fn deep_text(&self) -> String {
        let mut s = self.text.clone();
        for c in &self.children {
            s.push_str(&c.deep_text());
        }
        s
    }
}

/// A parsed document.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    root: Element,
}

impl Document {
    /// Parses UTF-8 XML. The error is a short description for a protocol error message.
    pub fn parse(bytes: &[u8]) -> Result<Document, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("reply is not UTF-8: {e}"))?;
        let mut reader = NsReader::from_str(text);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let position = reader.buffer_position();
            let (resolved, event) = reader
                .read_resolved_event()
                .map_err(|e| format!("malformed XML after byte {position}: {e}"))?;
            let ns = match resolved {
                ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
                _ => None,
            };
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    let mut attrs = Vec::new();
                    for attr in start.attributes() {
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
                            .unescape_value()
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
}
