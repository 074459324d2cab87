//! `crds/` must be exactly what `gantry crds` generates, so a change to
//! `src/api/` that forgets to regenerate fails here (and in CI).

use std::path::Path;

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = gantry::crdgen::all();
    for crd in &generated {
        let name = gantry::crdgen::file_name(crd);
        let expected = serde_yaml::to_string(crd).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("crds/{name} missing ({e}); run `cargo run -- crds --out-dir crds`"));
        assert!(
            on_disk == expected,
            "crds/{name} is stale; run `cargo run -- crds --out-dir crds` and commit the result"
        );
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, generated.len(), "crds/ holds files that `gantry crds` no longer generates");
}
