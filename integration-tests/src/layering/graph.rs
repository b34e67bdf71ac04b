//! Which file of a crate each path in it leads to: the file-to-file import
//! graph, and the workspace crates each file names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::tree::{CrateTree, ModPath};

/// One import of a file by another file of the same crate, or of another
/// workspace crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: PathBuf,
    pub to: Target,
    /// The first line of `from` that imports `to`.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    File(PathBuf),
    /// A crate of the workspace, by its Rust name (`mesh_model`).
    Crate(String),
}

/// How deep re-exports and glob imports are followed; guards against a
/// `use` that leads back to itself.
const MAX_HOPS: usize = 16;

struct Resolver<'a> {
    tree: &'a CrateTree,
    crates: &'a BTreeSet<String>,
}

/// What a path resolves to before the rest of it is walked.
enum Start {
    Module(ModPath),
    Crate(String),
}

impl Resolver<'_> {
    /// Where a path written in `module` starts.
    fn start(&self, module: &[String], first: &str, hops: usize) -> Option<(Start, usize)> {
        if hops > MAX_HOPS {
            return None;
        }
        match first {
            "crate" => return Some((Start::Module(Vec::new()), 1)),
            "self" => return Some((Start::Module(module.to_vec()), 1)),
            "super" => {
                let mut parent = module.to_vec();
                parent.pop();
                return Some((Start::Module(parent), 1));
            }
            _ => {}
        }
        let m = self.tree.modules.get(module)?;
        if m.scope
            .file_children
            .iter()
            .chain(&m.scope.inline_children)
            .any(|c| c == first)
        {
            let mut child = module.to_vec();
            child.push(first.to_string());
            return Some((Start::Module(child), 1));
        }
        if let Some(u) = m
            .scope
            .uses
            .iter()
            .find(|u| u.name.as_deref() == Some(first))
        {
            return self.resolve(module, &u.path, hops + 1).map(|s| (s, 1));
        }
        // A glob import (`use super::*`) brings in the names of its module.
        for u in m.scope.uses.iter().filter(|u| u.name.is_none()) {
            if let Some(Start::Module(g)) = self.resolve(module, &u.path, hops + 1) {
                if g.as_slice() != module && self.names(&g, first) {
                    return self.start(&g, first, hops + 1);
                }
            }
        }
        if self.crates.contains(first) {
            return Some((Start::Crate(first.to_string()), 1));
        }
        None
    }

    /// Whether `module` has a child module or an imported name `name`.
    fn names(&self, module: &[String], name: &str) -> bool {
        self.tree.modules.get(module).is_some_and(|m| {
            m.scope
                .file_children
                .iter()
                .chain(&m.scope.inline_children)
                .any(|c| c == name)
                || m.scope.uses.iter().any(|u| u.name.as_deref() == Some(name))
        })
    }

    /// The module (or crate) a path written in `module` leads to: as deep
    /// as its segments name modules, through re-exports to where an item is
    /// defined.
    fn resolve(&self, module: &[String], path: &[String], hops: usize) -> Option<Start> {
        let first = path.first()?;
        let (mut at, mut i) = self.start(module, first, hops)?;
        while let Start::Module(m) = &at {
            // `super::super::x`
            if path.get(i).map(String::as_str) == Some("super") && i > 0 && path[i - 1] == "super" {
                let mut parent = m.clone();
                parent.pop();
                at = Start::Module(parent);
                i += 1;
                continue;
            }
            let Some(seg) = path.get(i) else { break };
            let Some(here) = self.tree.modules.get(m) else {
                break;
            };
            if here
                .scope
                .file_children
                .iter()
                .chain(&here.scope.inline_children)
                .any(|c| c == seg)
            {
                let mut child = m.clone();
                child.push(seg.clone());
                at = Start::Module(child);
                i += 1;
                continue;
            }
            // A re-export: follow it to where the item is.
            if let Some(u) = here
                .scope
                .uses
                .iter()
                .find(|u| u.public && u.name.as_deref() == Some(seg.as_str()))
            {
                let mut rest = u.path.clone();
                rest.extend(path[i + 1..].iter().cloned());
                return self.resolve(&m.clone(), &rest, hops + 1);
            }
            break;
        }
        Some(at)
    }
}

/// Every edge of the crate: each file's imports of other files (itself
/// excluded) and of the workspace crates in `crates`, one edge per pair, at
/// the first line that makes it.
pub fn edges(tree: &CrateTree, crates: &BTreeSet<String>) -> Vec<Edge> {
    let resolver = Resolver { tree, crates };
    let mut first: BTreeMap<(PathBuf, Target), usize> = BTreeMap::new();
    for (path, module) in &tree.modules {
        let uses = module.scope.uses.iter().map(|u| (&u.path, u.line));
        let paths = module.scope.paths.iter().map(|p| (&p.path, p.line));
        for (p, line) in uses.chain(paths) {
            let target = match resolver.resolve(path, p, 0) {
                Some(Start::Module(m)) => match tree.file_of(&m) {
                    Some(f) if f != module.file => Target::File(f.to_path_buf()),
                    _ => continue,
                },
                Some(Start::Crate(c)) => Target::Crate(c),
                None => continue,
            };
            first
                .entry((module.file.clone(), target))
                .and_modify(|l| *l = (*l).min(line))
                .or_insert(line);
        }
    }
    first
        .into_iter()
        .map(|((from, to), line)| Edge { from, to, line })
        .collect()
}
