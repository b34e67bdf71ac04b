//! Tests of `folder.rs`.

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
        msgs.iter().any(|m| m
            .contains("b.yml: VirtualService default/reviews: metadata.name: duplicate resource")),
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
