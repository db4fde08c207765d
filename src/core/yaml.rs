//! A located YAML tree: every node knows the line and column it came from, so that validation can
//! point at the exact spot of a problem and report all problems at once.
//!
//! Built on `saphyr-parser`'s event stream (YAML 1.2). Aliases are expanded; duplicate mapping keys
//! are kept (the caller decides what a duplicate means and reports it with both positions).
//!
//! The input may be hostile or broken (a 400-byte "billion laughs" file expands to billions of
//! nodes), so the tree is bounded: at most [`MAX_DEPTH`] collections deep, at most
//! [`MAX_ALIASES`] aliases, and aliases may add at most [`MAX_EXPANDED_NODES`] nodes in all. The
//! check comes before an alias is copied.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

/// How deep collections may nest (an inventory is about six levels deep).
pub const MAX_DEPTH: usize = 64;
/// How many aliases a document may use.
pub const MAX_ALIASES: usize = 50_000;
/// How many nodes all aliases together may add to the tree.
pub const MAX_EXPANDED_NODES: usize = 250_000;

/// A position in a source text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
}

/// A region of source text. `len` is the number of characters to underline on `start.line`
/// (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// Where the region starts.
    pub start: Pos,
    /// How many characters to underline.
    pub len: usize,
}

impl Span {
    /// A span of `len` characters at `line:col`.
    pub fn at(line: usize, col: usize, len: usize) -> Span {
        Span {
            start: Pos { line, col },
            len: len.max(1),
        }
    }

    fn from_yaml(s: &YSpan) -> Span {
        let len = if s.end.line() == s.start.line() {
            s.end.col().saturating_sub(s.start.col())
        } else {
            1
        };
        Span::at(s.start.line(), s.start.col() + 1, len)
    }
}

/// How a scalar was written; quoted scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: may be a number, a boolean or null under the YAML 1.2 core schema.
    Plain,
    /// Single- or double-quoted, literal or folded: always a string.
    Quoted,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, with its text and how it was written.
    Scalar(String, Style),
    /// A sequence of nodes.
    Seq(Vec<Node>),
    /// A mapping, in source order (duplicate keys are kept).
    Map(Vec<(Node, Node)>),
}

/// A YAML node and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The content.
    pub value: Value,
    /// Where it was written.
    pub span: Span,
}

/// A syntax error: the text is not YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What the parser found wrong.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// The YAML 1.2 core-schema type of a scalar, for messages ("expected a string, found a number").
pub fn scalar_kind(text: &str, style: Style) -> &'static str {
    if style == Style::Quoted {
        return "a string";
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => "null",
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "a boolean",
        _ if text.parse::<i64>().is_ok() => "a number",
        _ if text.parse::<f64>().is_ok() && text.chars().any(|c| c.is_ascii_digit()) => "a number",
        _ => "a string",
    }
}

impl Node {
    /// A short description of the node's type, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(t, s) => scalar_kind(t, *s),
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// True for an explicit or implicit null (`~`, `null`, nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(t, Style::Plain) if scalar_kind(t, Style::Plain) == "null")
    }

    /// The text of a scalar that is a string under the core schema (plain words or quoted).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(t, s) if scalar_kind(t, *s) == "a string" => Some(t),
            _ => None,
        }
    }

    /// The text of any non-null scalar (numbers and booleans included), for names and keys.
    pub fn as_scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(t, _) if !self.is_null() => Some(t),
            _ => None,
        }
    }

    /// A plain boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar(t, Style::Plain) => match t.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A plain integer.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.value {
            Value::Scalar(t, Style::Plain) => t.parse().ok(),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses `text` as a single YAML document. `Ok(None)` means the document is empty (only
/// comments or whitespace).
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            message: e.info().to_string(),
            span: Span::at(e.marker().line(), e.marker().col() + 1, 1),
        })?;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        message: "more than one YAML document in the file (a second `---`); \
                                  put everything in one document"
                            .into(),
                        span: Span::from_yaml(&span),
                    });
                }
            }
            other => builder.event(other, &span)?,
        }
    }
    Ok(builder.root)
}

enum Kind {
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>, Option<Node>),
}

/// A collection being built: its content, where it started, its anchor, and how many nodes it
/// holds so far (itself included).
struct Open {
    kind: Kind,
    span: Span,
    anchor: usize,
    size: usize,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    /// Anchored nodes and their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    aliases: usize,
    expanded: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: &YSpan) -> Result<(), SyntaxError> {
        let here = Span::from_yaml(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    _ => Style::Quoted,
                };
                // `!!str 5985` forces a string; other tags are kept as plain text.
                let style = match tag.as_deref() {
                    Some(t) if t.suffix == "str" => Style::Quoted,
                    _ => style,
                };
                let node = Node {
                    value: Value::Scalar(Cow::into_owned(text), style),
                    span: here,
                };
                self.finish(node, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => self.open(Kind::Seq(Vec::new()), here, anchor)?,
            Event::MappingStart(anchor, _) => {
                self.open(Kind::Map(Vec::new(), None), here, anchor)?
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    let value = match open.kind {
                        Kind::Seq(items) => Value::Seq(items),
                        Kind::Map(entries, _) => Value::Map(entries),
                    };
                    self.finish(
                        Node {
                            value,
                            span: open.span,
                        },
                        open.anchor,
                        open.size,
                    );
                }
            }
            Event::Alias(id) => {
                let Some((target, size)) = self.anchors.get(&id) else {
                    return Err(SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        span: here,
                    });
                };
                let size = *size;
                self.aliases += 1;
                self.expanded = self.expanded.saturating_add(size);
                if self.aliases > MAX_ALIASES || self.expanded > MAX_EXPANDED_NODES {
                    return Err(SyntaxError {
                        message: format!(
                            "the aliases would expand the document past {} (at most {MAX_ALIASES} \
                             aliases adding {MAX_EXPANDED_NODES} nodes): write the values out, \
                             or use fewer aliases",
                            if self.aliases > MAX_ALIASES {
                                format!("{MAX_ALIASES} aliases")
                            } else {
                                format!("{MAX_EXPANDED_NODES} nodes")
                            }
                        ),
                        span: here,
                    });
                }
                // The copy points at the alias, so messages about it show where it was used.
                let node = Node {
                    span: here,
                    ..target.clone()
                };
                self.finish(node, 0, size);
            }
            _ => {}
        }
        Ok(())
    }

    fn open(&mut self, kind: Kind, span: Span, anchor: usize) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                message: format!("collections nest more than {MAX_DEPTH} levels deep"),
                span,
            });
        }
        self.stack.push(Open {
            kind,
            span,
            anchor,
            size: 1,
        });
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(open) => {
                open.size = open.size.saturating_add(size);
                match &mut open.kind {
                    Kind::Seq(items) => items.push(node),
                    Kind::Map(entries, pending) => match pending.take() {
                        None => *pending = Some(node),
                        Some(key) => entries.push((key, node)),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_line_and_column() {
        let doc = parse("servers:\n  hq:\n    role: upstream\n    port: 5985\n")
            .unwrap()
            .unwrap();
        let servers = &doc.as_map().unwrap()[0];
        assert_eq!(servers.0.span, Span::at(1, 1, 7));
        let hq = &servers.1.as_map().unwrap()[0];
        assert_eq!(hq.0.as_str(), Some("hq"));
        assert_eq!(hq.0.span.start, Pos { line: 2, col: 3 });
        let role = &hq.1.as_map().unwrap()[0];
        assert_eq!(role.1.as_str(), Some("upstream"));
        assert_eq!(role.1.span, Span::at(3, 11, 8));
        let port = &hq.1.as_map().unwrap()[1];
        assert_eq!(port.1.as_i64(), Some(5985));
        assert_eq!(port.1.kind(), "a number");
    }

    #[test]
    fn quoted_scalars_are_strings_and_tags_force_strings() {
        let doc = parse("a: '5985'\nb: !!str true\nc: true\nd: ~\ne:\n")
            .unwrap()
            .unwrap();
        let m = doc.as_map().unwrap();
        assert_eq!(m[0].1.as_str(), Some("5985"));
        assert_eq!(m[1].1.as_str(), Some("true"));
        assert_eq!(m[2].1.as_bool(), Some(true));
        assert!(m[3].1.is_null());
        assert!(m[4].1.is_null());
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_caller() {
        let doc = parse("a: 1\na: 2\n").unwrap().unwrap();
        assert_eq!(doc.as_map().unwrap().len(), 2);
    }

    #[test]
    fn aliases_expand_and_point_at_the_use() {
        let doc = parse("x: &w {port: 1}\ny: *w\n").unwrap().unwrap();
        let m = doc.as_map().unwrap();
        assert_eq!(m[1].1.as_map().unwrap()[0].1.as_i64(), Some(1));
        assert_eq!(m[1].1.span.start.line, 2);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.span.start.line >= 1, "{e:?}");
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("more than one"), "{e:?}");
        assert_eq!(e.span.start.line, 2);
    }

    #[test]
    fn empty_documents_are_none() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn alias_bombs_are_refused_before_they_expand() {
        // "Billion laughs": nine levels of nine aliases, 382 bytes, 9^9 nodes expanded.
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let (prev, name) = (w[0], w[1]);
            text.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("past 250000 nodes"), "{e:?}");
        assert!(e.span.start.line >= 5, "{e:?}");
        // Many small aliases are fine, too many are not.
        let ok = format!("x: &x 1\ny: [{}]\n", vec!["*x"; 1000].join(","));
        assert!(parse(&ok).is_ok());
        let many = format!("x: &x 1\ny: [{}]\n", vec!["*x"; MAX_ALIASES + 1].join(","));
        assert!(parse(&many).unwrap_err().message.contains("50000 aliases"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        // saphyr's flow level is a u8 and stops at 255 itself; block nesting is ours to stop.
        assert!(parse(&text).is_err());
        let block: String = (0..100)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect();
        let e = parse(&block).unwrap_err();
        assert!(e.message.contains("more than 64 levels deep"), "{e:?}");
        let fine: String = (0..10)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect();
        assert!(parse(&fine).is_ok());
    }
}
