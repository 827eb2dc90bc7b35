//! The layering ARCHITECTURE.md states holds in the code: every `crate::` path in a module
//! (outside its unit tests) names a module the documented dependency list allows, and every
//! documented edge exists (so the document stays true both ways).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules whose edges are not part of the layering: the binary, the crate root, and the
/// CLI types.
const ROOTS: &[&str] = &["main", "lib", "cli"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments, up to its unit tests.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        // A trailing comment (`// …` after code) is cut; `//` inside a string literal is rare
        // enough in paths-bearing lines that it does not matter here.
        let line = match line.find(" // ") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Every top-level module named by a `crate::` path in `code`, with `crate::{a, b::c}` groups.
fn named(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        // `$crate::` and `foo_crate::` are not this crate's paths.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && (c.is_ascii_alphanumeric() || c == '_') => {
                        out.insert(ident(&group[j..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let m = ident(rest);
            if !m.is_empty() {
                out.insert(m.to_string());
            }
        }
    }
    out
}

/// `a → {b, c}` entries of the "Dependency direction" paragraph (notes in parentheses
/// after a name are ignored).
fn documented(arch: &str) -> BTreeMap<String, BTreeSet<String>> {
    let start = arch.find("Dependency direction:").expect("ARCHITECTURE.md states the dependency direction");
    let para = arch[start..].split("\n\n").next().unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in para.split('`').filter(|e| e.contains(" → {")) {
        let (from, to) = entry.split_once(" → {").unwrap();
        let to = to.trim_end_matches('}');
        let set = out.entry(from.trim().to_string()).or_default();
        for m in to.split(',') {
            let m = m.split('(').next().unwrap().trim();
            if !m.is_empty() {
                set.insert(m.to_string());
            }
        }
    }
    out
}

#[test]
fn every_crate_path_follows_the_documented_layering() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let allowed = documented(&arch);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    // (from, to) → first file that makes the edge
    let mut actual: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    for f in &files {
        let from = module_of(&src, f);
        if ROOTS.contains(&from.as_str()) {
            continue;
        }
        for to in named(&code(&std::fs::read_to_string(f).unwrap())) {
            if to != from {
                actual.entry((from.clone(), to)).or_insert_with(|| f.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let undocumented: Vec<String> = actual
        .iter()
        .filter(|((from, to), _)| !allowed.get(from).is_some_and(|s| s.contains(to)))
        .map(|((from, to), f)| format!("{from} → {to} (in {})", f.display()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "edges ARCHITECTURE.md does not allow — cut them or document them:\n  {}",
        undocumented.join("\n  ")
    );
    let stale: Vec<String> = allowed
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from.clone(), to.clone())))
        .filter(|e| !actual.contains_key(e))
        .map(|(from, to)| format!("{from} → {to}"))
        .collect();
    assert!(stale.is_empty(), "ARCHITECTURE.md documents edges the code no longer has:\n  {}", stale.join("\n  "));
}

#[test]
fn the_path_reader_sees_groups_and_ignores_comments_and_other_crates() {
    let c = code(
        "use crate::{netem, plan::Plan, tls::{self, quic}};\n// crate::gateway\nlet x = crate::auth::mint();\n\
         $crate::judge::x(); tokio_util::sync::x(); some_crate::metrics::x();\n#[cfg(test)]\nuse crate::testkit;\n",
    );
    let n: Vec<String> = named(&c).into_iter().collect();
    assert_eq!(n, ["auth", "netem", "plan", "tls"]);
    let d = documented("Dependency direction: `a → {b, c (notes)}`; `a → {d}`.\n\n`x → {y}`");
    assert_eq!(d.len(), 1);
    assert_eq!(d["a"].iter().collect::<Vec<_>>(), ["b", "c", "d"]);
}
