//! The state of a watched config folder, file by file.
//!
//! Nothing valid is ever lost to a bad edit: a file that cannot be read or
//! parsed keeps its last good contents, and a rejected document keeps the last
//! good version of the resource it names.

use std::collections::btree_map::Entry;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_model::ConfigKey;

use super::parse::parse_file;
use super::watch::Changes;
use crate::objects::ConfigError;
use crate::resource::{Origins, Resource, ResourceMap};

/// Files larger than this are refused rather than parsed: a config folder
/// holds rules, not data, and a runaway file must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct FileState {
    /// Digest of the contents last looked at, good or bad, so an unchanged
    /// file is neither parsed nor reported again.
    digest: u64,
    /// The path is a symlink: what it resolves to can change with no event
    /// naming it (a Kubernetes ConfigMap mount swaps a directory link).
    link: bool,
    /// The resources currently in force from this file.
    resources: BTreeMap<ConfigKey, Resource>,
    /// The problems found the last time the file changed.
    errors: Vec<ConfigError>,
}

/// What a reload found.
#[derive(Debug, Default)]
pub struct Reload {
    /// The resources whose version in force was added, edited or removed.
    pub changed: Vec<ConfigKey>,
    /// Problems found in files that changed since the last reload, and
    /// resources defined twice.
    pub errors: Vec<ConfigError>,
    /// Every file was looked at, not only those the change named.
    pub rescanned: bool,
}

impl Reload {
    pub fn is_changed(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// What one file's refresh changed.
struct FileChange {
    /// Its resources before, if they were replaced.
    previous: Option<BTreeMap<ConfigKey, Resource>>,
    /// The problems found in its new contents.
    errors: Vec<ConfigError>,
}

#[derive(Debug)]
pub struct ConfigFolder {
    dir: PathBuf,
    files: BTreeMap<Arc<Path>, FileState>,
    /// The files defining each resource, in path order: the first one's
    /// definition is in force.
    defined: BTreeMap<ConfigKey, Vec<Arc<Path>>>,
    merged: ResourceMap,
    /// The file each resource in `merged` was read from. Persistent, as
    /// `merged` is, so publishing the folder's state does not copy it.
    origins: Origins,
    /// Second definitions of a resource, ignored: reported for as long as
    /// they are there, not only when they first change the merge.
    duplicates: BTreeMap<ConfigKey, Vec<ConfigError>>,
}

fn is_config_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    !hidden && matches!(ext.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json")
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl ConfigFolder {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ConfigFolder {
            dir: dir.into(),
            files: BTreeMap::new(),
            defined: BTreeMap::new(),
            merged: ResourceMap::new(),
            origins: Origins::new(),
            duplicates: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The resources in force, by key.
    pub fn resources(&self) -> &ResourceMap {
        &self.merged
    }

    /// The file each resource in force was read from.
    pub fn files(&self) -> Origins {
        self.origins.clone()
    }

    /// Every problem currently known, file by file, then the duplicates.
    pub fn current_errors(&self) -> impl Iterator<Item = &ConfigError> {
        self.files
            .values()
            .flat_map(|f| f.errors.iter())
            .chain(self.duplicates.values().flatten())
    }

    /// Re-reads the folder. Fails only if the folder itself cannot be listed,
    /// in which case everything stays as it was.
    pub fn reload(&mut self) -> std::io::Result<Reload> {
        let mut paths = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            // Follows symlinks, as Kubernetes ConfigMap mounts are made of them.
            if is_config_file(&path) && path.is_file() {
                paths.insert(path);
            }
        }
        let gone: Vec<Arc<Path>> = self
            .files
            .keys()
            .filter(|p| !paths.contains(p.as_ref()))
            .cloned()
            .collect();
        let mut update = Update::default();
        for path in gone {
            self.forget(&path, &mut update);
        }
        for path in paths {
            self.refresh(&path, &mut update);
        }
        let mut reload = self.settle(update);
        reload.rescanned = true;
        Ok(reload)
    }

    /// Re-reads what `changes` names. The whole folder is re-read when the
    /// events may not name every file that changed: they were lost, or a file
    /// is a symlink whose target can change under it.
    pub fn reload_changed(&mut self, changes: &Changes) -> std::io::Result<Reload> {
        let outside = changes
            .paths
            .iter()
            .any(|p| p.parent() != Some(self.dir.as_path()));
        if changes.rescan || outside || self.files.values().any(|f| f.link) {
            return self.reload();
        }
        let mut update = Update::default();
        // Anything else named (an editor's temporary file, a hidden file) is
        // not config and changes nothing.
        for path in changes.paths.iter().filter(|p| is_config_file(p)) {
            if path.is_file() {
                self.refresh(path, &mut update);
            } else {
                self.forget(path, &mut update);
            }
        }
        Ok(self.settle(update))
    }

    /// Brings one present file up to date.
    fn refresh(&mut self, path: &Path, update: &mut Update) {
        let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let key: Arc<Path> = match self.files.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => Arc::from(path),
        };
        let state = self.files.entry(key.clone()).or_default();
        state.link = link;
        let Some(change) = refresh_file(path, state) else {
            return;
        };
        update.errors.extend(change.errors);
        if let Some(previous) = change.previous {
            for k in previous.keys() {
                unlist(&mut self.defined, k, path);
            }
            for k in state.resources.keys() {
                let files = self.defined.entry(k.clone()).or_default();
                if let Err(at) = files.binary_search(&key) {
                    files.insert(at, key.clone());
                }
            }
            update.touched.extend(previous.into_keys());
            update.touched.extend(state.resources.keys().cloned());
        }
    }

    /// Drops a file that is gone, with its resources.
    fn forget(&mut self, path: &Path, update: &mut Update) {
        if let Some(state) = self.files.remove(path) {
            for k in state.resources.keys() {
                unlist(&mut self.defined, k, path);
            }
            update.touched.extend(state.resources.into_keys());
        }
    }

    /// Puts in force, for every resource a file change touched, the first
    /// file's definition, and lists the others as duplicates.
    fn settle(&mut self, update: Update) -> Reload {
        let Update {
            mut errors,
            touched,
        } = update;
        let mut changed = Vec::new();
        for key in touched {
            let files = self
                .defined
                .get(&key)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let first = files.first().and_then(|f| {
                let r = self.files.get(f)?.resources.get(&key)?;
                Some((f.clone(), r.clone()))
            });
            let duplicates: Vec<ConfigError> = match files.split_first() {
                Some((first, others)) => others.iter().map(|f| duplicate(f, &key, first)).collect(),
                None => Vec::new(),
            };
            let before = self.duplicates.remove(&key).unwrap_or_default();
            // Reported once, when it appears; listed while it lasts.
            errors.extend(duplicates.iter().filter(|d| !before.contains(d)).cloned());
            if !duplicates.is_empty() {
                self.duplicates.insert(key.clone(), duplicates);
            }

            let file = first.as_ref().map(|(f, _)| f.clone());
            if self.origins.get(&key) != file.as_ref() {
                match file {
                    Some(f) => self.origins.insert(key.clone(), f),
                    None => self.origins.remove(&key),
                };
            }
            if self.merged.get(&key) == first.as_ref().map(|(_, r)| r) {
                continue;
            }
            match first {
                Some((_, r)) => self.merged.insert(key.clone(), r),
                None => self.merged.remove(&key),
            };
            changed.push(key);
        }
        Reload {
            changed,
            errors,
            rescanned: false,
        }
    }
}

/// What a reload's file refreshes have done so far.
#[derive(Default)]
struct Update {
    errors: Vec<ConfigError>,
    /// Resources a changed file defined before or defines now.
    touched: BTreeSet<ConfigKey>,
}

fn unlist(defined: &mut BTreeMap<ConfigKey, Vec<Arc<Path>>>, key: &ConfigKey, path: &Path) {
    if let Some(files) = defined.get_mut(key) {
        files.retain(|f| f.as_ref() != path);
        if files.is_empty() {
            defined.remove(key);
        }
    }
}

fn duplicate(file: &Path, key: &ConfigKey, first: &Path) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        document: None,
        resource: Some(key.clone()),
        field: Some("metadata.name".into()),
        message: format!(
            "duplicate resource, ignored: already defined in {}",
            first.display()
        ),
    }
}

/// Brings one file's state up to date. Returns what changed if the file's
/// contents did, `None` if they did not.
fn refresh_file(path: &Path, state: &mut FileState) -> Option<FileChange> {
    let problem = |state: &mut FileState, message: String| {
        state.errors = vec![ConfigError::file(path, message)];
        Some(FileChange {
            previous: None,
            errors: state.errors.clone(),
        })
    };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return problem(state, format!("cannot read: {e}")),
    };
    if size > MAX_FILE_BYTES {
        let d = digest(format!("too-large:{size}").as_bytes());
        if d == state.digest {
            return None;
        }
        state.digest = d;
        return problem(state, format!(
            "file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit; its previous contents stay in force"
        ));
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return problem(state, format!("cannot read: {e}")),
    };
    let d = digest(&bytes);
    if d == state.digest {
        return None;
    }
    state.digest = d;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return problem(
                state,
                format!("not UTF-8 text ({e}); its previous contents stay in force"),
            )
        }
    };
    let parsed = match parse_file(path, text) {
        Ok(parsed) => parsed,
        Err(mut e) => {
            e.message
                .push_str("; the file's previous contents stay in force");
            state.errors = vec![e];
            return Some(FileChange {
                previous: None,
                errors: state.errors.clone(),
            });
        }
    };
    let mut errors = parsed.errors;
    let mut resources = BTreeMap::new();
    for r in parsed.resources {
        match resources.entry(r.key()) {
            Entry::Occupied(e) => errors.push(duplicate(path, e.key(), path)),
            Entry::Vacant(e) => {
                e.insert(r);
            }
        }
    }
    for key in parsed.rejected {
        if let Some(previous) = state.resources.get(&key) {
            resources.entry(key).or_insert_with(|| previous.clone());
        }
    }
    state.errors = errors;
    Some(FileChange {
        previous: Some(std::mem::replace(&mut state.resources, resources)),
        errors: state.errors.clone(),
    })
}

#[cfg(test)]
mod tests;
