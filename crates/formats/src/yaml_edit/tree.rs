//! The document as serde-saphyr reads it, twice: once as a tree of nodes that remember their byte
//! offsets (merge keys kept as ordinary `<<` entries, so the tree matches the text one to one),
//! and once as the `serde_json::Value` a consumer of the file sees (merges applied).
//!
//! Invariants: map entries are in file order; for an alias (or anything replayed through one)
//! `Span::at` is where it is used and `Span::def` where its anchor defined it, and the two
//! differ; for every other node they are equal. Parse errors carry a line, never file content.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::options::MergeKeyPolicy;
use serde_saphyr::{Options, Spanned};

/// Byte offsets of a node in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    /// Where the node appears (an alias: the `*name` token).
    pub at: usize,
    /// Where the node was defined (an alias: the anchored node).
    pub def: usize,
    /// Length in bytes of the scalar or flow token at `at` (0 for block collections and empty
    /// values).
    pub len: usize,
}

impl Span {
    pub fn is_alias(&self) -> bool {
        self.at != self.def
    }
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub span: Span,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    Scalar(Value),
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The key as a string (how a consumer reading `map[string]…` sees it).
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Node {
    /// The node as JSON, the way serde-saphyr would give it to `serde_json::Value`.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Calls `f` with the span of this node, of every node below it and of every key.
    pub fn for_each_span(&self, f: &mut impl FnMut(&Span)) {
        f(&self.span);
        match &self.kind {
            Kind::Scalar(_) => {}
            Kind::Seq(items) => items.iter().for_each(|n| n.for_each_span(f)),
            Kind::Map(entries) => {
                for e in entries {
                    f(&e.key_span);
                    e.value.for_each_span(f);
                }
            }
        }
    }
}

/// What was parsed: the positioned tree and the consumer's view.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    pub root: Node,
    pub value: Value,
}

/// Why the text did not parse: a 1-based line (0 if unknown) and serde-saphyr's message
/// (produced without snippets, so it does not quote the file).
#[derive(Debug)]
pub(super) struct ParseFailure {
    pub line: usize,
    pub message: String,
}

/// Parses `text`. The consumer's view is derived from the tree (aliases are already replayed
/// there) unless the file has merge keys, which only a second, merging parse applies.
pub(super) fn parse(text: &str) -> Result<Parsed, ParseFailure> {
    let mut options = Options::default();
    options.with_snippet = false;
    let mut ordinary = options.clone();
    ordinary.merge_keys = MergeKeyPolicy::AsOrdinary;
    let raw =
        serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, ordinary).map_err(failure)?;
    let root = node(raw).ok_or_else(|| ParseFailure {
        line: 0,
        message: "the parser gave no byte offsets".to_owned(),
    })?;
    let value = if has_merge_key(&root, text) {
        serde_saphyr::from_str_with_options::<Value>(text, options).map_err(failure)?
    } else {
        root.to_json()
    };
    Ok(Parsed { root, value })
}

/// Whether any mapping under `node` has a plain `<<` key.
fn has_merge_key(node: &Node, text: &str) -> bool {
    match &node.kind {
        Kind::Scalar(_) => false,
        Kind::Seq(items) => items.iter().any(|n| has_merge_key(n, text)),
        Kind::Map(entries) => entries.iter().any(|e| {
            (e.key == "<<" && text[e.key_span.at..].starts_with("<<"))
                || has_merge_key(&e.value, text)
        }),
    }
}

fn failure(e: serde_saphyr::Error) -> ParseFailure {
    let line = e
        .location()
        .map_or(0, |l| usize::try_from(l.line()).unwrap_or(0));
    ParseFailure {
        line,
        message: e.to_string(),
    }
}

fn node(raw: Spanned<Raw>) -> Option<Node> {
    let node_span = span(&raw.referenced, &raw.defined)?;
    let kind = match raw.value {
        Raw::Scalar(v) => Kind::Scalar(v),
        Raw::Seq(items) => Kind::Seq(items.into_iter().map(node).collect::<Option<_>>()?),
        Raw::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    Some(Entry {
                        key_span: span(&k.referenced, &k.defined)?,
                        key: k.value,
                        value: node(v)?,
                    })
                })
                .collect::<Option<_>>()?,
        ),
    };
    Some(Node {
        span: node_span,
        kind,
    })
}

fn span(at: &serde_saphyr::Location, def: &serde_saphyr::Location) -> Option<Span> {
    let offset =
        |l: &serde_saphyr::Location| l.span().byte_offset().and_then(|b| usize::try_from(b).ok());
    let len = at.span().byte_len().and_then(|b| usize::try_from(b).ok())?;
    Some(Span {
        at: offset(at)?,
        def: offset(def)?,
        len,
    })
}

/// A YAML node as serde hands it over, before positions are turned into byte offsets.
enum Raw {
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
    Seq(Vec<Spanned<Raw>>),
    Scalar(Value),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::String(v.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}
