//! Reading the marked-yaml node tree: positions, typed fields and key checks,
//! each problem reported once to the [`Sink`].

use marked_yaml::types::{MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{Node, Span};

use super::error::{suggest, Pos, Sink};

/// The longest id: ids become NATS subject tokens.
const MAX_ID_LEN: usize = 63;

/// Where a string value sits in the source, for pointing inside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TextPos {
    /// The scalar node (its opening quote, if quoted).
    pub node: Pos,
    /// The first character of the value, when the value is written on one
    /// line exactly as it reads (no escapes, no folding).
    pub inline: Option<Pos>,
}

impl TextPos {
    /// The position of the value's `offset`-th character, or of the whole
    /// node when the value cannot be mapped onto the source.
    pub(crate) fn at(&self, offset: usize) -> Pos {
        match self.inline {
            Some(p) => Pos::new(p.line, p.col + offset),
            None => self.node,
        }
    }
}

/// The start of a span.
pub(crate) fn span_pos(span: &Span) -> Pos {
    span.start()
        .map(|m| Pos::new(m.line(), m.column()))
        .unwrap_or(Pos::new(1, 1))
}

/// A node's position. A block mapping's own mark is unreliable, so a
/// non-empty mapping is placed at its first key.
pub(crate) fn node_pos(node: &Node) -> Pos {
    match node {
        Node::Mapping(m) => match m.keys().next() {
            Some(k) => span_pos(k.span()),
            None => span_pos(m.span()),
        },
        Node::Sequence(s) => span_pos(s.span()),
        Node::Scalar(s) => span_pos(s.span()),
    }
}

/// `~`, `null` or nothing at all, unquoted.
pub(crate) fn is_null(node: &Node) -> bool {
    matches!(node, Node::Scalar(s) if s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

/// "a list", "a mapping", ... for wrong-type messages.
pub(crate) fn kind(node: &Node) -> String {
    match node {
        _ if is_null(node) => "empty".to_string(),
        Node::Mapping(_) => "a mapping".to_string(),
        Node::Sequence(_) => "a list".to_string(),
        Node::Scalar(s) => format!("`{}`", s.as_str()),
    }
}

/// One `key: value` of a mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field<'a> {
    pub name: &'a str,
    pub key: Pos,
    pub node: &'a Node,
}

impl Field<'_> {
    /// Where the value is; an empty value is placed at its key.
    pub(crate) fn pos(&self) -> Pos {
        match self.node {
            Node::Scalar(s) if s.as_str().is_empty() && s.may_coerce() => self.key,
            node => node_pos(node),
        }
    }
}

/// The entries of a mapping, in source order.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    pub pos: Pos,
    pub entries: Vec<Field<'a>>,
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, name: &str) -> Option<Field<'a>> {
        self.entries.iter().find(|f| f.name == name).copied()
    }
}

/// The diagnostics sink plus the source text, for reading nodes.
pub(crate) struct Cx {
    pub sink: Sink,
    chars: Vec<char>,
}

impl Cx {
    pub(crate) fn new(file: &str, source: &str) -> Self {
        Cx {
            sink: Sink::new(file),
            chars: source.chars().collect(),
        }
    }

    pub(crate) fn err(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.sink.err(pos, message, hint);
    }

    /// `node` as a mapping; keys outside `allowed` are reported.
    pub(crate) fn fields<'a>(
        &mut self,
        node: &'a Node,
        at: Pos,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a>> {
        let Node::Mapping(map) = node else {
            self.err(
                at,
                format!("{what} must be a mapping, not {}", kind(node)),
                format!(
                    "write it as `key: value` lines; allowed keys: {}",
                    allowed.join(", ")
                ),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map.iter() {
            let key = span_pos(k.span());
            if !allowed.contains(&k.as_str()) {
                self.err(
                    key,
                    format!("unknown key `{}` in {what}", k.as_str()),
                    suggest(k.as_str(), allowed.iter().copied(), "allowed keys"),
                );
                continue;
            }
            entries.push(Field {
                name: k.as_str(),
                key,
                node: v,
            });
        }
        Some(Fields {
            pos: node_pos(node),
            entries,
        })
    }

    /// A required key of `fields`; its absence is reported at the mapping.
    pub(crate) fn require<'a>(
        &mut self,
        fields: &Fields<'a>,
        name: &str,
        what: &str,
    ) -> Option<Field<'a>> {
        let found = fields.get(name);
        if found.is_none() {
            self.err(
                fields.pos,
                format!("{what} has no `{name}`"),
                format!("add `{name}:` to the {what}"),
            );
        }
        found
    }

    /// The text of a (non-empty-null) scalar, with where it sits.
    pub(crate) fn string(&mut self, f: Field<'_>) -> Option<(String, TextPos)> {
        match f.node {
            Node::Scalar(s) if !is_null(f.node) => Some((s.as_str().to_string(), self.text_pos(s))),
            node => {
                self.err(
                    f.pos(),
                    format!("`{}` must be a string, not {}", f.name, kind(node)),
                    format!("write `{}: <text>`", f.name),
                );
                None
            }
        }
    }

    /// A whole number from 0 to `max`.
    pub(crate) fn uint(&mut self, f: Field<'_>, max: u32) -> Option<u32> {
        let parsed = match f.node {
            Node::Scalar(s) if !is_null(f.node) => s.as_str().trim().parse::<u32>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n <= max => Some(n),
            Some(n) => {
                self.err(
                    f.pos(),
                    format!("`{}` is {n}, more than the limit of {max}", f.name),
                    format!("use a whole number from 0 to {max}"),
                );
                None
            }
            None => {
                self.err(
                    f.pos(),
                    format!("`{}` must be a whole number, not {}", f.name, kind(f.node)),
                    format!("use a whole number from 0 to {max}, e.g. `{}: 2`", f.name),
                );
                None
            }
        }
    }

    /// The value as a list.
    pub(crate) fn seq<'a>(&mut self, f: Field<'a>, hint: &str) -> Option<&'a MarkedSequenceNode> {
        match f.node {
            Node::Sequence(s) => Some(s),
            node => {
                self.err(
                    f.pos(),
                    format!("`{}` must be a list, not {}", f.name, kind(node)),
                    hint.to_string(),
                );
                None
            }
        }
    }

    /// An id (`kind` names it: "task id", "role", ...) as a string, checked
    /// against `[a-z0-9][a-z0-9_-]{0,62}`. Returns the text even when the
    /// pattern check fails, so later checks still see it.
    pub(crate) fn id(&mut self, f: Field<'_>, kind: &str) -> Option<String> {
        let (text, _) = self.string(f)?;
        self.check_id(&text, f.pos(), kind);
        Some(text)
    }

    /// Report `text` when it is not a valid id.
    pub(crate) fn check_id(&mut self, text: &str, pos: Pos, kind: &str) {
        if let Some(problem) = id_problem(text) {
            self.err(
                pos,
                format!("{kind} `{text}` {problem}"),
                "ids use lowercase letters, digits, `-` and `_`, start with a letter or digit and \
                 have at most 63 characters (they become NATS subject tokens)",
            );
        }
    }

    /// A mapping of scalars (`env:`, `with:`): each value as its text
    /// (numbers and bools too), with where it sits. `entry` names an entry
    /// in messages; `map_hint` and `value_hint` say how to fix a non-mapping
    /// and a non-scalar value.
    pub(crate) fn scalar_map(
        &mut self,
        f: Field<'_>,
        entry: impl Fn(&str) -> String,
        map_hint: &str,
        value_hint: &str,
    ) -> (
        std::collections::BTreeMap<String, String>,
        std::collections::BTreeMap<String, TextPos>,
    ) {
        let mut values = std::collections::BTreeMap::new();
        let mut spans = std::collections::BTreeMap::new();
        let Node::Mapping(map) = f.node else {
            self.err(
                f.pos(),
                format!("`{}` must be a mapping, not {}", f.name, kind(f.node)),
                map_hint,
            );
            return (values, spans);
        };
        for (k, v) in map.iter() {
            let name = k.as_str();
            match v {
                Node::Scalar(s) if !is_null(v) => {
                    values.insert(name.to_string(), s.as_str().to_string());
                    spans.insert(name.to_string(), self.text_pos(s));
                }
                other => self.err(
                    Field {
                        name,
                        key: span_pos(k.span()),
                        node: v,
                    }
                    .pos(),
                    format!(
                        "{} must be a string, number or bool, not {}",
                        entry(name),
                        kind(other)
                    ),
                    value_hint,
                ),
            }
        }
        (values, spans)
    }

    /// Where a scalar's value sits, see [`TextPos`].
    pub(crate) fn text_pos(&self, s: &MarkedScalarNode) -> TextPos {
        let node = span_pos(s.span());
        let Some(start) = s.span().start().map(|m| m.character()) else {
            return TextPos { node, inline: None };
        };
        let quoted = matches!(self.chars.get(start), Some('"' | '\''));
        let first = start + usize::from(quoted);
        let value: Vec<char> = s.as_str().chars().collect();
        let exact = !value.contains(&'\n')
            && self.chars.get(first..first + value.len()) == Some(&value[..]);
        let inline = exact.then(|| Pos::new(node.line, node.col + usize::from(quoted)));
        TextPos { node, inline }
    }
}

/// Why `text` is not a valid id, if it is not.
///
/// Ids become NATS subject tokens and key parts, so this is the bus's one
/// token rule, `baton_proto::subjects::token_problem`, with the loader's
/// wording. This crate does not depend on `baton-proto` (it builds alone,
/// for the fuzz targets), so the rule is written out here too; the
/// coordinator's `the_plan_loader_accepts_exactly_the_plan_names_hooks_accept`
/// test holds the two together.
pub(crate) fn id_problem(text: &str) -> Option<String> {
    let Some(first) = text.chars().next() else {
        return Some("is empty".to_string());
    };
    if text.chars().count() > MAX_ID_LEN {
        return Some(format!("is longer than {MAX_ID_LEN} characters"));
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !ok(first) {
        return Some(format!("starts with `{first}`"));
    }
    let bad = text.chars().find(|&c| !(ok(c) || c == '-' || c == '_'))?;
    let what = match bad {
        ' ' => "a space".to_string(),
        '.' => "a dot".to_string(),
        c if c.is_ascii_uppercase() => format!("an uppercase letter `{c}`"),
        c => format!("`{c}`"),
    };
    Some(format!("contains {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use marked_yaml::{parse_yaml_with_options, LoaderOptions};

    fn parse(src: &str) -> Node {
        parse_yaml_with_options(0, src, LoaderOptions::default().prevent_coercion(true)).unwrap()
    }

    #[test]
    fn ids() {
        assert_eq!(id_problem("scan-2_x"), None);
        assert_eq!(id_problem("a.b").unwrap(), "contains a dot");
        assert_eq!(id_problem("a b").unwrap(), "contains a space");
        assert_eq!(id_problem("Scan").unwrap(), "starts with `S`");
        assert_eq!(
            id_problem("sCan").unwrap(),
            "contains an uppercase letter `C`"
        );
        assert_eq!(id_problem("a>").unwrap(), "contains `>`");
        assert_eq!(id_problem("").unwrap(), "is empty");
        assert!(id_problem(&"a".repeat(64)).is_some());
        assert_eq!(id_problem(&"a".repeat(63)), None);
    }

    #[test]
    fn positions_of_mappings_fields_and_text() {
        let src = "top:\n  a: \"x y\"\n  b: 'it''s'\n  c:\n  d: plain text\n";
        let root = parse(src);
        let mut cx = Cx::new("f", src);
        let top = cx.fields(&root, Pos::new(1, 1), "plan", &["top"]).unwrap();
        let t = top.get("top").unwrap();
        assert_eq!(t.pos(), Pos::new(2, 3));
        let inner = cx
            .fields(t.node, t.pos(), "top", &["a", "b", "c", "d"])
            .unwrap();
        let (a, at) = cx.string(inner.get("a").unwrap()).unwrap();
        assert_eq!(a, "x y");
        assert_eq!(at.node, Pos::new(2, 6));
        assert_eq!(at.at(2), Pos::new(2, 9));
        let (_, bt) = cx.string(inner.get("b").unwrap()).unwrap();
        assert_eq!(bt.inline, None);
        assert_eq!(bt.at(3), Pos::new(3, 6));
        let c = inner.get("c").unwrap();
        assert!(is_null(c.node));
        assert_eq!(c.pos(), Pos::new(4, 3));
        let (_, dt) = cx.string(inner.get("d").unwrap()).unwrap();
        assert_eq!(dt.at(6), Pos::new(5, 12));
        assert!(cx.string(c).is_none());
        let e = cx.sink.finish(()).unwrap_err();
        assert_eq!(e.diagnostics[0].message, "`c` must be a string, not empty");
    }

    #[test]
    fn unknown_keys_and_numbers() {
        let src = "timout: 1\nretries: two\nmax: 11\n";
        let root = parse(src);
        let mut cx = Cx::new("f", src);
        let f = cx
            .fields(
                &root,
                Pos::new(1, 1),
                "task",
                &["timeout", "retries", "max"],
            )
            .unwrap();
        assert!(cx.uint(f.get("retries").unwrap(), 10).is_none());
        assert!(cx.uint(f.get("max").unwrap(), 10).is_none());
        assert!(cx.require(&f, "timeout", "task").is_none());
        let d = cx.sink.finish(()).unwrap_err().diagnostics;
        assert_eq!(d.len(), 4);
        assert_eq!(
            (d[0].line, d[0].col, d[0].hint.as_str()),
            (1, 1, "did you mean `timeout`?")
        );
        assert_eq!(d[1].message, "task has no `timeout`");
        assert_eq!(d[2].message, "`retries` must be a whole number, not `two`");
        assert_eq!(d[3].message, "`max` is 11, more than the limit of 10");
    }
}
