//! No import cycle between the crate's top-level modules (STYLE.md, "Seams": layers import
//! downwards only). Every `.rs` file under `src/` is read; `src/foo.rs` and `src/foo/**` are
//! module `foo`. An edge `foo -> bar` is any path through the crate root to `bar` written in
//! `foo`'s code: `crate::bar`, a `use crate::{bar, ..}` group, a `super::` chain that climbs to
//! the root, `hookhouse::bar`, or a name `lib.rs` re-exports from `bar`. Test code counts: a
//! `#[cfg(test)]` import is still an import. Comments (doc links too) and literals do not.
//! Nothing is exempt: a module every layer may use (`telemetry`, `config`, `metrics`) is fine
//! as a target, as long as it is in no cycle itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = Graph::read(&src);

    // The reading itself is checked, so that a parser gone blind cannot pass: the files found
    // are the modules `lib.rs` declares, and the crate's modules do use each other.
    let declared = declared_modules(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert_eq!(graph.modules, declared, "module files under src/ and `mod`s in lib.rs differ");
    assert!(graph.edge_count() >= 10, "too few imports found, is the parser blind?\n{graph}");

    println!("{graph}");
    if let Some(report) = graph.cycle_report() {
        panic!("{report}");
    }
}

/// Where a reference is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

/// Top-level modules and who refers to whom. Nodes are the library's modules, plus `main` (and
/// `bin/<name>`) for the binaries, which can only point into the library.
#[derive(Debug, Default)]
struct Graph {
    modules: BTreeSet<String>,
    edges: BTreeMap<String, BTreeMap<String, Vec<Site>>>,
    /// Paths through the root to something that is neither a module nor a re-export of one.
    root_items: Vec<(String, Site)>,
}

impl Graph {
    /// Reads every `.rs` file under `src`.
    fn read(src: &Path) -> Graph {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files.sort();
        let sources: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path.strip_prefix(src).unwrap().to_owned(), text)
            })
            .collect();
        Graph::from_sources(&sources)
    }

    /// Builds the graph from `(path relative to src/, contents)` pairs.
    fn from_sources(sources: &[(PathBuf, String)]) -> Graph {
        let mut graph = Graph::default();
        let mut reexports = BTreeMap::new();
        for (path, text) in sources {
            match place(path) {
                Place::Module { name, .. } => {
                    graph.modules.insert(name);
                }
                Place::LibRoot => reexports = root_reexports(&lex(text)),
                Place::Binary { .. } => {}
            }
        }
        for (path, text) in sources {
            let file = format!("src/{}", path.display());
            let tokens = lex(text);
            assert_balanced(&tokens, &file);
            let (from, depth, library) = match place(path) {
                Place::Module { name, depth } => (name, depth, true),
                Place::Binary { node } => (node, 0, false),
                Place::LibRoot => continue,
            };
            for reference in references(&tokens, depth) {
                // In a binary, `crate::` is the binary itself; only `hookhouse::` is the library.
                if !library && reference.root != Root::Library {
                    continue;
                }
                let site = Site { file: file.clone(), line: reference.line };
                let target = if graph.modules.contains(&reference.name) {
                    reference.name
                } else if let Some(module) = reexports.get(&reference.name) {
                    module.clone()
                } else {
                    graph.root_items.push((reference.name, site));
                    continue;
                };
                if target != from {
                    let sites = graph.edges.entry(from.clone()).or_default();
                    let sites = sites.entry(target).or_default();
                    // One line is one site, however many names its group imports.
                    if !sites.contains(&site) {
                        sites.push(site);
                    }
                }
            }
        }
        graph
    }

    fn edge_count(&self) -> usize {
        self.edges.values().map(BTreeMap::len).sum()
    }

    /// Every elementary cycle, each once, starting at its smallest module.
    fn cycles(&self) -> Vec<Vec<String>> {
        fn walk(graph: &Graph, start: &str, path: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
            let last = path.last().unwrap().clone();
            for next in graph.edges.get(&last).into_iter().flat_map(BTreeMap::keys) {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.to_owned());
                    found.push(cycle);
                } else if next.as_str() > start && !path.contains(next) {
                    path.push(next.clone());
                    walk(graph, start, path, found);
                    path.pop();
                }
            }
        }
        let mut found = Vec::new();
        for start in self.edges.keys() {
            walk(self, start, &mut vec![start.clone()], &mut found);
        }
        found.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        found
    }

    /// `None` without cycles; otherwise every cycle, and where each of its edges is written.
    fn cycle_report(&self) -> Option<String> {
        let cycles = self.cycles();
        if cycles.is_empty() {
            return None;
        }
        let mut report = format!(
            "{} import cycle(s) between top-level modules (layers must import downwards only):\n",
            cycles.len()
        );
        let mut in_cycles = BTreeSet::new();
        for cycle in &cycles {
            let _ = writeln!(report, "  {}", cycle.join(" -> "));
            for pair in cycle.windows(2) {
                in_cycles.insert((pair[0].clone(), pair[1].clone()));
            }
        }
        report.push_str("where those edges are written:\n");
        for (from, to) in &in_cycles {
            let sites = &self.edges[from][to];
            let shown: Vec<String> =
                sites.iter().take(6).map(|site| format!("{}:{}", site.file, site.line)).collect();
            let more = match sites.len().saturating_sub(shown.len()) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            let _ = writeln!(report, "  {from} -> {to}: {}{more}", shown.join(", "));
        }
        Some(report)
    }
}

impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "top-level module imports ({} modules):", self.modules.len())?;
        let nodes: BTreeSet<&String> = self.modules.iter().chain(self.edges.keys()).collect();
        for from in nodes {
            let targets: Vec<String> = self
                .edges
                .get(from)
                .into_iter()
                .flatten()
                .map(|(to, sites)| match sites.len() {
                    1 => format!("{to} (1 line)"),
                    n => format!("{to} ({n} lines)"),
                })
                .collect();
            if targets.is_empty() {
                writeln!(f, "  {from} imports no other module")?;
            } else {
                writeln!(f, "  {from} -> {}", targets.join(", "))?;
            }
        }
        for (name, site) in &self.root_items {
            writeln!(f, "  (not a module: `{name}` at {}:{})", site.file, site.line)?;
        }
        Ok(())
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// What a file under `src/` is.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// `lib.rs`: the crate root, not a module.
    LibRoot,
    /// A file of a binary crate (`main.rs`, `bin/**`): a node that points into the library.
    Binary { node: String },
    /// A file of top-level module `name`, `depth` modules below the root (`foo.rs` and
    /// `foo/mod.rs`: 1, `foo/bar.rs`: 2), which is how many `super::` reach the root.
    Module { name: String, depth: usize },
}

fn place(relative: &Path) -> Place {
    let parts: Vec<String> =
        relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
    match parts.as_slice() {
        [lib] if lib == "lib.rs" => Place::LibRoot,
        [main] if main == "main.rs" => Place::Binary { node: "main".to_owned() },
        [bin, name, ..] if bin == "bin" => {
            Place::Binary { node: format!("bin/{}", name.trim_end_matches(".rs")) }
        }
        [first, ..] => {
            let depth =
                parts.len() - usize::from(parts.last().is_some_and(|last| last == "mod.rs"));
            Place::Module { name: first.trim_end_matches(".rs").to_owned(), depth }
        }
        [] => unreachable!("a file has a name"),
    }
}

// ---------------------------------------------------------------------------------------------
// A small Rust lexer: identifiers, `::`, brackets and single punctuation; comments, string,
// raw string, byte and char literals and lifetimes are dropped.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open(char),
    Close(char),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let is_ident = |c: char| c == '_' || c.is_alphanumeric();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips to just past the closing quote of a string whose opening quote is at `i`.
    let skip_string = |mut i: usize, line: &mut usize| -> usize {
        i += 1;
        while i < chars.len() && chars[i] != '"' {
            if chars[i] == '\\' {
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    // Skips a raw string whose `r` is at `i`: r"..", r#".."#, ...
    let skip_raw = |mut i: usize, line: &mut usize| -> usize {
        i += 1;
        let mut hashes = 0;
        while at(i) == '#' {
            hashes += 1;
            i += 1;
        }
        i += 1; // the opening quote
        while i < chars.len() {
            if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                return i + 1 + hashes;
            }
            if chars[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i
    };
    // Whether a raw string starts at `i` (its `r`).
    let raw_at = |i: usize| {
        let mut j = i + 1;
        while at(j) == '#' {
            j += 1;
        }
        at(i) == 'r' && at(j) == '"'
    };
    while i < chars.len() {
        let c = chars[i];
        let push = |tokens: &mut Vec<Token>, tok: Tok| tokens.push(Token { tok, line });
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(i, &mut line),
            '\'' => {
                if at(i + 1) == '\\' {
                    // An escaped char: '\n', '\'', '\u{1F600}'.
                    i += 3;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    // A lifetime or a label.
                    i += 1;
                    while is_ident(at(i)) {
                        i += 1;
                    }
                }
            }
            'r' if raw_at(i) => i = skip_raw(i, &mut line),
            'b' | 'c' if raw_at(i + 1) => i = skip_raw(i + 1, &mut line),
            'b' | 'c' if at(i + 1) == '"' => i = skip_string(i + 1, &mut line),
            'b' if at(i + 1) == '\'' => {
                i += 2;
                if at(i) == '\\' {
                    i += 2;
                }
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            'r' if at(i + 1) == '#' && is_ident(at(i + 2)) => {
                // A raw identifier, r#type.
                let start = i + 2;
                i = start;
                while is_ident(at(i)) {
                    i += 1;
                }
                push(&mut tokens, Tok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() => {
                while is_ident(at(i)) {
                    i += 1;
                }
            }
            c if is_ident(c) => {
                let start = i;
                while is_ident(at(i)) {
                    i += 1;
                }
                push(&mut tokens, Tok::Ident(chars[start..i].iter().collect()));
            }
            ':' if at(i + 1) == ':' => {
                push(&mut tokens, Tok::PathSep);
                i += 2;
            }
            '{' | '(' | '[' => {
                push(&mut tokens, Tok::Open(c));
                i += 1;
            }
            '}' | ')' | ']' => {
                push(&mut tokens, Tok::Close(c));
                i += 1;
            }
            _ => {
                push(&mut tokens, Tok::Punct(c));
                i += 1;
            }
        }
    }
    tokens
}

/// A literal or comment the lexer misreads would almost always leave brackets unbalanced, so
/// this is the lexer's check on the real code.
fn assert_balanced(tokens: &[Token], file: &str) {
    let mut open = Vec::new();
    for token in tokens {
        match token.tok {
            Tok::Open(c) => open.push((c, token.line)),
            Tok::Close(c) => {
                let expected = match open.pop() {
                    Some(('{', _)) => '}',
                    Some(('(', _)) => ')',
                    Some(_) => ']',
                    None => panic!(
                        "the lexer misread {file}: `{c}` at line {} closes nothing",
                        token.line
                    ),
                };
                assert_eq!(c, expected, "the lexer misread {file}: `{c}` at line {}", token.line);
            }
            _ => {}
        }
    }
    if let Some((c, line)) = open.pop() {
        panic!("the lexer misread {file}: `{c}` at line {line} is never closed");
    }
}

// ---------------------------------------------------------------------------------------------
// Paths through the crate root.

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|token| &token.tok) {
        Some(Tok::Ident(name)) => Some(name),
        _ => None,
    }
}

fn is(tokens: &[Token], i: usize, tok: &Tok) -> bool {
    tokens.get(i).is_some_and(|token| &token.tok == tok)
}

/// One path of a use tree (or of an expression), with the name it is imported as.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UsePath {
    segments: Vec<String>,
    alias: Option<String>,
}

/// Parses the use tree (or expression path) starting at `i`, after its root and `::`; returns
/// every path in it and the index after it. Stops quietly at anything else (`(`, `<`, `;`).
fn use_tree(tokens: &[Token], mut i: usize, prefix: Vec<String>, out: &mut Vec<UsePath>) -> usize {
    let mut segments = prefix;
    loop {
        match tokens.get(i).map(|token| &token.tok) {
            Some(Tok::Ident(name)) if name != "as" => {
                segments.push(name.clone());
                i += 1;
                if is(tokens, i, &Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let mut alias = None;
                if ident(tokens, i) == Some("as") {
                    alias = ident(tokens, i + 1).map(str::to_owned);
                    i += 2;
                }
                out.push(UsePath { segments, alias });
                return i;
            }
            Some(Tok::Open('{')) => {
                i += 1;
                loop {
                    if is(tokens, i, &Tok::Close('}')) {
                        return i + 1;
                    }
                    let before = i;
                    i = use_tree(tokens, i, segments.clone(), out);
                    if is(tokens, i, &Tok::Punct(',')) {
                        i += 1;
                    } else if !is(tokens, i, &Tok::Close('}')) || i == before {
                        return i; // not a use tree after all
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                segments.push("*".to_owned());
                out.push(UsePath { segments, alias: None });
                return i + 1;
            }
            _ => {
                if !segments.is_empty() {
                    out.push(UsePath { segments, alias: None });
                }
                return i;
            }
        }
    }
}

/// Which crate's root a path starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// `crate::`, `$crate::`, or enough `super::` to climb out of the module.
    Own,
    /// `hookhouse::`.
    Library,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// The first segment after the root: a top-level module, or an item of the root.
    name: String,
    root: Root,
    line: usize,
}

/// Every path through the crate root in a file `depth` modules below it (inline `mod x { .. }`
/// blocks add to the depth for the `super::` inside them).
fn references(tokens: &[Token], depth: usize) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut braces = 0;
    // The brace depth of each enclosing inline module's body.
    let mut inline_modules: Vec<usize> = Vec::new();
    let mut module_body_at = None;
    for i in 0..tokens.len() {
        match &tokens[i].tok {
            Tok::Open('{') => {
                braces += 1;
                if module_body_at == Some(i) {
                    inline_modules.push(braces);
                }
            }
            Tok::Close('}') => {
                if inline_modules.last() == Some(&braces) {
                    inline_modules.pop();
                }
                braces -= 1;
            }
            Tok::Ident(keyword)
                if keyword == "mod"
                    && ident(tokens, i + 1).is_some()
                    && is(tokens, i + 2, &Tok::Open('{')) =>
            {
                module_body_at = Some(i + 2);
            }
            _ => {}
        }
        // Only at the start of a path: `a::crate` and `x::super` are not roots.
        let continues_path = i > 0 && is(tokens, i - 1, &Tok::PathSep) && {
            // `::hookhouse::..` (leading `::`) does start a path.
            i >= 2 && matches!(tokens[i - 2].tok, Tok::Ident(_) | Tok::Close(_) | Tok::Punct('>'))
        };
        if continues_path || !is(tokens, i + 1, &Tok::PathSep) {
            continue;
        }
        let (root, after) = match ident(tokens, i) {
            Some("crate") => (Root::Own, i + 2),
            Some("hookhouse") => (Root::Library, i + 2),
            Some("super") => {
                let mut climbed = 0;
                let mut j = i;
                while ident(tokens, j) == Some("super") && is(tokens, j + 1, &Tok::PathSep) {
                    climbed += 1;
                    j += 2;
                }
                if climbed < depth + inline_modules.len() {
                    continue; // still inside this top-level module
                }
                (Root::Own, j)
            }
            _ => continue,
        };
        let mut paths = Vec::new();
        use_tree(tokens, after, Vec::new(), &mut paths);
        for path in paths {
            let first = &path.segments[0];
            if first != "self" {
                found.push(Reference { name: first.clone(), root, line: tokens[i].line });
            }
        }
    }
    found
}

/// The `mod name;` declarations at the top of `lib.rs`.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    let tokens = lex(lib);
    let mut braces = 0usize;
    let mut modules = BTreeSet::new();
    for i in 0..tokens.len() {
        match &tokens[i].tok {
            Tok::Open(_) => braces += 1,
            Tok::Close(_) => braces -= 1,
            Tok::Ident(keyword) if keyword == "mod" && braces == 0 => {
                if let Some(name) = ident(&tokens, i + 1) {
                    modules.insert(name.to_owned());
                }
            }
            _ => {}
        }
    }
    modules
}

/// Names `lib.rs` imports or re-exports from a module (`pub use spool::Record;`), so that
/// `crate::Record` elsewhere counts as a use of `spool`.
fn root_reexports(tokens: &[Token]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut braces = 0usize;
    for i in 0..tokens.len() {
        match &tokens[i].tok {
            Tok::Open(_) => braces += 1,
            Tok::Close(_) => braces -= 1,
            Tok::Ident(keyword) if keyword == "use" && braces == 0 => {
                let mut start = i + 1;
                if is(tokens, start, &Tok::PathSep) {
                    start += 1;
                }
                let mut paths = Vec::new();
                use_tree(tokens, start, Vec::new(), &mut paths);
                for mut path in paths {
                    if matches!(path.segments[0].as_str(), "crate" | "self") {
                        path.segments.remove(0);
                    }
                    let (Some(module), Some(last)) = (path.segments.first(), path.segments.last())
                    else {
                        continue;
                    };
                    let name = path.alias.clone().unwrap_or_else(|| last.clone());
                    if path.segments.len() > 1 && name != "*" && name != "self" {
                        map.insert(name, module.clone());
                    }
                }
            }
            _ => {}
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// The check checked: it sees what the code's styles hide, and it fails on a cycle.

fn names(tokens: &[Token], depth: usize) -> Vec<String> {
    references(tokens, depth).into_iter().map(|reference| reference.name).collect()
}

#[test]
fn the_parser_finds_root_paths_and_skips_comments_and_literals() {
    let sample = r####"
//! A doc link is no import: [`crate::doc_link`].
use std::collections::HashMap;
use crate::{
    alpha::{self, One, nested::{Two, Three}},
    beta::Four as Quatre, // crate::line_comment
    self,
};
use crate::gamma;
/* block /* nested crate::nested_block */ crate::block */
const S: &str = "crate::in_string \" crate::after_escape";
const R: &str = r#"crate::in_raw "quoted" "#;
const B: &[u8] = br"crate::in_raw_bytes";
const Q: char = '"';
const E: char = '\'';
fn f<'a>(x: &'a str) -> char {
    let _ = crate::delta::call(x);
    let _ = crate::epsilon::Item::<u8>::new();
    'outer: loop { break 'outer; }
    '{'
}
mod tests {
    use super::*;
    use super::super::same_module_still;
    use super::super::super::zeta;
    fn g() { let _ = std::crate_like::crate_ish(); }
}
use super::eta_sibling;
fn h() { let _ = $crate::theta::x(); let _ = ::hookhouse::iota::y(); let _ = a::hookhouse::no(); }
"####;
    // As if in `src/m/n.rs`: two `super::` reach `m`, three from inside `mod tests` the root.
    let found = names(&lex(sample), 2);
    assert_eq!(
        found,
        [
            "alpha", "alpha", "alpha", "alpha", "beta", "gamma", "delta", "epsilon", "zeta",
            "theta", "iota"
        ]
    );
    // In `src/m.rs`, one `super::` is the root.
    assert_eq!(names(&lex("use super::{kappa, lambda::L};"), 1), ["kappa", "lambda"]);
    assert!(names(&lex("use super::kappa;"), 2).is_empty());

    let lines: Vec<usize> = references(&lex(sample), 2).iter().map(|r| r.line).collect();
    assert_eq!(lines[..6], [4, 4, 4, 4, 4, 9], "a group's paths are placed at its `crate`");
}

#[test]
fn files_map_to_top_level_modules() {
    let module = |name: &str, depth| Place::Module { name: name.to_owned(), depth };
    assert_eq!(place(Path::new("lib.rs")), Place::LibRoot);
    assert_eq!(place(Path::new("main.rs")), Place::Binary { node: "main".to_owned() });
    assert_eq!(place(Path::new("bin/tool.rs")), Place::Binary { node: "bin/tool".to_owned() });
    assert_eq!(place(Path::new("metrics.rs")), module("metrics", 1));
    assert_eq!(place(Path::new("spool/mod.rs")), module("spool", 1));
    assert_eq!(place(Path::new("spool/writer.rs")), module("spool", 2));
    assert_eq!(place(Path::new("sinks/postgres/mod.rs")), module("sinks", 2));
    assert_eq!(place(Path::new("pipeline/pseudonymise/embedded.rs")), module("pipeline", 3));
    assert_eq!(
        declared_modules(concat!(
            "//! mod not_this;\npub mod a;\nmod b;\n",
            "#[cfg(x)]\npub(crate) mod c;\nfn f() { mod inner {} }"
        )),
        BTreeSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()])
    );
}

#[test]
fn a_cycle_fails_the_check_with_every_cycle_and_its_sites() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_owned());
    let sources = [
        file("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d; pub use c::Shared;"),
        file("a.rs", "use crate::b::B;\nuse crate::d;"),
        file("b/mod.rs", "mod inner;\nuse crate::{\n    c::C,\n};"),
        file("b/inner.rs", "fn f() { super::super::a::run(); }"),
        file("c.rs", "pub struct Shared;"),
        file("d.rs", "// crate::a in a comment is no edge\nfn f() -> crate::Shared { todo!() }"),
        file("main.rs", "fn main() { hookhouse::a::run(); }"),
    ];
    let graph = Graph::from_sources(&sources);
    assert_eq!(graph.cycles(), [vec!["a", "b", "a"]]);
    let report = graph.cycle_report().expect("a cycle is reported");
    assert!(report.contains("  a -> b -> a\n"), "{report}");
    assert!(report.contains("  a -> b: src/a.rs:1\n"), "{report}");
    assert!(report.contains("  b -> a: src/b/inner.rs:1\n"), "{report}");
    // `crate::Shared` is `c`'s, re-exported by lib.rs; `main` points in and closes no cycle.
    assert!(graph.edges["d"].contains_key("c"), "{graph}");
    assert!(graph.edges["main"].contains_key("a"), "{graph}");

    // Longer cycles are found too, each once; a graph without one passes.
    let mut sources = sources.to_vec();
    sources[3] = file("b/inner.rs", "");
    sources[4] = file("c.rs", "pub struct Shared; use crate::a;");
    let graph = Graph::from_sources(&sources);
    assert_eq!(graph.cycles(), [vec!["a", "b", "c", "a"], vec!["a", "d", "c", "a"]]);
    sources[4] = file("c.rs", "pub struct Shared;");
    assert_eq!(Graph::from_sources(&sources).cycle_report(), None);
}
