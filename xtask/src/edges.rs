//! `cargo xtask lint`: the imports between the stages of `pktloss-user/src/` against the
//! dependency table of `docs/architecture.md` (the table is the allowed edges: an import it
//! does not list fails, and so does a listed edge no import makes), and no circle among them;
//! no circle among the modules of `xtask/src/` and `bench/src/` either.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use anyhow::{Context as _, Result, bail};

type Edges = BTreeMap<String, BTreeSet<String>>;

/// The other crates whose modules must not import each other in a circle (no table: any
/// one-way edge is allowed).
const TOOLS: &[&str] = &["xtask/src", "bench/src"];

/// Check the edges; each difference is one line of the error.
pub(crate) fn check(root: &Path) -> Result<()> {
    let doc = fs::read_to_string(root.join("docs/architecture.md")).context("reading docs/architecture.md")?;
    let (documented, everything) = documented(&doc)?;
    let actual = actual(&root.join("pktloss-user/src"))?;
    let mut problems = Vec::new();
    for (m, uses) in &actual {
        if everything.contains(m) {
            continue;
        }
        let allowed = documented.get(m).cloned().unwrap_or_default();
        for u in uses.difference(&allowed) {
            problems.push(format!("{m} uses {u}: not in docs/architecture.md's dependency table"));
        }
        for u in allowed.difference(uses) {
            problems.push(format!("{m} does not use {u}: docs/architecture.md's dependency table says it does"));
        }
    }
    for m in documented.keys().filter(|m| !actual.contains_key(*m) && !everything.contains(*m)) {
        if !documented[m].is_empty() {
            problems.push(format!("{m}: no such module, or it uses nothing"));
        }
    }
    if let Some(cycle) = find_cycle(&actual) {
        problems.push(format!("import circle: {}", cycle.join(" -> ")));
    }
    for tool in TOOLS {
        if let Some(cycle) = find_cycle(&self::actual(&root.join(tool))?) {
            problems.push(format!("import circle in {tool}: {}", cycle.join(" -> ")));
        }
    }
    if !problems.is_empty() {
        bail!("module edges:\n  {}", problems.join("\n  "));
    }
    println!(
        "module edges: {} stages, as docs/architecture.md says, no circle; no circle in {}",
        actual.len(),
        TOOLS.join(", ")
    );
    Ok(())
}

/// The rows of the table under "| module | uses |": the modules of the first column, the
/// backquoted modules of the second outside parentheses; "everything" for a module that may
/// use any.
fn documented(doc: &str) -> Result<(Edges, BTreeSet<String>)> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with("| module | uses |"));
    if lines.next().is_none() {
        bail!("docs/architecture.md has no `| module | uses |` table");
    }
    let mut edges = Edges::new();
    let mut everything = BTreeSet::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cols: Vec<&str> = line.split('|').collect();
        let (Some(mods), Some(uses)) = (cols.get(1), cols.get(2)) else { continue };
        let mut depth = 0u32;
        let outside: String = uses
            .chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        let used = quoted(&outside);
        for m in quoted(mods) {
            if uses.contains("everything") {
                everything.insert(m.clone());
            }
            edges.entry(m).or_default().extend(used.iter().cloned());
        }
    }
    Ok((edges, everything))
}

fn quoted(s: &str) -> BTreeSet<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The stage each file of `src` belongs to, and the stages its code (not its tests, not its
/// comments) names with `crate::`.
fn actual(src: &Path) -> Result<Edges> {
    let stages: BTreeSet<String> = fs::read_dir(src)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
            (!matches!(stem.as_str(), "lib" | "main" | "testdata")).then_some(stem)
        })
        .collect();
    let mut edges = Edges::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(fs::read_dir(&p)?.filter_map(Result::ok).map(|e| e.path()));
            continue;
        }
        let rel = p.strip_prefix(src)?.to_string_lossy().into_owned();
        let stage = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_owned();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if !stages.contains(&stage) || !name.ends_with(".rs") || matches!(name.as_ref(), "tests.rs" | "fixtures.rs") {
            continue;
        }
        let text = fs::read_to_string(&p)?;
        let uses = edges.entry(stage.clone()).or_default();
        for u in names(&text) {
            let u = if u == "Error" { "error".to_owned() } else { u };
            if u != stage && stages.contains(&u) {
                uses.insert(u);
            }
        }
    }
    Ok(edges)
}

/// The first path segments after `crate::` (and inside `use crate::{...}`) in code before the
/// first `#[cfg(test)]`, comments left out.
fn names(text: &str) -> BTreeSet<String> {
    // A `#[cfg(test)]` item of one line is left out; one that opens a block (the tests at the
    // end of a file) ends the code.
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "#[cfg(test)]" {
            match lines.next() {
                Some(item) if item.trim_end().ends_with('{') => break,
                _ => continue,
            }
        }
        if !l.trim_start().starts_with("//") {
            code.push_str(l);
            code.push('\n');
        }
    }
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level items of the group.
            let mut depth = 0u32;
            let mut at_top = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_top = true,
                    c if at_top && !c.is_whitespace() => {
                        at_top = false;
                        out.insert(ident(&group[j..]));
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// A circle among the edges, if any.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        edges: &'a Edges,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut c: Vec<String> = path[i..].iter().map(|s| (*s).to_owned()).collect();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n);
        for u in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(u, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_table_and_the_imports() {
        let doc = "| module | uses |\n|---|---|\n| `model`, `error` | nothing |\n| `kernel` | `decode` (to hand `model`), `host` |\n| `cli` | everything |\n";
        let (d, all) = documented(doc).expect("table");
        assert_eq!(d["kernel"], ["decode", "host"].map(str::to_owned).into());
        assert!(d["model"].is_empty() && all.contains("cli"));
        let n = names(
            "use crate::{a::b, c::{d, e}, Error};\n// crate::z\nfn f() { crate::g::h(); }\n#[cfg(test)]\nmod t { use crate::t; }",
        );
        assert_eq!(n, ["Error", "a", "c", "g"].map(str::to_owned).into());
        let mut e = Edges::new();
        e.entry("a".into()).or_default().insert("b".into());
        e.entry("b".into()).or_default().insert("a".into());
        assert_eq!(find_cycle(&e), Some(vec!["a".into(), "b".into(), "a".into()]));
    }
}

#[cfg(test)]
mod this_tree {
    /// The tree as it is: its edges are the documented ones.
    #[test]
    fn the_tree_matches_its_documented_edges() {
        super::check(&crate::util::workspace_root()).expect("module edges");
    }
}
