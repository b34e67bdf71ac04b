//! The state of a watched config folder, file by file.
//!
//! Nothing valid is ever lost to a bad edit: a file that cannot be read or
//! parsed keeps its last good contents, and a rejected document keeps the last
//! good version of the resource it names.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_model::ConfigKey;

use super::parse::{parse_file, ConfigError};
use crate::resource::Resource;

/// Files larger than this are refused rather than parsed: a config folder
/// holds rules, not data, and a runaway file must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct FileState {
    /// Digest of the contents last looked at, good or bad, so an unchanged
    /// file is neither parsed nor reported again.
    digest: u64,
    /// The resources currently in force from this file.
    resources: Vec<Resource>,
    /// The problems found the last time the file changed.
    errors: Vec<ConfigError>,
}

/// What a reload found.
#[derive(Debug, Default)]
pub struct Reload {
    /// The set of resources in force changed.
    pub changed: bool,
    /// Problems found in files that changed since the last reload, and
    /// resources defined twice.
    pub errors: Vec<ConfigError>,
}

/// What merging the files yields.
struct Merge {
    resources: BTreeMap<ConfigKey, Resource>,
    /// The file each of `resources` came from.
    origins: BTreeMap<ConfigKey, Arc<Path>>,
    /// Resources defined again after their first definition.
    duplicates: Vec<ConfigError>,
}

#[derive(Debug)]
pub struct ConfigFolder {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    merged: BTreeMap<ConfigKey, Resource>,
    /// The file each resource in `merged` was read from. Shared, so
    /// publishing the folder's state does not copy it.
    origins: Arc<BTreeMap<ConfigKey, Arc<Path>>>,
    /// Second definitions of a resource, ignored: reported for as long as
    /// they are there, not only when they first change the merge.
    duplicates: Vec<ConfigError>,
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
            merged: BTreeMap::new(),
            origins: Arc::default(),
            duplicates: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The resources in force, by key.
    pub fn resources(&self) -> &BTreeMap<ConfigKey, Resource> {
        &self.merged
    }

    /// The file each resource in force was read from.
    pub fn files(&self) -> Arc<BTreeMap<ConfigKey, Arc<Path>>> {
        self.origins.clone()
    }

    /// Every problem currently known, file by file, then the duplicates.
    pub fn current_errors(&self) -> impl Iterator<Item = &ConfigError> {
        self.files
            .values()
            .flat_map(|f| f.errors.iter())
            .chain(&self.duplicates)
    }

    /// Re-reads the folder. Fails only if the folder itself cannot be listed,
    /// in which case everything stays as it was.
    pub fn reload(&mut self) -> std::io::Result<Reload> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            // Follows symlinks, as Kubernetes ConfigMap mounts are made of them.
            if is_config_file(&path) && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();

        let mut errors = Vec::new();
        let present: BTreeSet<&PathBuf> = paths.iter().collect();
        self.files.retain(|p, _| present.contains(p));
        for path in paths {
            let state = self.files.entry(path.clone()).or_default();
            if let Some(errs) = refresh_file(&path, state) {
                errors.extend(errs);
            }
        }
        let merge = self.merge();
        let changed = merge.resources != self.merged;
        // Reported once, when it appears; listed while it lasts.
        errors.extend(
            merge
                .duplicates
                .iter()
                .filter(|d| !self.duplicates.contains(d))
                .cloned(),
        );
        self.duplicates = merge.duplicates;
        self.merged = merge.resources;
        if merge.origins != *self.origins {
            self.origins = Arc::new(merge.origins);
        }
        Ok(Reload { changed, errors })
    }

    /// Merges the files in path order; the first definition of a resource
    /// wins.
    fn merge(&self) -> Merge {
        // Each resource with the file it came from, in one map: thousands of
        // resources are merged on every reload.
        let mut merged: BTreeMap<ConfigKey, (&Resource, &Path)> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for (path, state) in &self.files {
            for r in &state.resources {
                let key = r.key();
                if let Some((_, first)) = merged.get(&key) {
                    duplicates.push(ConfigError {
                        file: path.clone(),
                        document: None,
                        resource: Some(key.clone()),
                        field: Some("metadata.name".into()),
                        message: format!(
                            "duplicate resource, ignored: already defined in {}",
                            first.display()
                        ),
                    });
                    continue;
                }
                merged.insert(key, (r, path));
            }
        }
        let paths: BTreeMap<&Path, Arc<Path>> = self
            .files
            .keys()
            .map(|p| (p.as_path(), Arc::from(p.as_path())))
            .collect();
        let mut origins = BTreeMap::new();
        let mut resources = BTreeMap::new();
        for (k, (r, path)) in merged {
            if let Some(p) = paths.get(path) {
                origins.insert(k.clone(), p.clone());
            }
            resources.insert(k, r.clone());
        }
        Merge {
            resources,
            origins,
            duplicates,
        }
    }
}

/// Brings one file's state up to date. Returns the problems found if the file
/// changed, `None` if it did not.
fn refresh_file(path: &Path, state: &mut FileState) -> Option<Vec<ConfigError>> {
    let file_error = |message: String| ConfigError::file(path, message);
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return Some(vec![file_error(format!("cannot read: {e}"))]),
    };
    if size > MAX_FILE_BYTES {
        let d = digest(format!("too-large:{size}").as_bytes());
        if d == state.digest {
            return None;
        }
        state.digest = d;
        state.errors = vec![file_error(format!(
            "file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit; its previous contents stay in force"
        ))];
        return Some(state.errors.clone());
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Some(vec![file_error(format!("cannot read: {e}"))]),
    };
    let d = digest(&bytes);
    if d == state.digest {
        return None;
    }
    state.digest = d;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            state.errors = vec![file_error(format!(
                "not UTF-8 text ({e}); its previous contents stay in force"
            ))];
            return Some(state.errors.clone());
        }
    };
    match parse_file(path, text) {
        Err(mut e) => {
            e.message
                .push_str("; the file's previous contents stay in force");
            state.errors = vec![e];
        }
        Ok(parsed) => {
            let mut resources = parsed.resources;
            for key in &parsed.rejected {
                let kept = state.resources.iter().find(|r| &r.key() == key);
                if let Some(previous) = kept {
                    if !resources.iter().any(|r| &r.key() == key) {
                        resources.push(previous.clone());
                    }
                }
            }
            state.resources = resources;
            state.errors = parsed.errors;
        }
    }
    Some(state.errors.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_model::ConfigKind;

    const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"#;

    fn weights(folder: &ConfigFolder) -> Vec<u32> {
        let key = ConfigKey {
            kind: ConfigKind::VirtualService,
            namespace: "default".into(),
            name: "reviews".into(),
        };
        match folder.resources().get(&key) {
            Some(Resource::VirtualService(vs)) => {
                vs.spec.http[0].route.iter().map(|d| d.weight).collect()
            }
            other => panic!("no VirtualService: {other:?}"),
        }
    }

    #[test]
    fn bad_edits_keep_the_last_good_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vs.yaml");
        std::fs::write(&file, VS).expect("write");
        let mut folder = ConfigFolder::new(dir.path());
        let r = folder.reload().expect("reload");
        assert!(r.changed && r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(weights(&folder), vec![80, 20]);

        // Weights that do not add up: rejected, the old rule stays.
        std::fs::write(&file, VS.replace("weight: 20", "weight: 30")).expect("write");
        let r = folder.reload().expect("reload");
        assert!(!r.changed);
        assert_eq!(r.errors.len(), 1);
        assert!(
            r.errors[0]
                .to_string()
                .contains("VirtualService default/reviews: spec.http[0].route"),
            "{}",
            r.errors[0]
        );
        assert_eq!(weights(&folder), vec![80, 20]);

        // Unchanged bad file: not reported again.
        let r = folder.reload().expect("reload");
        assert!(r.errors.is_empty() && !r.changed);

        // Broken YAML: the whole file keeps its last good contents.
        std::fs::write(&file, "{{{{").expect("write");
        let r = folder.reload().expect("reload");
        assert!(!r.changed);
        assert!(r.errors[0]
            .message
            .contains("previous contents stay in force"));
        assert_eq!(weights(&folder), vec![80, 20]);

        // A good edit goes through.
        std::fs::write(
            &file,
            VS.replace("weight: 80", "weight: 0")
                .replace("weight: 20", "weight: 100"),
        )
        .expect("write");
        let r = folder.reload().expect("reload");
        assert!(r.changed);
        assert_eq!(weights(&folder), vec![0, 100]);

        // Deleting the file removes its resources.
        std::fs::remove_file(&file).expect("rm");
        let r = folder.reload().expect("reload");
        assert!(r.changed);
        assert!(folder.resources().is_empty());
    }

    #[test]
    fn duplicates_first_file_wins_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), VS).expect("write");
        std::fs::write(
            dir.path().join("b.yml"),
            VS.replace("weight: 80", "weight: 50")
                .replace("weight: 20", "weight: 50"),
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not config").expect("write");
        std::fs::write(dir.path().join(".hidden.yaml"), "{{").expect("write");
        std::fs::write(dir.path().join("blob.json"), [0xff, 0xfe, 0x00]).expect("write");
        let mut folder = ConfigFolder::new(dir.path());
        let r = folder.reload().expect("reload");
        assert_eq!(weights(&folder), vec![80, 20]);
        let msgs: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.contains("blob.json: not UTF-8")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains(
                "b.yml: VirtualService default/reviews: metadata.name: duplicate resource"
            )),
            "{msgs:?}"
        );
        assert_eq!(folder.current_errors().count(), 2, "listed while they last");

        // A duplicate added later changes nothing that is served, and is
        // still reported, once.
        std::fs::write(dir.path().join("c.yaml"), VS).expect("write");
        let r = folder.reload().expect("reload");
        assert!(!r.changed);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0].to_string().contains("c.yaml"), "{:?}", r.errors);
        assert!(folder.reload().expect("reload").errors.is_empty());
        assert_eq!(folder.current_errors().count(), 3);
        std::fs::remove_file(dir.path().join("c.yaml")).expect("remove");
        folder.reload().expect("reload");
        assert_eq!(folder.current_errors().count(), 2);
    }

    #[test]
    fn missing_folder_is_an_error() {
        let mut folder = ConfigFolder::new("/nonexistent/pilot-config");
        assert!(folder.reload().is_err());
    }
}
