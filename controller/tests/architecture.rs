//! The controller's module structure, checked: a request goes one way (api → admission →
//! engine → jobs), and no module imports one that imports it back (issue #17).
//!
//! Reads the crate's sources as text: every `crate::<module>` a file's code (not its
//! comments) names is an edge from its top-level module to that one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Top-level module → the top-level modules it names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Code only: a doc link to another module is not a dependency on it.
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let edges = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                edges.insert(name);
            }
        }
    }
    graph
}

/// A circle through `from`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let last = path.last().unwrap().clone();
        for next in graph.get(&last).into_iter().flatten() {
            if *next == path[0] {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_owned()];
    walk(graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = imports();
    assert!(
        graph.len() >= 10,
        "the module graph was not read: {graph:?}"
    );
    for module in graph.keys() {
        if let Some(circle) = circle(&graph, module) {
            panic!("import circle: {}", circle.join(" → "));
        }
    }
}

#[test]
fn a_request_goes_one_way() {
    let graph = imports();
    let names = |module: &str| graph.get(module).cloned().unwrap_or_default();
    // The HTTP layers are the top: nothing below them knows them. The Service Manager API
    // (`/v1`) sits beside the OSB API and parses requests with its helpers.
    for (module, edges) in &graph {
        if module != "server" && module != "service_manager" {
            assert!(!edges.contains("api"), "{module} imports api");
        }
        if module != "server" {
            assert!(
                !edges.contains("service_manager"),
                "{module} imports service_manager"
            );
        }
    }
    // The engine and what it holds never reach back up to the request path.
    for lower in [
        "engine", "jobs", "catalog", "metrics", "locks", "error", "schemas",
    ] {
        let edges = names(lower);
        for upper in [
            "api",
            "admission",
            "core",
            "server",
            "replicas",
            "admin",
            "service_manager",
        ] {
            assert!(!edges.contains(upper), "{lower} imports {upper}");
        }
    }
    // Admission decides; it does not speak HTTP.
    assert!(!names("admission").contains("api"));
    // And the checker sees real edges (the test would pass on an empty graph otherwise).
    assert!(names("api").contains("admission"), "{graph:?}");
    assert!(names("admission").contains("engine"), "{graph:?}");
}
