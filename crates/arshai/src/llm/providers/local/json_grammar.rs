//! An incremental JSON prefix automaton: fed the answer byte by byte, it says whether the
//! bytes so far can still be continued into JSON of the compiled [`Shapes`], and when that
//! JSON is complete. Decoding asks it, token by token, which candidates keep the answer
//! valid (see [`super::token_bytes`]).
//!
//! Bounded on purpose: at most [`MAX_WHITESPACE`] whitespace bytes in a row between tokens,
//! numbers of at most [`MAX_DIGITS`] digits in the integer and in the fraction part (3 in
//! the exponent), so a model cannot loop on padding.

use std::sync::Arc;

use super::json_schema::{NodeId, ObjectShape, Shapes, StringShape};

/// Whitespace bytes allowed in a row between JSON tokens (room for pretty-printing).
pub(crate) const MAX_WHITESPACE: usize = 16;
/// Digits allowed in each part of a number (integer, fraction, exponent).
pub(crate) const MAX_DIGITS: usize = 16;

/// Where a JSON string is in its escapes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lex {
    Plain,
    Escape,
    Hex(u8),
}

impl Lex {
    /// Takes one byte inside a string: `None` rejects it, `Some(true)` is the closing quote.
    fn feed(&mut self, byte: u8) -> Option<bool> {
        match *self {
            Lex::Plain => match byte {
                b'"' => return Some(true),
                b'\\' => *self = Lex::Escape,
                0..0x20 => return None,
                _ => {}
            },
            Lex::Escape => match byte {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => *self = Lex::Plain,
                b'u' => *self = Lex::Hex(4),
                _ => return None,
            },
            Lex::Hex(left) => {
                if !byte.is_ascii_hexdigit() {
                    return None;
                }
                *self = if left == 1 {
                    Lex::Plain
                } else {
                    Lex::Hex(left - 1)
                };
            }
        }
        Some(false)
    }
}

/// Where a number is in `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Start,
    Minus,
    Zero,
    Int(usize),
    Dot,
    Fraction(usize),
    E,
    ESign,
    Exponent(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum ObjectState {
    Open,
    Key { lex: Lex, name: Vec<u8> },
    AfterKey(NodeId),
    AfterValue,
    AfterComma,
}

#[derive(Debug, Clone, PartialEq)]
enum Frame {
    /// A value of this node is next (whitespace may come first).
    Value(NodeId),
    Object {
        node: NodeId,
        state: ObjectState,
        seen: Vec<bool>,
    },
    Array {
        node: NodeId,
        count: usize,
        open: bool,
    },
    String {
        node: NodeId,
        lex: Lex,
        content: Vec<u8>,
    },
    Number {
        state: Num,
        integer: bool,
        non_negative: bool,
    },
    Literal(&'static [u8], usize),
}

/// What a frame did with a byte.
enum Step {
    Reject,
    /// Consumed, at a place where whitespace is structural.
    Whitespace,
    Consumed,
    /// Replace this frame; the byte is taken.
    Replace(Frame),
    Push(Frame),
    /// Push this frame and give it the same byte.
    PushAgain(Frame),
    /// Replace this frame and give the new one the same byte.
    ReplaceAgain(Frame),
    Pop,
    /// This value ended before the byte: the parent takes it.
    PopAgain,
}

/// The answer so far, as a prefix of JSON of some [`Shapes`].
#[derive(Debug, Clone)]
pub(crate) struct JsonPrefix {
    shapes: Arc<Shapes>,
    stack: Vec<Frame>,
    whitespace: usize,
}

impl JsonPrefix {
    /// The empty answer, expecting a value of `shapes`' root.
    pub(crate) fn new(shapes: Arc<Shapes>) -> Self {
        let root = shapes.root;
        Self {
            shapes,
            stack: vec![Frame::Value(root)],
            whitespace: 0,
        }
    }

    /// Whether the JSON is complete (nothing may follow).
    pub(crate) fn is_complete(&self) -> bool {
        self.stack.is_empty()
    }

    /// Whether `bytes` would keep the answer a valid prefix (without taking them).
    pub(crate) fn accepts(&self, bytes: &[u8]) -> bool {
        let mut probe = self.clone();
        probe.feed_all(bytes)
    }

    /// Takes `bytes`; `false` (and a broken state) when they cannot continue the JSON.
    pub(crate) fn feed_all(&mut self, bytes: &[u8]) -> bool {
        !bytes.is_empty() && bytes.iter().all(|&byte| self.feed(byte))
    }

    fn feed(&mut self, byte: u8) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return false;
            };
            match step(&self.shapes, top, byte) {
                Step::Reject => return false,
                Step::Whitespace => {
                    self.whitespace += 1;
                    return self.whitespace <= MAX_WHITESPACE;
                }
                Step::Consumed => break,
                Step::Replace(frame) => {
                    *top = frame;
                    break;
                }
                Step::Push(frame) => {
                    self.stack.push(frame);
                    break;
                }
                Step::PushAgain(frame) => self.stack.push(frame),
                Step::ReplaceAgain(frame) => *top = frame,
                Step::Pop => {
                    self.stack.pop();
                    break;
                }
                Step::PopAgain => {
                    self.stack.pop();
                }
            }
        }
        self.whitespace = 0;
        true
    }
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t')
}

fn step(shapes: &Shapes, frame: &mut Frame, byte: u8) -> Step {
    match frame {
        Frame::Value(node) => value_start(shapes, *node, byte),
        Frame::Object { node, state, seen } => object_step(shapes, *node, state, seen, byte),
        Frame::Array { node, count, open } => {
            let Some((items, min, max)) = shapes.nodes[*node].array else {
                return Step::Reject;
            };
            match byte {
                _ if is_whitespace(byte) => Step::Whitespace,
                b']' if *count >= min => Step::Pop,
                b',' if !*open && max.is_none_or(|max| *count < max) => {
                    *count += 1;
                    Step::Push(Frame::Value(items))
                }
                _ if *open && max != Some(0) => {
                    *open = false;
                    *count = 1;
                    Step::PushAgain(Frame::Value(items))
                }
                _ => Step::Reject,
            }
        }
        Frame::String { node, lex, content } => {
            let Some(ended) = lex.feed(byte) else {
                return Step::Reject;
            };
            match &shapes.nodes[*node].string {
                Some(StringShape::OneOf(choices)) => {
                    let fits = if ended {
                        choices.iter().any(|choice| choice == content)
                    } else {
                        content.push(byte);
                        choices.iter().any(|choice| choice.starts_with(content))
                    };
                    match (fits, ended) {
                        (false, _) => Step::Reject,
                        (true, true) => Step::Pop,
                        (true, false) => Step::Consumed,
                    }
                }
                _ if ended => Step::Pop,
                _ => Step::Consumed,
            }
        }
        Frame::Number {
            state,
            integer,
            non_negative,
        } => number_step(state, *integer, *non_negative, byte),
        Frame::Literal(literal, position) => {
            if literal.get(*position) != Some(&byte) {
                return Step::Reject;
            }
            *position += 1;
            if *position == literal.len() {
                Step::Pop
            } else {
                Step::Consumed
            }
        }
    }
}

fn value_start(shapes: &Shapes, node: NodeId, byte: u8) -> Step {
    let shape = &shapes.nodes[node];
    match byte {
        _ if is_whitespace(byte) => Step::Whitespace,
        b'{' => match &shape.object {
            Some(object) => {
                let properties = match object {
                    ObjectShape::Properties(properties) => properties.len(),
                    ObjectShape::Free(_) => 0,
                };
                Step::Replace(Frame::Object {
                    node,
                    state: ObjectState::Open,
                    seen: vec![false; properties],
                })
            }
            None => Step::Reject,
        },
        b'[' if shape.array.is_some() => Step::Replace(Frame::Array {
            node,
            count: 0,
            open: true,
        }),
        b'"' if shape.string.is_some() => Step::Replace(Frame::String {
            node,
            lex: Lex::Plain,
            content: Vec::new(),
        }),
        b'-' | b'0'..=b'9' => match shape.number {
            Some((integer, non_negative)) if !(non_negative && byte == b'-') => {
                Step::ReplaceAgain(Frame::Number {
                    state: Num::Start,
                    integer,
                    non_negative,
                })
            }
            _ => Step::Reject,
        },
        b't' if shape.boolean => Step::Replace(Frame::Literal(b"true", 1)),
        b'f' if shape.boolean => Step::Replace(Frame::Literal(b"false", 1)),
        b'n' if shape.null => Step::Replace(Frame::Literal(b"null", 1)),
        _ => Step::Reject,
    }
}

fn object_step(
    shapes: &Shapes,
    node: NodeId,
    state: &mut ObjectState,
    seen: &mut [bool],
    byte: u8,
) -> Step {
    let Some(object) = &shapes.nodes[node].object else {
        return Step::Reject;
    };
    let key_left = match object {
        ObjectShape::Free(_) => true,
        ObjectShape::Properties(_) => seen.iter().any(|seen| !seen),
    };
    let may_close = match object {
        ObjectShape::Free(_) => true,
        ObjectShape::Properties(properties) => properties
            .iter()
            .zip(seen.iter())
            .all(|((_, _, required), seen)| *seen || !required),
    };
    match state {
        ObjectState::Open | ObjectState::AfterComma if is_whitespace(byte) => Step::Whitespace,
        ObjectState::AfterKey(_) | ObjectState::AfterValue if is_whitespace(byte) => {
            Step::Whitespace
        }
        ObjectState::Open | ObjectState::AfterValue if byte == b'}' && may_close => Step::Pop,
        ObjectState::AfterValue if byte == b',' && key_left => {
            *state = ObjectState::AfterComma;
            Step::Consumed
        }
        ObjectState::Open | ObjectState::AfterComma if byte == b'"' && key_left => {
            *state = ObjectState::Key {
                lex: Lex::Plain,
                name: Vec::new(),
            };
            Step::Consumed
        }
        ObjectState::Key { lex, name } => {
            let Some(ended) = lex.feed(byte) else {
                return Step::Reject;
            };
            match object {
                ObjectShape::Free(values) => {
                    if ended {
                        *state = ObjectState::AfterKey(*values);
                    }
                    Step::Consumed
                }
                ObjectShape::Properties(properties) => {
                    let unseen = properties
                        .iter()
                        .zip(seen.iter())
                        .enumerate()
                        .filter(|(_, (_, seen))| !**seen);
                    if ended {
                        let found = unseen
                            .into_iter()
                            .find(|(_, ((property, _, _), _))| property == name);
                        let Some((index, ((_, value, _), _))) = found else {
                            return Step::Reject;
                        };
                        let value = *value;
                        seen[index] = true;
                        *state = ObjectState::AfterKey(value);
                        Step::Consumed
                    } else {
                        name.push(byte);
                        let mut unseen = unseen;
                        if unseen.any(|(_, ((property, _, _), _))| property.starts_with(name)) {
                            Step::Consumed
                        } else {
                            Step::Reject
                        }
                    }
                }
            }
        }
        ObjectState::AfterKey(value) if byte == b':' => {
            let value = *value;
            *state = ObjectState::AfterValue;
            Step::Push(Frame::Value(value))
        }
        _ => Step::Reject,
    }
}

fn number_step(state: &mut Num, integer: bool, non_negative: bool, byte: u8) -> Step {
    let digit = byte.is_ascii_digit();
    let next = match (*state, byte) {
        (Num::Start, b'-') if !non_negative => Num::Minus,
        (Num::Start | Num::Minus, b'0') => Num::Zero,
        (Num::Start | Num::Minus, _) if digit => Num::Int(1),
        (Num::Int(count), _) if digit && count < MAX_DIGITS => Num::Int(count + 1),
        (Num::Zero | Num::Int(_), b'.') if !integer => Num::Dot,
        (Num::Dot, _) if digit => Num::Fraction(1),
        (Num::Fraction(count), _) if digit && count < MAX_DIGITS => Num::Fraction(count + 1),
        (Num::Zero | Num::Int(_) | Num::Fraction(_), b'e' | b'E') if !integer => Num::E,
        (Num::E, b'+' | b'-') => Num::ESign,
        (Num::E | Num::ESign, _) if digit => Num::Exponent(1),
        (Num::Exponent(count), _) if digit && count < 3 => Num::Exponent(count + 1),
        (Num::Zero | Num::Int(_) | Num::Fraction(_) | Num::Exponent(_), _)
            if !digit && !matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-') =>
        {
            return Step::PopAgain;
        }
        _ => return Step::Reject,
    };
    *state = next;
    Step::Consumed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prefix(schema: Option<serde_json::Value>) -> JsonPrefix {
        let shapes = match schema {
            Some(schema) => Shapes::compile(&schema).expect("compiles"),
            None => Shapes::any_object(),
        };
        JsonPrefix::new(Arc::new(shapes))
    }

    /// Feeds `text`; returns (accepted, complete).
    fn run(prefix: &JsonPrefix, text: &str) -> (bool, bool) {
        let mut prefix = prefix.clone();
        let accepted = prefix.feed_all(text.as_bytes());
        (accepted, prefix.is_complete())
    }

    #[test]
    fn any_object_accepts_json_objects_and_nothing_else() {
        let any = prefix(None);
        for complete in [
            r#"{}"#,
            r#"{"a": 1, "b": [true, false, null, -0.5e+3, "x\"\u00e9"], "c": {"d": {}}}"#,
            "{\n  \"a\" : \"b\"\n}",
        ] {
            assert_eq!(run(&any, complete), (true, true), "{complete}");
        }
        for partial in [r#"{"a": 1"#, r#"{"a": [1, 2"#, r#"{"a"#, "{"] {
            assert_eq!(run(&any, partial), (true, false), "{partial}");
        }
        for invalid in [
            "[1]",
            "\"x\"",
            "{,",
            r#"{"a" 1}"#,
            r#"{"a": 01}"#,
            r#"{"a": tru}"#,
            r#"{"a": [1,]"#,
            "{}}",
            "{} ",
            "{\"a\n\": 1}",
        ] {
            assert!(!run(&any, invalid).0, "{invalid} must be refused");
        }
        assert!(!run(&any, &format!("{{{}", " ".repeat(MAX_WHITESPACE + 1))).0);
        assert!(run(&any, &format!("{{{}", " ".repeat(MAX_WHITESPACE))).0);
        assert!(!run(&any, &format!("{{\"a\": {}", "1".repeat(MAX_DIGITS + 1))).0);
    }

    #[test]
    fn a_schema_allows_only_its_properties_types_and_enums() {
        let schema = prefix(Some(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0},
                "color": {"enum": ["red", "green"]},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "pet": {"type": ["object", "null"], "properties": {"kind": {"type": "boolean"}}}
            },
            "required": ["name", "age", "color"],
            "additionalProperties": false
        })));
        assert_eq!(
            run(
                &schema,
                r#"{"age": 3, "name": "Ann", "color": "red", "tags": ["a"], "pet": null}"#
            ),
            (true, true)
        );
        assert_eq!(
            run(
                &schema,
                r#"{"name":"A","age":0,"color":"green","pet":{"kind":true}}"#
            ),
            (true, true)
        );
        for invalid in [
            r#"{"nam": 1"#,
            r#"{"other""#,
            r#"{"name": 1"#,
            r#"{"name": "A", "name""#,
            r#"{"age": -1"#,
            r#"{"age": 1.5"#,
            r#"{"color": "blue"#,
            r#"{"color": "re", "#,
            r#"{"tags": []"#,
            r#"{"name": "A"}"#,
            r#"{"pet": {"kind": 1"#,
        ] {
            assert!(!run(&schema, invalid).0, "{invalid} must be refused");
        }
        assert_eq!(run(&schema, r#"{"color": "gr"#), (true, false));
    }
}
