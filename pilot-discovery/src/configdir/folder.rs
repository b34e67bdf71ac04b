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
mod tests {
    use super::*;
    use mesh_model::ConfigKind;
    use mesh_model::IstioConfig;

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
            Some(Resource::Istio(IstioConfig::VirtualService(vs))) => {
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
        assert!(r.is_changed() && r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(weights(&folder), vec![80, 20]);

        // Weights that do not add up: rejected, the old rule stays.
        std::fs::write(&file, VS.replace("weight: 20", "weight: 30")).expect("write");
        let r = folder.reload().expect("reload");
        assert!(!r.is_changed());
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
        assert!(r.errors.is_empty() && !r.is_changed());

        // Broken YAML: the whole file keeps its last good contents.
        std::fs::write(&file, "{{{{").expect("write");
        let r = folder.reload().expect("reload");
        assert!(!r.is_changed());
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
        assert!(r.is_changed());
        assert_eq!(weights(&folder), vec![0, 100]);

        // Deleting the file removes its resources.
        std::fs::remove_file(&file).expect("rm");
        let r = folder.reload().expect("reload");
        assert!(r.is_changed());
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
        assert!(!r.is_changed());
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0].to_string().contains("c.yaml"), "{:?}", r.errors);
        assert!(folder.reload().expect("reload").errors.is_empty());
        assert_eq!(folder.current_errors().count(), 3);
        std::fs::remove_file(dir.path().join("c.yaml")).expect("remove");
        folder.reload().expect("reload");
        assert_eq!(folder.current_errors().count(), 2);
    }

    fn named(paths: &[&Path]) -> Changes {
        Changes {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            rescan: false,
        }
    }

    fn vs_named(name: &str, weight: u32) -> String {
        VS.replace("name: reviews", &format!("name: {name}"))
            .replace("weight: 80", &format!("weight: {weight}"))
            .replace("weight: 20", &format!("weight: {}", 100 - weight))
    }

    fn vs_key(name: &str) -> ConfigKey {
        ConfigKey {
            kind: ConfigKind::VirtualService,
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_change_rereads_only_the_files_it_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::fs::write(&a, vs_named("a", 10)).expect("write");
        std::fs::write(&b, vs_named("b", 10)).expect("write");
        let mut folder = ConfigFolder::new(dir.path());
        assert_eq!(folder.reload().expect("reload").changed.len(), 2);

        // Both files change; the events name only b, so only b is read.
        std::fs::write(&a, vs_named("a", 30)).expect("write");
        std::fs::write(&b, vs_named("b", 30)).expect("write");
        let tmp = dir.path().join(".b.yaml.swp");
        std::fs::write(&tmp, "{{").expect("write");
        let r = folder.reload_changed(&named(&[&b, &tmp])).expect("reload");
        assert!(!r.rescanned && r.errors.is_empty(), "{r:?}");
        assert_eq!(r.changed, vec![vs_key("b")]);

        // Asking for a rescan finds a.
        let r = folder
            .reload_changed(&Changes::everything())
            .expect("reload");
        assert!(r.rescanned);
        assert_eq!(r.changed, vec![vs_key("a")]);

        // A removed file named by its event takes its resources with it.
        std::fs::remove_file(&a).expect("remove");
        let r = folder.reload_changed(&named(&[&a])).expect("reload");
        assert_eq!(r.changed, vec![vs_key("a")]);
        assert_eq!(folder.resources().len(), 1);
        assert_eq!(
            folder.files().get(&vs_key("b")).map(|p| p.as_ref()),
            Some(b.as_path())
        );

        // An event about something outside the folder re-reads all of it.
        let r = folder
            .reload_changed(&named(&[Path::new("/elsewhere/x.yaml")]))
            .expect("reload");
        assert!(r.rescanned && !r.is_changed());
    }

    #[test]
    fn when_the_first_definition_goes_the_next_one_takes_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::fs::write(&a, vs_named("reviews", 80)).expect("write");
        std::fs::write(&b, vs_named("reviews", 50)).expect("write");
        let mut folder = ConfigFolder::new(dir.path());
        let r = folder.reload().expect("reload");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(weights(&folder), vec![80, 20]);

        std::fs::remove_file(&a).expect("remove");
        let r = folder.reload_changed(&named(&[&a])).expect("reload");
        assert_eq!(r.changed, vec![vs_key("reviews")]);
        assert_eq!(weights(&folder), vec![50, 50]);
        assert_eq!(folder.current_errors().count(), 0, "no duplicate left");
        assert_eq!(
            folder.files().get(&vs_key("reviews")).map(|p| p.as_ref()),
            Some(b.as_path())
        );

        // The same resource twice in one file: the first wins, once.
        let twice = format!("{}---{}", vs_named("reviews", 70), vs_named("reviews", 60));
        std::fs::write(&b, twice).expect("write");
        let r = folder.reload_changed(&named(&[&b])).expect("reload");
        assert_eq!(weights(&folder), vec![70, 30]);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0].message.contains("duplicate resource"),
            "{}",
            r.errors[0]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_files_are_all_reread_as_a_configmap_mount_swaps_them() {
        use std::os::unix::fs::symlink;
        // The layout the kubelet makes: files link through `..data`, which
        // is swapped to a new directory on every update.
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for (version, weight) in [("..v1", 80), ("..v2", 0)] {
            std::fs::create_dir(d.join(version)).expect("mkdir");
            std::fs::write(d.join(version).join("vs.yaml"), vs_named("reviews", weight))
                .expect("write");
        }
        symlink("..v1", d.join("..data")).expect("symlink");
        symlink("..data/vs.yaml", d.join("vs.yaml")).expect("symlink");
        let mut folder = ConfigFolder::new(d);
        folder.reload().expect("reload");
        assert_eq!(weights(&folder), vec![80, 20]);

        symlink("..v2", d.join("..data_tmp")).expect("symlink");
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("rename");
        let r = folder
            .reload_changed(&named(&[&d.join("..data_tmp"), &d.join("..data")]))
            .expect("reload");
        assert!(r.rescanned);
        assert_eq!(r.changed, vec![vs_key("reviews")]);
        assert_eq!(weights(&folder), vec![0, 100]);
    }

    /// Whatever the sequence of edits, good or bad, reading only the files
    /// that changed ends where re-reading the whole folder every time does.
    #[test]
    fn rereading_changed_files_matches_rereading_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: Vec<PathBuf> = ["a.yaml", "b.yaml", "c.yml"]
            .iter()
            .map(|f| dir.path().join(f))
            .collect();
        let mut incremental = ConfigFolder::new(dir.path());
        incremental.reload().expect("reload");
        let mut full = ConfigFolder::new(dir.path());
        full.reload().expect("reload");
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let errors = |f: &ConfigFolder| {
            let mut e: Vec<String> = f.current_errors().map(ToString::to_string).collect();
            e.sort();
            e
        };
        let mut changes = 0;
        for step in 0..400 {
            let file = &files[next(3) as usize];
            match next(6) {
                0 => {
                    let _ = std::fs::remove_file(file);
                }
                1 => std::fs::write(file, "{{ not yaml").expect("write"),
                // Weights that do not add up: the document is rejected.
                2 => std::fs::write(file, vs_named("x", 10).replace("weight: 90", "weight: 5"))
                    .expect("write"),
                _ => {
                    let docs: Vec<String> = (0..=next(3))
                        .map(|_| {
                            let name = ["x", "y", "z"][next(3) as usize];
                            vs_named(name, 10 * next(10) as u32)
                        })
                        .collect();
                    std::fs::write(file, docs.join("---")).expect("write");
                }
            }
            let before = incremental.resources().clone();
            let r = incremental.reload_changed(&named(&[file])).expect("reload");
            assert!(!r.rescanned);
            let f = full.reload().expect("reload");
            assert_eq!(incremental.resources(), full.resources(), "step {step}");
            assert_eq!(incremental.files(), full.files(), "step {step}");
            assert_eq!(errors(&incremental), errors(&full), "step {step}");
            let mut reported: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
            let mut expected: Vec<String> = f.errors.iter().map(ToString::to_string).collect();
            reported.sort();
            expected.sort();
            assert_eq!(reported, expected, "step {step}");
            // Exactly the resources that differ are reported changed.
            let differ: Vec<&ConfigKey> = before
                .keys()
                .chain(incremental.resources().keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| before.get(*k) != incremental.resources().get(*k))
                .collect();
            assert_eq!(r.changed.iter().collect::<Vec<_>>(), differ, "step {step}");
            changes += r.changed.len();
        }
        assert!(
            changes > 100,
            "the edits changed too little to test: {changes}"
        );
    }

    #[test]
    fn missing_folder_is_an_error() {
        let mut folder = ConfigFolder::new("/nonexistent/pilot-config");
        assert!(folder.reload().is_err());
    }
}
