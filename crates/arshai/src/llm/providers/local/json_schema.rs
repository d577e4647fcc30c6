//! A JSON Schema (the common subset) compiled to the shapes [`super::json_grammar`] enforces.
//!
//! Supported: `type` (one name or a list), `properties` / `required` /
//! `additionalProperties`, `items`, `minItems` / `maxItems`, string `enum` / `const`,
//! `integer` / `number` (with `minimum: 0`), `boolean`, `null`, `anyOf` of alternatives of
//! different kinds (two strings or two numbers merge), `oneOf` of alternatives no value
//! matches twice (schemars' documented enum variants), a one-element `allOf`, local `$ref`s
//! (`#/$defs/…`, `#/definitions/…`, not recursive) and the annotation keywords (`title`,
//! `description`, …). Anything else is refused with the keyword named, never ignored.
//!
//! An object only ever gets its declared properties (a valid instance whatever
//! `additionalProperties` says); one with no `properties` gets any keys, their values
//! following `additionalProperties` when it is a schema.

use serde_json::{Map, Value};

/// The index of a [`Node`] in a [`Shapes`] arena.
pub(crate) type NodeId = usize;

/// The node that accepts any JSON value.
pub(crate) const ANY: NodeId = 0;

/// What a string may hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StringShape {
    /// Any string.
    Free,
    /// One of these contents, as JSON-escaped bytes between the quotes.
    OneOf(Vec<Vec<u8>>),
}

/// What an object may hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ObjectShape {
    /// Any keys, each value of this node.
    Free(NodeId),
    /// Only these properties (JSON-escaped name bytes, value node, required), each at most
    /// once, in any order.
    Properties(Vec<(Vec<u8>, NodeId, bool)>),
}

/// The values one schema allows: a set of kinds, each with its own constraints.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Node {
    /// Strings, when allowed.
    pub(crate) string: Option<StringShape>,
    /// Numbers, when allowed: `(integer only, non-negative only)`.
    pub(crate) number: Option<(bool, bool)>,
    /// `true` / `false`.
    pub(crate) boolean: bool,
    /// `null`.
    pub(crate) null: bool,
    /// Objects, when allowed.
    pub(crate) object: Option<ObjectShape>,
    /// Arrays, when allowed: `(items node, min items, max items)`.
    pub(crate) array: Option<(NodeId, usize, Option<usize>)>,
}

/// A compiled schema: every node, the root's id.
#[derive(Debug, Clone)]
pub(crate) struct Shapes {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
}

/// A schema feature this compiler does not enforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the local model cannot enforce {0} in a JSON schema")]
pub(crate) struct UnsupportedSchema(pub(crate) String);

/// Keywords that describe without constraining.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Integer and float `format`s (sizes): generated numbers are not range-checked.
const NUMBER_FORMATS: &[&str] = &[
    "int8", "int16", "int32", "int64", "int", "uint8", "uint16", "uint32", "uint64", "uint",
    "float", "double",
];

/// `$ref`s followed deeper than this are taken as recursive.
const MAX_REF_DEPTH: usize = 16;

impl Shapes {
    /// Any JSON object (`response_format: json_object`).
    pub(crate) fn any_object() -> Self {
        let mut nodes = vec![any_node()];
        nodes.push(Node {
            object: Some(ObjectShape::Free(ANY)),
            ..Node::default()
        });
        Self { nodes, root: 1 }
    }

    /// Compiles `schema`, whose root must be an object.
    pub(crate) fn compile(schema: &Value) -> Result<Self, UnsupportedSchema> {
        let mut compiler = Compiler {
            root: schema,
            nodes: vec![any_node()],
        };
        let root = compiler.compile(schema, 0)?;
        let node = &compiler.nodes[root];
        let only_object = node.object.is_some()
            && node.string.is_none()
            && node.number.is_none()
            && !node.boolean
            && !node.null
            && node.array.is_none();
        if !only_object {
            return Err(UnsupportedSchema(
                "a root that is not `type: object`".to_owned(),
            ));
        }
        Ok(Self {
            nodes: compiler.nodes,
            root,
        })
    }
}

fn any_node() -> Node {
    Node {
        string: Some(StringShape::Free),
        number: Some((false, false)),
        boolean: true,
        null: true,
        object: Some(ObjectShape::Free(ANY)),
        array: Some((ANY, 0, None)),
    }
}

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
}

fn unsupported(what: impl Into<String>) -> UnsupportedSchema {
    UnsupportedSchema(what.into())
}

/// JSON-escaped bytes of `text`, without the quotes.
fn escaped(text: &str) -> Vec<u8> {
    let quoted = Value::String(text.to_owned()).to_string().into_bytes();
    quoted[1..quoted.len() - 1].to_vec()
}

impl<'a> Compiler<'a> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn compile(&mut self, schema: &'a Value, depth: usize) -> Result<NodeId, UnsupportedSchema> {
        let map = match schema {
            Value::Bool(true) => return Ok(ANY),
            Value::Object(map) => map,
            _ => return Err(unsupported("a schema that is not an object or `true`")),
        };
        if let Some(reference) = map.get("$ref") {
            if map
                .keys()
                .any(|key| key != "$ref" && !ANNOTATIONS.contains(&key.as_str()))
            {
                return Err(unsupported("`$ref` beside other constraints"));
            }
            return self.compile(self.resolve(reference, depth)?, depth + 1);
        }
        if let Some(all) = map.get("allOf") {
            match all.as_array().map(Vec::as_slice) {
                Some([only]) if map.len() == 1 => return self.compile(only, depth + 1),
                _ => return Err(unsupported("`allOf` (other than one schema alone)")),
            }
        }
        for key in map.keys() {
            let known = ANNOTATIONS.contains(&key.as_str())
                || matches!(
                    key.as_str(),
                    "type"
                        | "enum"
                        | "const"
                        | "anyOf"
                        | "oneOf"
                        | "properties"
                        | "required"
                        | "additionalProperties"
                        | "items"
                        | "minItems"
                        | "maxItems"
                        | "minimum"
                        | "format"
                );
            if !known {
                return Err(unsupported(format!("`{key}`")));
            }
        }
        let union = ["anyOf", "oneOf"]
            .into_iter()
            .find_map(|keyword| Some((keyword, map.get(keyword)?)));
        if let Some((keyword, alternatives)) = union {
            if ["type", "enum", "const", "anyOf", "oneOf"]
                .iter()
                .any(|other| *other != keyword && map.contains_key(*other))
            {
                return Err(unsupported(format!(
                    "`{keyword}` beside `type`, `enum`, `const` or another union"
                )));
            }
            let alternatives = alternatives
                .as_array()
                .filter(|list| !list.is_empty())
                .ok_or_else(|| {
                    unsupported(format!("a `{keyword}` that is not a non-empty list"))
                })?;
            let mut merged = Node::default();
            for alternative in alternatives {
                let id = self.compile(alternative, depth + 1)?;
                let node = self.nodes[id].clone();
                // `oneOf` means exactly one: only alternatives that cannot both match.
                if keyword == "oneOf" && overlap(&merged, &node) {
                    return Err(unsupported(
                        "`oneOf` with alternatives a value could match twice",
                    ));
                }
                merged = merge(merged, node)?;
            }
            return Ok(self.push(merged));
        }
        let mut node = Node::default();
        if let Some(values) = map.get("enum").or(map.get("const")) {
            let values = match (map.contains_key("const"), values) {
                (true, value) => vec![value.clone()],
                (false, Value::Array(list)) => list.clone(),
                _ => return Err(unsupported("an `enum` that is not a list")),
            };
            let mut strings = Vec::new();
            for value in values {
                match value {
                    Value::String(text) => strings.push(escaped(&text)),
                    Value::Null => node.null = true,
                    _ => return Err(unsupported("`enum` / `const` values other than strings")),
                }
            }
            if !strings.is_empty() {
                node.string = Some(StringShape::OneOf(strings));
            } else if !node.null {
                return Err(unsupported("an empty `enum`"));
            }
            if let Some(types) = map.get("type") {
                let names = type_names(types)?;
                if node.string.is_some() && !names.contains(&"string") {
                    return Err(unsupported("an `enum` of strings on a non-string `type`"));
                }
                node.null &= names.contains(&"null");
            }
            return Ok(self.push(node));
        }
        let names = match map.get("type") {
            Some(types) => type_names(types)?,
            None if map.contains_key("properties") || map.contains_key("additionalProperties") => {
                vec!["object"]
            }
            None if map.contains_key("items") => vec!["array"],
            None if map.len()
                == map
                    .keys()
                    .filter(|k| ANNOTATIONS.contains(&k.as_str()))
                    .count() =>
            {
                return Ok(ANY);
            }
            None => return Err(unsupported("a schema without `type`")),
        };
        if let Some(format) = map.get("format") {
            let numeric = format
                .as_str()
                .is_some_and(|format| NUMBER_FORMATS.contains(&format));
            if !numeric || names.contains(&"string") {
                return Err(unsupported(format!("`format: {format}`")));
            }
        }
        let non_negative = match map.get("minimum") {
            None => false,
            Some(minimum) if minimum.as_f64() == Some(0.0) => true,
            Some(minimum) => return Err(unsupported(format!("`minimum: {minimum}` (only 0)"))),
        };
        for name in names {
            match name {
                "string" => node.string = Some(StringShape::Free),
                "integer" => {
                    node.number =
                        Some((node.number.is_none_or(|(integer, _)| integer), non_negative));
                }
                "number" => node.number = Some((false, non_negative)),
                "boolean" => node.boolean = true,
                "null" => node.null = true,
                "object" => node.object = Some(self.object(map, depth)?),
                "array" => node.array = Some(self.array(map, depth)?),
                other => return Err(unsupported(format!("`type: {other}`"))),
            }
        }
        Ok(self.push(node))
    }

    fn resolve(&self, reference: &Value, depth: usize) -> Result<&'a Value, UnsupportedSchema> {
        if depth >= MAX_REF_DEPTH {
            return Err(unsupported("a recursive `$ref`"));
        }
        let pointer = reference
            .as_str()
            .and_then(|text| text.strip_prefix('#'))
            .ok_or_else(|| unsupported(format!("`$ref: {reference}` (only local references)")))?;
        self.root
            .pointer(pointer)
            .ok_or_else(|| unsupported(format!("`$ref: {reference}`, which points nowhere")))
    }

    fn object(
        &mut self,
        map: &'a Map<String, Value>,
        depth: usize,
    ) -> Result<ObjectShape, UnsupportedSchema> {
        let required: Vec<&str> = match map.get("required") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|name| {
                    name.as_str()
                        .ok_or_else(|| unsupported("non-string `required`"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(unsupported("a `required` that is not a list")),
        };
        let Some(properties) = map.get("properties") else {
            if !required.is_empty() {
                return Err(unsupported("`required` without `properties`"));
            }
            let values = match map.get("additionalProperties") {
                None | Some(Value::Bool(true)) => ANY,
                Some(Value::Bool(false)) => {
                    return Ok(ObjectShape::Properties(Vec::new()));
                }
                Some(schema) => self.compile(schema, depth + 1)?,
            };
            return Ok(ObjectShape::Free(values));
        };
        let properties = properties
            .as_object()
            .ok_or_else(|| unsupported("a `properties` that is not an object"))?;
        if let Some(name) = required
            .iter()
            .find(|name| !properties.contains_key(**name))
        {
            return Err(unsupported(format!(
                "`required` naming `{name}`, which is not in `properties`"
            )));
        }
        let mut compiled = Vec::with_capacity(properties.len());
        for (name, schema) in properties {
            let id = self.compile(schema, depth + 1)?;
            compiled.push((escaped(name), id, required.contains(&name.as_str())));
        }
        Ok(ObjectShape::Properties(compiled))
    }

    fn array(
        &mut self,
        map: &'a Map<String, Value>,
        depth: usize,
    ) -> Result<(NodeId, usize, Option<usize>), UnsupportedSchema> {
        let items = match map.get("items") {
            None => ANY,
            Some(items @ (Value::Object(_) | Value::Bool(true))) => {
                self.compile(items, depth + 1)?
            }
            Some(_) => return Err(unsupported("`items` as a list (tuples)")),
        };
        let count = |key: &str| -> Result<Option<usize>, UnsupportedSchema> {
            map.get(key)
                .map(|value| {
                    value
                        .as_u64()
                        .map(|count| count as usize)
                        .ok_or_else(|| unsupported(format!("a non-integer `{key}`")))
                })
                .transpose()
        };
        let min = count("minItems")?.unwrap_or(0);
        let max = count("maxItems")?;
        if max.is_some_and(|max| max < min) {
            return Err(unsupported("`maxItems` below `minItems`"));
        }
        Ok((items, min, max))
    }
}

fn type_names(types: &Value) -> Result<Vec<&str>, UnsupportedSchema> {
    match types {
        Value::String(name) => Ok(vec![name.as_str()]),
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|name| {
                name.as_str()
                    .ok_or_else(|| unsupported("a non-string `type`"))
            })
            .collect(),
        _ => Err(unsupported(
            "a `type` that is not a name or a list of names",
        )),
    }
}

/// Whether one value could match both `a` and `b`.
fn overlap(a: &Node, b: &Node) -> bool {
    let strings = match (&a.string, &b.string) {
        (Some(StringShape::OneOf(a)), Some(StringShape::OneOf(b))) => {
            a.iter().any(|value| b.contains(value))
        }
        (Some(_), Some(_)) => true,
        _ => false,
    };
    strings
        || (a.number.is_some() && b.number.is_some())
        || (a.boolean && b.boolean)
        || (a.null && b.null)
        || (a.object.is_some() && b.object.is_some())
        || (a.array.is_some() && b.array.is_some())
}

/// The union of two alternatives of an `anyOf` / `oneOf`.
fn merge(mut into: Node, other: Node) -> Result<Node, UnsupportedSchema> {
    into.string = match (into.string, other.string) {
        (Some(StringShape::OneOf(mut a)), Some(StringShape::OneOf(b))) => {
            a.extend(b);
            Some(StringShape::OneOf(a))
        }
        (Some(_), Some(_)) => Some(StringShape::Free),
        (a, b) => a.or(b),
    };
    into.number = match (into.number, other.number) {
        (Some((ai, an)), Some((bi, bn))) => Some((ai && bi, an && bn)),
        (a, b) => a.or(b),
    };
    into.boolean |= other.boolean;
    into.null |= other.null;
    into.object = match (into.object, other.object) {
        (Some(_), Some(_)) => return Err(unsupported("`anyOf` with two object alternatives")),
        (a, b) => a.or(b),
    };
    into.array = match (into.array, other.array) {
        (Some(_), Some(_)) => return Err(unsupported("`anyOf` with two array alternatives")),
        (a, b) => a.or(b),
    };
    Ok(into)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_typical_schema_compiles() {
        let shapes = Shapes::compile(&json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "who"},
                "age": {"type": "integer", "format": "uint32", "minimum": 0},
                "color": {"enum": ["red", "green"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "nick": {"type": ["string", "null"]},
                "pet": {"$ref": "#/$defs/Pet"},
                "either": {"anyOf": [{"type": "number"}, {"type": "boolean"}]},
                "kind": {"oneOf": [
                    {"type": "string", "const": "cat", "description": "a cat"},
                    {"type": "string", "const": "dog"}
                ]}
            },
            "required": ["name", "age"],
            "additionalProperties": false,
            "$defs": {"Pet": {"type": "object", "properties": {"kind": {"type": "string"}}}}
        }))
        .expect("compiles");
        let Some(ObjectShape::Properties(properties)) = &shapes.nodes[shapes.root].object else {
            panic!("an object with properties");
        };
        assert_eq!(properties.len(), 8);
        let kind = properties.iter().find(|p| p.0 == b"kind").expect("kind");
        assert_eq!(
            shapes.nodes[kind.1].string,
            Some(StringShape::OneOf(vec![b"cat".to_vec(), b"dog".to_vec()]))
        );
        let age = properties.iter().find(|p| p.0 == b"age").expect("age");
        assert!(age.2, "required");
        assert_eq!(shapes.nodes[age.1].number, Some((true, true)));
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        for (schema, named) in [
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}),
                "`pattern`",
            ),
            (json!({"type": "string"}), "root"),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}),
                "format",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 3}}}),
                "minimum",
            ),
            (
                json!({"type": "object", "properties": {"a": {"$ref": "#"}}}),
                "recursive",
            ),
            (
                json!({"type": "object", "properties": {}, "required": ["b"]}),
                "`b`",
            ),
            (
                json!({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"enum": ["x"]}]}}}),
                "`oneOf`",
            ),
            (
                json!({"type": "object", "properties": {"a": {"not": {}}}}),
                "`not`",
            ),
        ] {
            let error = Shapes::compile(&schema).expect_err("refused");
            assert!(error.to_string().contains(named), "{error} for {schema}");
        }
    }
}
