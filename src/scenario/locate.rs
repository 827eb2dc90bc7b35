//! Maps a field path (`checks[3].identity`) to its line and column in a YAML source.
//!
//! serde reports where *parsing* failed; semantic problems found later (an identity that
//! does not exist, a rate of zero) need the same precision. This walks the YAML event
//! stream once and remembers where every key and value starts. It does not interpret
//! anything: `raw` and `validate` own the meaning.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos { line: m.line(), col: m.col() + 1 }
    }
}

/// Positions of every node of one document, by dotted path.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
    /// Keys that appear twice in one mapping: the path, where the repeat stands and where
    /// the first one does (YAML forbids it; serde would silently keep the last).
    duplicates: Vec<(String, Pos, Pos)>,
}

impl Locator {
    /// Indexes `text`. A text that does not parse yields an empty locator: serde reports
    /// the syntax error itself.
    pub(crate) fn new(text: &str) -> Self {
        let mut loc = Locator::default();
        let mut parser = Parser::new_from_str(text);
        let mut path = String::new();
        // Skip stream/document starts, then walk the root node.
        loop {
            match parser.next_token() {
                Ok((Event::StreamStart | Event::DocumentStart, _)) => continue,
                Ok((Event::StreamEnd | Event::DocumentEnd, _)) | Err(_) => break,
                Ok((ev, mark)) => {
                    let _ = loc.walk(&mut parser, ev, mark, &mut path);
                    break;
                }
            }
        }
        loc
    }

    fn walk(
        &mut self,
        parser: &mut Parser<std::str::Chars<'_>>,
        ev: Event,
        mark: Marker,
        path: &mut String,
    ) -> Result<(), ()> {
        self.values.insert(path.clone(), Pos::from_marker(&mark));
        match ev {
            Event::SequenceStart(..) => {
                let mut i = 0usize;
                loop {
                    let (ev, mark) = parser.next_token().map_err(|_| ())?;
                    if matches!(ev, Event::SequenceEnd) {
                        return Ok(());
                    }
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk(parser, ev, mark, path)?;
                    path.truncate(len);
                    i += 1;
                }
            }
            Event::MappingStart(..) => {
                let mut seen: HashMap<String, Pos> = HashMap::new();
                loop {
                    let (kev, kmark) = parser.next_token().map_err(|_| ())?;
                    let key = match kev {
                        Event::MappingEnd => return Ok(()),
                        Event::Scalar(s, ..) => s,
                        other => {
                            // A complex key: walk it into a throwaway path.
                            let mut scratch = String::from("\u{0}");
                            self.walk(parser, other, kmark, &mut scratch)?;
                            String::from("?")
                        }
                    };
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    let at = Pos::from_marker(&kmark);
                    // `<<` (a merge key) may repeat; a complex key is not compared.
                    if key != "<<" && key != "?" {
                        if let Some(first) = seen.get(&key) {
                            self.duplicates.push((format!("{path}{key}"), at, *first));
                        } else {
                            seen.insert(key.clone(), at);
                        }
                    }
                    path.push_str(&key);
                    self.keys.entry(path.clone()).or_insert(at);
                    let (vev, vmark) = parser.next_token().map_err(|_| ())?;
                    self.walk(parser, vev, vmark, path)?;
                    path.truncate(len);
                }
            }
            _ => Ok(()),
        }
    }

    /// Keys repeated within one mapping: (path, where the repeat stands, where the first is).
    pub(crate) fn duplicates(&self) -> &[(String, Pos, Pos)] {
        &self.duplicates
    }

    /// Where the value at `path` starts, or the nearest enclosing node that exists.
    pub(crate) fn value(&self, path: &str) -> Option<Pos> {
        self.find(path, &self.values)
    }

    /// Where the key of `path` stands (for "unknown"/"missing" problems), else its value.
    pub(crate) fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }

    fn find(&self, path: &str, map: &HashMap<String, Pos>) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = map.get(p) {
                return Some(*pos);
            }
            let Some(cut) = p.rfind(['.', '[']) else {
                // The document itself: its first key (a mapping's start mark lies past it).
                let first = self.keys.iter().filter(|(k, _)| !k.contains(['.', '['])).map(|(_, p)| *p).min();
                return first.or_else(|| map.get("").copied());
            };
            p = &p[..cut];
        }
    }
}

/// Where the YAML parser first fails on `text`, if it does.
pub(crate) fn first_error(text: &str) -> Option<Pos> {
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return None,
            Err(e) => return Some(Pos::from_marker(e.marker())),
            Ok(_) => {}
        }
    }
}

/// Where the second YAML document of `text` starts, if it has one.
pub(crate) fn second_document(text: &str) -> Option<Pos> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    let mut docs = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) | Err(_) => return None,
            Ok((Event::DocumentStart, m)) if depth == 0 => {
                docs += 1;
                if docs == 2 {
                    return Some(Pos::from_marker(&m));
                }
            }
            Ok((Event::MappingStart(..) | Event::SequenceStart(..), _)) => depth += 1,
            Ok((Event::MappingEnd | Event::SequenceEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_values_and_sequence_items() {
        let text = "name: x\nchecks:\n  - id: A\n    identity: alice\n  - id: B\n    request: {path: /x}\n";
        let loc = Locator::new(text);
        assert_eq!(loc.key("name"), Some(Pos { line: 1, col: 1 }));
        assert_eq!(loc.key("checks[1].id"), Some(Pos { line: 5, col: 5 }));
        assert_eq!(loc.value("checks[0].identity"), Some(Pos { line: 4, col: 15 }));
        assert_eq!(loc.value("checks[1].request.path"), Some(Pos { line: 6, col: 21 }));
        // Missing leaf falls back to its parent.
        assert_eq!(loc.value("checks[1].request.method"), loc.value("checks[1].request"));
        assert!(loc.duplicates().is_empty());
    }

    #[test]
    fn finds_where_a_second_document_starts() {
        assert_eq!(second_document("a: 1\n---\nb: 2\n"), Some(Pos { line: 2, col: 1 }));
        assert_eq!(second_document("a: 1\n"), None);
    }

    #[test]
    fn finds_a_key_repeated_in_one_mapping() {
        let text = "profile:\n  routes: {admin: /admin, admin: /public}\nids:\n  - {a: 1}\n  - {a: 2}\n";
        let loc = Locator::new(text);
        assert_eq!(
            loc.duplicates(),
            &[("profile.routes.admin".to_string(), Pos { line: 2, col: 27 }, Pos { line: 2, col: 12 })]
        );
    }
}
