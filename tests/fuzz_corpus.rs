//! Replays the fuzz seeds (`fuzz/seeds/decode_<vendor>/*`) and any saved fuzz findings
//! (`fuzz/regressions/decode_<vendor>/*`) through the same request path and checks as the fuzz
//! targets (`fuzz/common/pipeline.rs`), so the corpus runs on stable in every `cargo test`,
//! without nightly or cargo-fuzz. The directory name says which vendor decodes its files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/common/pipeline.rs"]
mod pipeline;

use std::path::{Path, PathBuf};

use siemgate::vendors::Vendor;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `root/decode_<vendor>/` (recursively), with its vendor. A missing or
/// empty `root` fails the test: a replay of nothing would pass without checking anything.
fn inputs(root: &Path) -> Vec<(Vendor, PathBuf)> {
    let mut out = Vec::new();
    let dirs = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: cannot read the corpus: {e}", root.display()));
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let vendor = name
            .strip_prefix("decode_")
            .and_then(Vendor::from_name)
            .unwrap_or_else(|| panic!("{}: not decode_<vendor>", dir.display()));
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((vendor, path));
                }
            }
        }
    }
    assert!(
        !out.is_empty(),
        "{}: no decode_<vendor>/ file to replay",
        root.display()
    );
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn replay(files: &[(Vendor, PathBuf)]) {
    let mut failures = Vec::new();
    for (vendor, path) in files {
        let body = std::fs::read(path).unwrap();
        let out = pipeline::request_path(*vendor, &body);
        if let Err(msg) = pipeline::check(&body, &out) {
            failures.push(format!(
                "{} ({}): {msg}\nresult: {:?}",
                path.display(),
                vendor.as_str(),
                out.result
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn seeds_replay_cleanly_and_cover_every_vendor() {
    let files = inputs(&fuzz_dir().join("seeds"));
    for name in Vendor::names() {
        let vendor = Vendor::from_name(name).unwrap();
        assert!(
            files.iter().any(|(v, _)| *v == vendor),
            "fuzz/seeds/decode_{name}/ has no seed (and fuzz/fuzz_targets/decode_{name}.rs?)"
        );
        let target = fuzz_dir().join(format!("fuzz_targets/decode_{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
    }
    replay(&files);
}

/// Inputs that once failed, kept as regressions (a crash found by the CI fuzz step is left in
/// fuzz/artifacts/<target>/ and belongs here once fixed).
#[test]
fn regressions_replay_cleanly() {
    replay(&inputs(&fuzz_dir().join("regressions")));
}
