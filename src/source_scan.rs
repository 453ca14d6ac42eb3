//! Tests that read channeld's own source (test builds only): a lexer that blanks comments and
//! literals so code can be scanned by pattern (also used by `telemetry`'s check of log fields),
//! and the test that pins the module graph.
//!
//! The module graph is read from `crate::<module>` paths in `src/` outside `#[cfg(test)]` items
//! and test-only modules; an arrow goes from the top-level module a file belongs to, to the one the
//! path names. Arrows must run one way (`http`/`cli`/`jobs`/`outbox` → `services` → `flows`,
//! clients, `store`): a cycle means two modules can no longer be understood, or changed, apart.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// `src` with comments and the contents of string and char literals blanked (kept as spaces,
/// so positions and line numbers stay), for scanning code by eye-level patterns.
pub(crate) fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let end = src[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            blank(&mut out, i, end);
            i = end;
        } else if (rest.starts_with(b"r#") || rest.starts_with(b"r\"")) && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = i + 1 + hashes + 1;
            let end = src[start..].find(&close).map_or(b.len(), |p| start + p + close.len());
            blank(&mut out, start, end - close.len());
            i = end;
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, j);
            i = j + 1;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\''), or a lifetime ('a), which is left alone.
            let end = if rest.get(1) == Some(&b'\\') {
                src[i + 2..].find('\'').map(|p| i + 2 + p + 1)
            } else {
                let ch = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 1 + ch + 1)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i + 1, end - 1);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `.rs` file under `dir`.
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

const CFG_TEST: &str = "#[cfg(test)]";

/// `code` (from [`code_only`]) with every item marked `#[cfg(test)]` blanked: a `mod tests { .. }`,
/// a function, a `use`. Returns the names of test-only modules declared as files (`mod x;`).
fn without_test_items(code: &str) -> (String, Vec<String>) {
    let mut out = code.as_bytes().to_vec();
    let mut test_files = Vec::new();
    for (at, _) in code.match_indices(CFG_TEST) {
        let item = at + CFG_TEST.len();
        let end = item_end(code, item);
        let decl: Vec<&str> = code[item..end].split_whitespace().collect();
        if let ["mod", name] | ["pub(crate)", "mod", name] | ["pub", "mod", name] = decl[..] {
            test_files.push(name.trim_end_matches(';').to_string());
        }
        for c in &mut out[at..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), test_files)
}

/// Where the item starting at `from` ends: after its `;`, or after the brace closing its body (a
/// `use` ends at its `;`, after any group).
fn item_end(code: &str, from: usize) -> usize {
    let is_use = code[from..].trim_start().starts_with("use ");
    let mut depth = 0usize;
    for (i, c) in code[from..].char_indices() {
        match c {
            ';' if depth == 0 => return from + i + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 && !is_use {
                    return from + i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// The first path segment of every `crate::` path in `code`, with its line: `crate::a::b` names
/// `a`; `crate::{a::b, c}` names `a` and `c`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // e.g. `my_crate::`
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = code[at + "crate::".len()..].trim_start();
        let entries = match rest.strip_prefix('{') {
            Some(group) => group_entries(group),
            None => vec![rest],
        };
        for entry in entries {
            let name: String = entry.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != "self" {
                out.push((line, name));
            }
        }
    }
    out
}

/// The entries of a `{a::b, c::{d, e}}` group (`group` starts after its `{`).
fn group_entries(group: &str) -> Vec<&str> {
    let (mut entries, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                entries.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries
}

/// Module → module it uses → where (the first `file:line` seen).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The top-level module a file under `src` belongs to (`None` for the crate root).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The files of test-only modules (`#[cfg(test)] mod x;` in `file` declares `x.rs` or `x/`).
fn test_module_paths(file: &Path, names: &[String]) -> Vec<PathBuf> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new(""));
    let base = if matches!(stem, "lib" | "main" | "mod") { dir.to_path_buf() } else { dir.join(stem) };
    names.iter().flat_map(|n| [base.join(format!("{n}.rs")), base.join(n)]).collect()
}

/// The graph of the top-level modules under `src`, from non-test code.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut scanned = Vec::new();
    let mut test_only = Vec::new();
    for file in &files {
        let (code, test_mods) = without_test_items(&code_only(&std::fs::read_to_string(file).unwrap()));
        test_only.extend(test_module_paths(file, &test_mods));
        scanned.push((file, code));
    }
    let mut graph = Graph::new();
    for (file, code) in scanned {
        let Some(from) = top_module(src, file) else { continue };
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        for (line, to) in crate_paths(&code) {
            if to != from && modules.contains(&to) {
                let at = format!("{}:{line}", file.strip_prefix(src).unwrap_or(file).display());
                graph.entry(from.clone()).or_default().entry(to).or_insert(at);
            }
        }
    }
    graph
}

/// The shortest way from `from` to `to`, both included.
fn way(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([from.to_string()]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![at];
            while let Some(prev) = came_from.get(path.last()?) {
                path.push(prev.clone());
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(&at).into_iter().flat_map(|m| m.keys()) {
            if next != from && !came_from.contains_key(next) {
                came_from.insert(next.clone(), at.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

/// One cycle per set of modules that use each other, written `a → b (where) → a (where)`.
fn cycles(graph: &Graph) -> Vec<String> {
    let (mut seen, mut found) = (BTreeSet::new(), Vec::new());
    for (a, uses) in graph {
        for b in uses.keys() {
            let Some(back) = way(graph, b, a) else { continue };
            let members: BTreeSet<&String> = back.iter().collect();
            if !seen.insert(members.into_iter().cloned().collect::<Vec<_>>()) {
                continue;
            }
            let mut text = a.clone();
            let mut prev = a;
            for next in &back {
                text.push_str(&format!(" → {next} ({})", graph[prev][next]));
                prev = next;
            }
            found.push(text);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_reads_crate_paths_outside_tests_comments_and_strings() {
        let src = r#"use crate::flows::model::X; // crate::jobs
            use crate::{app::App, store::{Store, StoreError}, self};
            /// [`Y`](crate::admin::Y)
            fn f() { let s = "crate::cli"; my_crate::x(); crate::remote::call(); }
            #[cfg(test)]
            use crate::outbox::Z;
            #[cfg(test)]
            mod tests { use crate::http::H; fn g() { crate::server::run(); } }
            #[cfg(test)]
            mod fixtures;
            fn h() -> crate::wms::W { todo() }"#;
        let (code, test_mods) = without_test_items(&code_only(src));
        let named: Vec<(usize, String)> = crate_paths(&code);
        let expected = [(1, "flows"), (2, "app"), (2, "store"), (4, "remote"), (11, "wms")];
        assert_eq!(named, expected.map(|(l, m)| (l, m.to_string())));
        assert_eq!(test_mods, vec!["fixtures".to_string()]);
    }

    #[test]
    fn a_cycle_is_named_with_where_each_arrow_comes_from() {
        let edge = |a: &str, b: &str| (a.to_string(), BTreeMap::from([(b.to_string(), format!("{a}.rs:1"))]));
        let mut graph: Graph = [edge("flows", "wms"), edge("wms", "remote"), edge("remote", "flows")].into();
        graph.insert("http".into(), BTreeMap::from([("flows".into(), "http.rs:1".into())]));
        assert_eq!(cycles(&graph), vec!["flows → wms (flows.rs:1) → remote (wms.rs:1) → flows (remote.rs:1)"]);
        graph.remove("remote");
        assert!(cycles(&graph).is_empty());
    }

    /// Arrows between the top-level modules run one way: no module uses, through others, a module
    /// that uses it.
    #[test]
    fn the_top_level_modules_use_each_other_without_a_cycle() {
        let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        assert!(graph.get("flows").is_some_and(|m| m.contains_key("lenient")), "the scan sees flows' imports");
        let found = cycles(&graph);
        assert!(found.is_empty(), "import cycles between top-level modules:\n{}", found.join("\n"));
    }

    /// The rules take plain data and nothing with I/O: no client, no store, no application context.
    #[test]
    fn flows_uses_only_configuration_and_the_lenient_readers() {
        let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        let used: Vec<String> = graph["flows"].iter().map(|(m, at)| format!("{m} ({at})")).collect();
        let io: Vec<&String> =
            used.iter().filter(|m| !m.starts_with("config ") && !m.starts_with("lenient ")).collect();
        assert!(io.is_empty(), "flows uses {io:?}");
    }
}
