//! House rules checked by the build: every module says what it owns.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file under `src/`.
fn src_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files
}

#[test]
fn every_module_opens_with_a_doc_line() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
        &mut files,
    );
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}

#[test]
fn no_stubs_in_src() {
    let files = src_files();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Built at run time so this file does not itself contain the markers.
        for stub in ["todo", "unimplemented"].map(|m| format!("{m}!(")) {
            assert!(!text.contains(&stub), "{} contains {stub}", f.display());
        }
    }
}

/// sled 0.34's `transaction()` and `apply_batch()` take one process-wide write lock that
/// every other sled call then waits on; the serving process uses neither (writes are journal
/// records, one-key races are compare-and-swaps). Only the offline `users` command could,
/// and it does not either, so the rule is simply: nowhere in `src/`.
#[test]
fn no_sled_transaction_or_batch_in_src() {
    let files = src_files();
    // Built at run time so this file does not itself contain the markers.
    let calls = ["transaction", "apply_batch", "transact"].map(|m| format!(".{m}("));
    let imports = ["Transactional", "sled::Batch", "TransactionalTree"];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in calls.iter().map(String::as_str).chain(imports) {
            assert!(
                !text.contains(needle),
                "{} contains {needle}: use the journal (store::journal) or compare-and-swap",
                f.display()
            );
        }
    }
}

/// ARCHITECTURE.md, invariant 3: OFSC is reached through `ofsc/` only. reqwest appears
/// nowhere else but where something other than OFSC is reached.
#[test]
fn reqwest_only_where_the_architecture_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = [
        "ofsc/",
        "auth/oidc.rs",
        "console/sso.rs",
        "devtools/device_sim.rs",
        "features/webhooks/",
    ];
    for f in src_files() {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        if text.contains("reqwest") {
            assert!(
                allowed.iter().any(|a| rel.starts_with(a)),
                "{rel} uses reqwest: OFSC calls belong in ofsc/ (ARCHITECTURE.md, invariant 3)"
            );
        }
    }
}
