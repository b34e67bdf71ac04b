//! The rules the import graph must keep: no cycle between files anywhere,
//! and in pilot-discovery's library every import pointing down the layers
//! of DESIGN.md (ARCHITECTURE.md lists them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::graph::{Edge, Target};
use super::tree::{CrateTree, ModPath};

/// The layers of a crate: a module may import from rows with a lower layer,
/// and from its own row; never from a row above, nor from another row of
/// the same layer. A module takes the row of the longest prefix of its path;
/// one that matches no row is an error, so a new module is placed on
/// purpose.
#[derive(Debug, Clone, Copy)]
pub struct Layers {
    /// (module path prefix, layer), bottom first.
    pub rows: &'static [(&'static str, u8)],
    /// Rows that are adapters: swappable, so only the wiring imports them.
    pub adapters: &'static [&'static str],
    /// Rows that wire the layers together, and may import adapters.
    pub wiring: &'static [&'static str],
}

/// pilot-discovery's library.
pub const DISCOVERY: Layers = Layers {
    rows: DISCOVERY_ROWS,
    adapters: &["configdir", "kubernetes"],
    wiring: &["server", "fuzzing"],
};

const DISCOVERY_ROWS: &[(&str, u8)] = &[
    // Helpers that know nothing of the mesh.
    ("lock", 0),
    ("memory", 0),
    ("xds::digest", 0),
    ("xds::hashing", 0),
    ("xds::wire", 0),
    ("metrics", 1),
    ("readiness", 1),
    ("xds::intern", 1),
    // What sources hold, and the adapters' contract.
    ("resource", 2),
    ("objects", 3),
    ("sources", 4),
    // The adapters.
    ("configdir", 5),
    ("kubernetes", 5),
    // From source state to pushes.
    ("snapshot", 6),
    ("push", 7),
    // xDS.
    ("xds::generate", 8),
    ("xds::context", 9),
    ("xds::protocol", 10),
    ("xds::server", 11),
    // The servers around it, then the wiring.
    ("accept", 12),
    ("debug_access", 12),
    ("tls", 12),
    ("debug", 13),
    ("http", 14),
    ("fuzzing", 15),
    ("server", 15),
];

/// A broken rule, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Files that import each other, directly or round a longer circle: each
/// strongly connected component of more than one file is one violation,
/// listing the imports inside it.
pub fn cycles(tree: &CrateTree, edges: &[Edge], root: &Path) -> Vec<Violation> {
    let mut next: BTreeMap<&Path, Vec<&Edge>> = BTreeMap::new();
    for e in edges {
        if let Target::File(_) = &e.to {
            next.entry(e.from.as_path()).or_default().push(e);
        }
    }
    let files: BTreeSet<&Path> = tree.modules.values().map(|m| m.file.as_path()).collect();
    let mut out = Vec::new();
    for component in components(&files, &next) {
        if component.len() < 2 {
            continue;
        }
        let inside: BTreeSet<&Path> = component.iter().copied().collect();
        let mut lines = Vec::new();
        for f in &component {
            for e in next.get(f).into_iter().flatten() {
                if let Target::File(to) = &e.to {
                    if inside.contains(to.as_path()) {
                        lines.push(format!(
                            "  {}:{} imports {}",
                            rel(root, &e.from),
                            e.line,
                            rel(root, to)
                        ));
                    }
                }
            }
        }
        out.push(Violation(format!(
            "{}: import cycle between {} files:\n{}",
            tree.name,
            component.len(),
            lines.join("\n")
        )));
    }
    out
}

/// Tarjan's strongly connected components, iteratively.
fn components<'a>(
    files: &BTreeSet<&'a Path>,
    next: &BTreeMap<&'a Path, Vec<&'a Edge>>,
) -> Vec<Vec<&'a Path>> {
    let succ = |f: &'a Path| -> Vec<&'a Path> {
        next.get(f)
            .into_iter()
            .flatten()
            .filter_map(|e| match &e.to {
                Target::File(t) => Some(t.as_path()),
                Target::Crate(_) => None,
            })
            .collect()
    };
    let mut index: BTreeMap<&Path, usize> = BTreeMap::new();
    let mut low: BTreeMap<&Path, usize> = BTreeMap::new();
    let mut on_stack: BTreeSet<&Path> = BTreeSet::new();
    let mut stack: Vec<&Path> = Vec::new();
    let mut out = Vec::new();
    let mut counter = 0;
    for &start in files {
        if index.contains_key(start) {
            continue;
        }
        // (node, its successors, the next successor to visit)
        let mut work: Vec<(&Path, Vec<&Path>, usize)> = vec![(start, succ(start), 0)];
        index.insert(start, counter);
        low.insert(start, counter);
        counter += 1;
        stack.push(start);
        on_stack.insert(start);
        while let Some((node, succs, pos)) = work.last_mut() {
            let node = *node;
            if let Some(&w) = succs.get(*pos) {
                *pos += 1;
                if !index.contains_key(w) {
                    index.insert(w, counter);
                    low.insert(w, counter);
                    counter += 1;
                    stack.push(w);
                    on_stack.insert(w);
                    work.push((w, succ(w), 0));
                } else if on_stack.contains(w) {
                    let l = low[node].min(index[w]);
                    low.insert(node, l);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _, _)) = work.last() {
                let l = low[parent].min(low[node]);
                low.insert(parent, l);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack.remove(w);
                    component.push(w);
                    if w == node {
                        break;
                    }
                }
                component.sort();
                out.push(component);
            }
        }
    }
    out
}

/// The row of `module` in `layers`: the longest prefix that matches it.
pub fn row_of(layers: &Layers, module: &[String]) -> Option<(&'static str, u8)> {
    let joined = module.join("::");
    layers
        .rows
        .iter()
        .filter(|(prefix, _)| joined == *prefix || joined.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// Imports that point up the layers, or across to another row of the same
/// layer, and modules that no row places.
pub fn directions(
    tree: &CrateTree,
    edges: &[Edge],
    layers: &Layers,
    root: &Path,
) -> Vec<Violation> {
    let mut module_of: BTreeMap<&Path, &ModPath> = BTreeMap::new();
    for (path, m) in &tree.modules {
        // A file's own module is the shortest path that names it (inline
        // modules inside it are longer).
        module_of
            .entry(m.file.as_path())
            .and_modify(|p| {
                if path.len() < p.len() {
                    *p = path;
                }
            })
            .or_insert(path);
    }
    let mut out = Vec::new();
    for (file, module) in &module_of {
        // A module that only declares its children imports nothing.
        let declares_only = tree
            .modules
            .get(*module)
            .is_some_and(|m| m.scope.uses.is_empty() && m.scope.paths.is_empty());
        if !module.is_empty() && !declares_only && row_of(layers, module).is_none() {
            out.push(Violation(format!(
                "{}: module {} ({}) has no layer; give it a row in the layering check's table",
                tree.name,
                module.join("::"),
                rel(root, file)
            )));
        }
    }
    for e in edges {
        let Target::File(to) = &e.to else { continue };
        let (Some(from_mod), Some(to_mod)) =
            (module_of.get(e.from.as_path()), module_of.get(to.as_path()))
        else {
            continue;
        };
        if from_mod.is_empty() {
            continue;
        }
        let (Some(from_row), Some(to_row)) = (row_of(layers, from_mod), row_of(layers, to_mod))
        else {
            if to_mod.is_empty() {
                out.push(Violation(format!(
                    "{}:{} imports the crate root {}: import the module that defines it",
                    rel(root, &e.from),
                    e.line,
                    rel(root, to)
                )));
            }
            continue;
        };
        if from_row.0 == to_row.0 {
            continue;
        }
        if layers.adapters.contains(&to_row.0) && !layers.wiring.contains(&from_row.0) {
            out.push(Violation(format!(
                "{}:{} imports {}: {} may not import the adapter {}; only {} may",
                rel(root, &e.from),
                e.line,
                rel(root, to),
                from_row.0,
                to_row.0,
                layers.wiring.join(" and ")
            )));
            continue;
        }
        if to_row.1 < from_row.1 {
            continue;
        }
        let how = if to_row.1 == from_row.1 {
            "beside it"
        } else {
            "above it"
        };
        out.push(Violation(format!(
            "{}:{} imports {}: {} (layer {}) may not import {} (layer {}, {})",
            rel(root, &e.from),
            e.line,
            rel(root, to),
            from_row.0,
            from_row.1,
            to_row.0,
            to_row.1,
            how
        )));
    }
    out
}

/// `path` relative to the workspace root, for messages.
pub fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
