use std::collections::BTreeSet;
use std::path::Path;

fn folders(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_backends_have_the_same_migration_folders() {
    let pg = folders("postgres");
    let sqlite = folders("sqlite");
    assert!(!pg.is_empty(), "no migrations found");
    assert_eq!(pg, sqlite, "migrations/postgres and migrations/sqlite must carry identical folder names");
    for name in &pg {
        for backend in ["postgres", "sqlite"] {
            let up = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../migrations")
                .join(backend)
                .join(name)
                .join("up.sql");
            assert!(up.exists(), "{} is missing", up.display());
        }
    }
}
