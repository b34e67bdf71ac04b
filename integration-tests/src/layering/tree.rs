//! A crate's module tree, read from its root file down through every
//! `mod name;` to the file that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::parse::{parse, Scope};

/// A module path inside its crate: `["xds", "cds"]`; the root is empty.
pub type ModPath = Vec<String>;

#[derive(Debug, Clone)]
pub struct Module {
    pub file: PathBuf,
    pub scope: Scope,
}

/// One crate: a library, a binary, a test or a benchmark target.
#[derive(Debug, Clone)]
pub struct CrateTree {
    /// Names the target in reports: `pilot-discovery (lib)`.
    pub name: String,
    pub modules: BTreeMap<ModPath, Module>,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: `mod {module};` has neither {} nor {}", .candidates[0].display(), .candidates[1].display())]
    MissingModule {
        file: PathBuf,
        module: String,
        candidates: [PathBuf; 2],
    },
}

impl CrateTree {
    /// Reads the crate whose root file is `root`.
    pub fn read(name: &str, root: &Path) -> Result<CrateTree, TreeError> {
        let mut modules = BTreeMap::new();
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        read_file(root, Vec::new(), dir, &mut modules)?;
        Ok(CrateTree {
            name: name.to_string(),
            modules,
        })
    }

    pub fn file_of(&self, module: &[String]) -> Option<&Path> {
        self.modules.get(module).map(|m| m.file.as_path())
    }
}

/// Adds the modules of `file` (module `path`, its children's files under
/// `dir`) and of every file it declares.
fn read_file(
    file: &Path,
    path: ModPath,
    dir: PathBuf,
    modules: &mut BTreeMap<ModPath, Module>,
) -> Result<(), TreeError> {
    let src = std::fs::read_to_string(file).map_err(|source| TreeError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    for scope in parse(&src) {
        let mut module = path.clone();
        module.extend(scope.inline.iter().cloned());
        let mut child_dir = dir.clone();
        child_dir.extend(scope.inline.iter());
        for child in &scope.file_children {
            let candidates = [
                child_dir.join(format!("{child}.rs")),
                child_dir.join(child).join("mod.rs"),
            ];
            let Some(child_file) = candidates.iter().find(|c| c.is_file()).cloned() else {
                return Err(TreeError::MissingModule {
                    file: file.to_path_buf(),
                    module: child.clone(),
                    candidates,
                });
            };
            let mut child_path = module.clone();
            child_path.push(child.clone());
            read_file(&child_file, child_path, child_dir.join(child), modules)?;
        }
        modules.insert(
            module,
            Module {
                file: file.to_path_buf(),
                scope,
            },
        );
    }
    Ok(())
}
