//! The layering check `make lint` runs: reads every crate target of the
//! workspace from its source, resolves each path to the file it leads to,
//! and reports import cycles between files and pilot-discovery imports that
//! run against the layers.
//!
//! It reads source text, not compiler output, so it needs no build; paths
//! hidden in macros other than plain `name::path` tokens are not seen.

mod graph;
mod lexer;
mod parse;
mod rules;
mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use rules::{Layers, Violation, DISCOVERY};

#[derive(Debug, thiserror::Error)]
pub enum LayeringError {
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no `members = [...]` list")]
    NoMembers(PathBuf),
}

/// The crate whose library keeps the layers.
const LAYERED: &str = "pilot-discovery";

/// Every violation in the workspace at `root`, sorted.
pub fn check(root: &Path) -> Result<Vec<Violation>, LayeringError> {
    check_with(root, &DISCOVERY)
}

/// [`check`] with `layers` for pilot-discovery's library.
pub fn check_with(root: &Path, layers: &Layers) -> Result<Vec<Violation>, LayeringError> {
    let members = members(root)?;
    let crates: BTreeSet<String> = members.iter().map(|m| m.replace('-', "_")).collect();
    let mut out = Vec::new();
    for member in &members {
        for (name, file) in targets(&root.join(member), member)? {
            let tree = tree::CrateTree::read(&name, &file)?;
            let edges = graph::edges(&tree, &crates);
            out.extend(rules::cycles(&tree, &edges, root));
            if member == LAYERED && name.ends_with("(lib)") {
                out.extend(rules::directions(&tree, &edges, layers, root));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The workspace members named in the root `Cargo.toml`.
fn members(root: &Path) -> Result<Vec<String>, LayeringError> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|source| LayeringError::Read {
        path: manifest.clone(),
        source,
    })?;
    let start = text
        .find("members")
        .and_then(|i| text[i..].find('[').map(|j| i + j + 1))
        .ok_or_else(|| LayeringError::NoMembers(manifest.clone()))?;
    let end = text[start..]
        .find(']')
        .map(|j| start + j)
        .ok_or_else(|| LayeringError::NoMembers(manifest.clone()))?;
    Ok(text[start..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect())
}

/// Each target of a member by Cargo's conventions: the library, the main
/// binary, and every file of `src/bin`, `tests`, `benches` and `examples`.
fn targets(dir: &Path, member: &str) -> Result<Vec<(String, PathBuf)>, LayeringError> {
    let mut out = Vec::new();
    for (file, kind) in [("src/lib.rs", "lib"), ("src/main.rs", "bin")] {
        let path = dir.join(file);
        if path.is_file() {
            out.push((format!("{member} ({kind})"), path));
        }
    }
    for sub in ["src/bin", "tests", "benches", "examples"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        let entries = std::fs::read_dir(&d).map_err(|source| LayeringError::Read {
            path: d.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        for f in files {
            out.push((format!("{member} ({})", rules::rel(dir, &f)), f));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace with a layered crate whose files are `files`.
    fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |path: &str, text: &str| {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\n    \"mesh-model\",\n    \"pilot-discovery\",\n]\n",
        );
        write("mesh-model/src/lib.rs", "pub struct Service;\n");
        for (path, text) in files {
            write(&format!("pilot-discovery/src/{path}"), text);
        }
        dir
    }

    const LIB: &str = "pub mod sources;\npub mod configdir;\npub mod kubernetes;\npub mod push;\n";

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("lib.rs", LIB),
            (
                "sources.rs",
                "use mesh_model::Service;\npub struct SourceEvent;\n",
            ),
            ("configdir/mod.rs", "mod folder;\npub use folder::Folder;\n"),
            (
                "configdir/folder.rs",
                "use crate::sources::SourceEvent;\npub struct Folder;\n",
            ),
            (
                "kubernetes.rs",
                "pub fn start(e: crate::sources::SourceEvent) {}\n",
            ),
            ("push/mod.rs", "pub mod debounce;\n"),
            (
                "push/debounce.rs",
                "use crate::sources::SourceEvent;\nfn f() { mesh_model::Service; }\n",
            ),
        ]
    }

    /// A small table in the shape of the real one.
    const LAYERS: Layers = Layers {
        rows: &[
            ("resource", 1),
            ("objects", 1),
            ("sources", 2),
            ("configdir", 3),
            ("kubernetes", 3),
            ("push", 5),
        ],
        adapters: &["configdir", "kubernetes"],
        wiring: &["server", "fuzzing"],
    };

    fn check_files(files: &[(&str, &str)]) -> Vec<String> {
        let dir = workspace(files);
        check_with(dir.path(), &LAYERS)
            .expect("check runs")
            .into_iter()
            .map(|v| v.0)
            .collect()
    }

    #[test]
    fn imports_down_the_layers_pass() {
        assert_eq!(check_files(&good()), Vec::<String>::new());
    }

    #[test]
    fn a_back_import_fails_naming_file_line_and_layers() {
        let mut files = good();
        files[1] = (
            "sources.rs",
            "pub struct SourceEvent;\nfn f() { let _ = crate::push::debounce::X; }\n",
        );
        // push/debounce.rs imports sources.rs, so the back-import also
        // closes a cycle.
        assert_eq!(
            check_files(&files),
            [
                "pilot-discovery (lib): import cycle between 2 files:\n  pilot-discovery/src/push/debounce.rs:1 imports pilot-discovery/src/sources.rs\n  pilot-discovery/src/sources.rs:2 imports pilot-discovery/src/push/debounce.rs",
                "pilot-discovery/src/sources.rs:2 imports pilot-discovery/src/push/debounce.rs: sources (layer 2) may not import push (layer 5, above it)",
            ]
        );
    }

    #[test]
    fn a_row_importing_another_of_its_layer_fails() {
        let mut files = good();
        files[0] = ("lib.rs", "pub mod sources;\npub mod configdir;\npub mod kubernetes;\npub mod push;\npub mod resource;\npub mod objects;\n");
        files.push(("resource.rs", "pub struct Resource;\n"));
        files.push(("objects.rs", "use crate::resource::Resource;\n"));
        let v = check_files(&files);
        assert_eq!(
            v,
            ["pilot-discovery/src/objects.rs:1 imports pilot-discovery/src/resource.rs: objects (layer 1) may not import resource (layer 1, beside it)"]
        );
    }

    #[test]
    fn an_adapter_importing_the_other_fails() {
        let mut files = good();
        files[4] = (
            "kubernetes.rs",
            "use crate::configdir::Folder;\npub fn start() {}\n",
        );
        let v = check_files(&files);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("kubernetes may not import the adapter configdir"),
            "{v:?}"
        );
        // The import went through a re-export to the file defining it.
        assert!(
            v[0].contains("imports pilot-discovery/src/configdir/folder.rs"),
            "{v:?}"
        );
    }

    #[test]
    fn only_the_wiring_imports_an_adapter() {
        let mut files = good();
        files[6] = ("push/debounce.rs", "use crate::configdir::Folder;\n");
        let v = check_files(&files);
        assert_eq!(
            v,
            ["pilot-discovery/src/push/debounce.rs:1 imports pilot-discovery/src/configdir/folder.rs: push may not import the adapter configdir; only server and fuzzing may"]
        );
    }

    #[test]
    fn files_importing_each_other_are_a_cycle_even_through_super() {
        let mut files = good();
        files[2] = (
            "configdir/mod.rs",
            "mod folder;\npub use folder::Folder;\npub struct Shared;\n",
        );
        files[3] = (
            "configdir/folder.rs",
            "use super::Shared;\npub struct Folder;\n",
        );
        let v = check_files(&files);
        assert_eq!(
            v,
            ["pilot-discovery (lib): import cycle between 2 files:\n  pilot-discovery/src/configdir/folder.rs:1 imports pilot-discovery/src/configdir/mod.rs\n  pilot-discovery/src/configdir/mod.rs:2 imports pilot-discovery/src/configdir/folder.rs"]
        );
    }

    #[test]
    fn a_test_module_using_its_parent_is_no_cycle() {
        let mut files = good();
        files[3] = (
            "configdir/folder.rs",
            "use crate::sources::SourceEvent;\npub struct Folder;\n#[cfg(test)]\nmod tests;\n",
        );
        files.push((
            "configdir/folder/tests.rs",
            "use super::*;\nfn t() { Folder; }\n",
        ));
        assert_eq!(check_files(&files), Vec::<String>::new());
    }

    #[test]
    fn a_module_with_no_layer_is_reported() {
        let mut files = good();
        files[0] = ("lib.rs", "pub mod sources;\npub mod configdir;\npub mod kubernetes;\npub mod push;\npub mod stray;\n");
        files.push(("stray.rs", "use crate::sources::SourceEvent;\n"));
        let v = check_files(&files);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("module stray (pilot-discovery/src/stray.rs) has no layer"),
            "{v:?}"
        );
    }

    #[test]
    fn a_declared_module_without_its_file_is_an_error() {
        let mut files = good();
        files[5] = ("push/mod.rs", "pub mod debounce;\npub mod gone;\n");
        let dir = workspace(&files);
        let e = check(dir.path()).expect_err("missing file");
        assert!(e.to_string().contains("`mod gone;` has neither"), "{e}");
    }
}
