//! A located YAML tree: every node knows the line and column it came from, so that validation can
//! point at the exact spot of a problem and report all problems at once.
//!
//! Built on `saphyr-parser`'s event stream (YAML 1.2). Aliases are expanded; duplicate mapping keys
//! are kept (the caller decides what a duplicate means and reports it with both positions).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

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

enum Open {
    Seq(Vec<Node>, Span, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Span, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
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
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq(Vec::new(), here, anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map(Vec::new(), None, here, anchor))
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq(items, span, anchor)) = self.stack.pop() {
                    self.finish(
                        Node {
                            value: Value::Seq(items),
                            span,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(entries, _, span, anchor)) = self.stack.pop() {
                    self.finish(
                        Node {
                            value: Value::Map(entries),
                            span,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        span: here,
                    });
                };
                // The copy points at the alias, so messages about it show where it was used.
                let node = Node {
                    span: here,
                    ..target
                };
                self.finish(node, 0);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(items, _, _)) => items.push(node),
            Some(Open::Map(entries, pending, _, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
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
}
