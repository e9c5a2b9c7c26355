//! The TOML layer of loading: the text parsed into a tree that keeps where
//! every key and value stands, then read into the raw structs.
//!
//! Every problem of this layer is found in one pass. The parser recovers
//! from syntax errors and reports each. Reading reports the first key that
//! is unknown, of the wrong type, of a value not allowed, or missing; that
//! part is then cut out of the tree and reading starts again without it,
//! so that one mistake hides no other. A key cut out for its value is not
//! reported again as missing, and the agents that lost a part are named,
//! so that checks that refer to them do not report what follows from a
//! mistake already reported.
//!
//! Messages name keys, types and allowed words, never a value as written
//! (a mistyped key may hold a token).

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::error::{Locator, Problem};
use crate::raw::RawConfig;
use crate::spelling::near_miss;

/// How many parts may be cut out before reading gives up (each round reads
/// the whole tree again, so this bounds the work on a hostile file).
const MAX_CUTS: usize = 100;

/// The file read as far as it could be.
pub(crate) struct Read {
    /// `None` when the syntax is broken, or too much had to be cut.
    pub raw: Option<RawConfig>,
    pub problems: Vec<Problem>,
    /// Agents (by name) that lost a part or were cut out whole.
    pub damaged_agents: HashSet<String>,
}

/// One step from a table or array to what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

pub(crate) fn read(text: &str, locator: &Locator<'_>) -> Read {
    let (mut doc, errors) = DeTable::parse_recoverable(text);
    let mut read = Read {
        raw: None,
        problems: Vec::new(),
        damaged_agents: HashSet::new(),
    };
    if !errors.is_empty() {
        // Past a syntax error the tree is the parser's guess: reading it
        // would report mistakes that are not there.
        read.problems = errors
            .iter()
            .map(|e| {
                let offset = e.span().map_or(0, |s| s.start);
                locator.problem(offset, e.message().trim(), Some(SYNTAX_HINT))
            })
            .collect();
        return read;
    }
    // Keys cut out for their value: (span of their table, key).
    let mut cut_keys: Vec<(Range<usize>, String)> = Vec::new();
    // Errors met so far: one that comes back means a cut changed nothing.
    let mut met: HashSet<(Range<usize>, String)> = HashSet::new();
    for _ in 0..=MAX_CUTS {
        let error = match RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(raw) => {
                read.raw = Some(raw);
                return read;
            }
            Err(e) => e,
        };
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim();
        if !met.insert((span.clone(), message.to_owned())) {
            return read;
        }
        let Some(path) = smallest_holding(&doc, &span) else {
            read.problems
                .push(locator.problem(span.start, describe_other(message), None));
            return read;
        };
        if let Some(agent) = agent_of(&doc, &path) {
            read.damaged_agents.insert(agent);
        }
        let missing = missing_key(message);
        let follows_a_cut =
            missing.is_some_and(|key| cut_keys.iter().any(|(table, k)| *table == span && k == key));
        if !follows_a_cut {
            let key = key_of(&path);
            let (text, hint) = describe(message, key.as_deref());
            read.problems
                .push(locator.problem(span.start, text, hint.as_deref()));
        }
        if let (Some(Step::Key(key)), Some(table)) = (path.last(), span_of_parent(&doc, &path)) {
            // A key cut for its value, or a misspelt one, is not missing too.
            if let Some(meant) = suggested_key(message) {
                cut_keys.push((table.clone(), meant.to_owned()));
            }
            cut_keys.push((table, key.clone()));
        }
        if path.is_empty() {
            // The whole file does not fit: nothing left to cut.
            return read;
        }
        remove(doc.get_mut(), &path);
    }
    read.problems.push(locator.problem(
        0,
        format!("more than {MAX_CUTS} problems; the rest are not reported"),
        None,
    ));
    read
}

const SYNTAX_HINT: &str = "a TOML syntax error: check quotes, brackets and `=` near this place";

/// The path to the smallest key, value or element whose span holds `span`
/// (the whole file when nothing smaller does).
fn smallest_holding(doc: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Option<Vec<Step>> {
    let holds = |s: Range<usize>| s.start <= span.start && span.end <= s.end;
    let mut best: Option<(usize, Vec<Step>)> = None;
    let mut consider = |s: Range<usize>, path: &[Step]| {
        // On a tie the deeper one wins: an array of tables has the span of its first header.
        if holds(s.clone()) && best.as_ref().is_none_or(|(len, _)| s.len() <= *len) {
            best = Some((s.len(), path.to_vec()));
        }
    };
    // Table spans need not enclose their keys (an `[[agents]]` header), so
    // the whole tree is searched.
    fn walk(
        value: &DeValue<'_>,
        path: &mut Vec<Step>,
        consider: &mut dyn FnMut(Range<usize>, &[Step]),
    ) {
        match value {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    path.push(Step::Key(k.get_ref().to_string()));
                    consider(k.span(), path);
                    consider(v.span(), path);
                    walk(v.get_ref(), path, consider);
                    path.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    path.push(Step::Index(i));
                    consider(v.span(), path);
                    walk(v.get_ref(), path, consider);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut path = Vec::new();
    consider(doc.span(), &path);
    for (k, v) in doc.get_ref().iter() {
        path.push(Step::Key(k.get_ref().to_string()));
        consider(k.span(), &path);
        consider(v.span(), &path);
        walk(v.get_ref(), &mut path, &mut consider);
        path.pop();
    }
    best.map(|(_, p)| p)
}

/// The value at `path`.
fn at<'d, 'i>(doc: &'d DeTable<'i>, path: &[Step]) -> Option<&'d Spanned<DeValue<'i>>> {
    let (Step::Key(first), rest) = path.split_first()? else {
        return None;
    };
    let mut value = doc.get(first.as_str())?;
    for step in rest {
        value = match (step, value.get_ref()) {
            (Step::Key(k), DeValue::Table(t)) => t.get(k.as_str())?,
            (Step::Index(i), DeValue::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The span of the table that holds the entry at `path`.
fn span_of_parent(doc: &Spanned<DeTable<'_>>, path: &[Step]) -> Option<Range<usize>> {
    match path.split_last()? {
        (_, []) => Some(doc.span()),
        (_, parent) => at(doc.get_ref(), parent).map(Spanned::span),
    }
}

/// The name of the `[[agents]]` entry that `path` lies in.
fn agent_of(doc: &Spanned<DeTable<'_>>, path: &[Step]) -> Option<String> {
    match path {
        [Step::Key(section), Step::Index(i), ..] if section == "agents" => {
            let entry = at(doc.get_ref(), &path[..2])?;
            let DeValue::Table(t) = entry.get_ref() else {
                return None;
            };
            t.get("name")?.get_ref().as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// The key the last step of `path` names, or the key of the array whose
/// element it is.
fn key_of(path: &[Step]) -> Option<String> {
    path.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.clone()),
        Step::Index(_) => None,
    })
}

/// Cuts the entry or element at `path` out of the tree.
fn remove(doc: &mut DeTable<'_>, path: &[Step]) {
    match path {
        [Step::Key(k)] => {
            doc.remove(k.as_str());
        }
        [Step::Key(k), rest @ ..] => {
            if let Some(v) = doc.get_mut(k.as_str()) {
                remove_in(v.get_mut(), rest);
            }
        }
        _ => {}
    }
}

fn remove_in(value: &mut DeValue<'_>, path: &[Step]) {
    match (path, value) {
        ([Step::Key(k)], DeValue::Table(t)) => {
            t.remove(k.as_str());
        }
        ([Step::Index(i)], DeValue::Array(a)) => {
            // An array has no `remove`: it is built again without the element.
            let mut kept = DeArray::new();
            for (j, v) in a.iter().enumerate() {
                if j != *i {
                    kept.push(v.clone());
                }
            }
            *a = kept;
        }
        ([Step::Key(k), rest @ ..], DeValue::Table(t)) => {
            if let Some(v) = t.get_mut(k.as_str()) {
                remove_in(v.get_mut(), rest);
            }
        }
        ([Step::Index(i), rest @ ..], DeValue::Array(a)) => {
            if let Some(v) = a.get_mut(*i) {
                remove_in(v.get_mut(), rest);
            }
        }
        _ => {}
    }
}

/// The key a "missing field" error names.
fn missing_key(message: &str) -> Option<&str> {
    backticked(message.strip_prefix("missing field ")?).next()
}

/// The known key an "unknown field" error's key is a near miss of.
fn suggested_key(message: &str) -> Option<&str> {
    let mut words = backticked(message.strip_prefix("unknown field ")?);
    let unknown = words.next()?;
    near_miss(unknown, words)
}

/// The words between backticks in `text`, in order.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// A reading error in the config's words: which key, what is wrong, and a
/// hint. Serde's own wording quotes values; this never does.
fn describe(message: &str, key: Option<&str>) -> (String, Option<String>) {
    let key_text = key.map_or_else(|| "this value".to_owned(), |k| format!("`{k}`"));
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let mut words = backticked(rest);
        let unknown = words.next().unwrap_or_default();
        let known: Vec<&str> = words.collect();
        let hint = match near_miss(unknown, known.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None if known.is_empty() => "this table takes no keys".to_owned(),
            None => format!(
                "remove it or correct its spelling; the keys here are {}",
                list(&known)
            ),
        };
        return (format!("unknown key `{unknown}`"), Some(hint));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let mut words = backticked(rest);
        let unknown = words.next().unwrap_or_default();
        let known: Vec<&str> = words.collect();
        let hint = match near_miss(unknown, known.iter().copied()) {
            Some(near) => format!("did you mean `{near}`? {key_text} takes {}", list(&known)),
            None => format!("{key_text} takes {}", list(&known)),
        };
        return (format!("{key_text} cannot be `{unknown}`"), Some(hint));
    }
    if let Some(key) = missing_key(message) {
        return (
            format!("missing key `{key}`"),
            Some(format!(
                "add `{key}`; the README's config reference shows an example"
            )),
        );
    }
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
            let found = found_words(found);
            let expected = expected_words(expected);
            let text = if prefix == "invalid type: " {
                format!("{key_text} must be {expected}, not {found}")
            } else {
                format!("{key_text} must be {expected}")
            };
            return (text, Some(type_hint(&expected)));
        }
    }
    (describe_other(message), None)
}

/// A message of our own (credential references) or of the parser, as it is.
fn describe_other(message: &str) -> String {
    message.to_owned()
}

/// "string \"abc\"" -> "a string": the kind of value found, without it.
fn found_words(found: &str) -> &'static str {
    let kind = found.split([' ', '`', '"']).next().unwrap_or_default();
    match kind {
        "string" | "character" => "a string",
        "integer" => "a number",
        "floating" => "a fractional number",
        "boolean" => "true or false",
        "sequence" => "an array",
        "map" => "a table",
        _ => "a value of another kind",
    }
}

/// Serde's expectation in TOML's words.
fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" | "a borrowed string" | "a character" => "a string".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        _ if e.starts_with("struct ") => "a table".to_owned(),
        _ if e.is_empty() => "of another kind".to_owned(),
        _ => e.to_owned(),
    }
}

fn type_hint(expected: &str) -> String {
    match expected {
        "a string" => "put the value in quotes, e.g. \"15m\"".to_owned(),
        "an array" => "write a list in brackets, e.g. [\"cli\", \"cron\"]".to_owned(),
        "true or false" => "write true or false, without quotes".to_owned(),
        "a table" => "write a table, e.g. { key = \"value\" }, or a [section]".to_owned(),
        e if e.starts_with("a whole number") => "write a number without quotes, e.g. 2".to_owned(),
        _ => "the README's config reference shows each key's type".to_owned(),
    }
}

/// `a`, `b` or `c`.
fn list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_the_configs_words_without_values() {
        let (text, hint) = describe(
            "invalid type: string \"xoxb-123\", expected u32",
            Some("max_concurrent"),
        );
        assert_eq!(
            text,
            "`max_concurrent` must be a whole number of 0 or more, not a string"
        );
        assert!(!text.contains("xoxb"));
        assert!(hint.unwrap().contains("without quotes"));
        let (text, hint) = describe(
            "unknown variant `crom`, expected one of `cli`, `slack`, `linear`, `cron`, `webhook`",
            Some("triggers"),
        );
        assert_eq!(text, "`triggers` cannot be `crom`");
        assert_eq!(
            hint.unwrap(),
            "did you mean `cron`? `triggers` takes `cli`, `slack`, `linear`, `cron` or `webhook`"
        );
        let (text, _) = describe("missing field `command`", None);
        assert_eq!(text, "missing key `command`");
    }
}
