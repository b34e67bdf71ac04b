//! The shipped example folders, read as pilot-discovery reads a config
//! folder: what operators copy must load whole, with no conflict and no
//! dangling reference.

use std::path::Path;

use pilot_discovery::configdir::ConfigFolder;
use pilot_discovery::snapshot::build_snapshot;

#[test]
fn the_examples_have_no_problems() {
    for dir in ["mesh", "traffic"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(dir);
        let mut folder = ConfigFolder::new(&path);
        let reload = folder.reload().expect("example folder");
        assert!(reload.errors.is_empty(), "{dir}: {:?}", reload.errors);
        let snap = build_snapshot(1, "cluster.local", &[folder.resources()], None);
        assert!(!snap.virtual_services.is_empty(), "{dir} has routing rules");
        assert!(snap.problems.is_empty(), "{dir}: {:?}", snap.problems);
    }
}
