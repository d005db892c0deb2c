//! The `ugr` binary at the edges of its input: every bad path or file gives one line on
//! stderr, `error: ...`, naming the file and what was expected, exit status 1, and no panic
//! or backtrace even with `RUST_BACKTRACE=1`.

use std::path::Path;
use std::process::Command;

/// Runs `ugr args...` and returns (success, stderr).
fn ugr(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ugr"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run ugr");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The command fails with exactly one `error:` line that contains every one of `needles`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let (ok, err) = ugr(args);
    assert!(!ok, "ugr {args:?} succeeded");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "ugr {args:?}: not one line:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "ugr {args:?}: {n:?} missing from {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_paths_and_files_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing");
    fails_with(
        &["eval", "--run", s(&missing)],
        &[s(&missing), "expected a run directory"],
    );
    fails_with(
        &["recommend", "--model", s(d), "--history", "1"],
        &[s(d), "expected an artifact file", "not a regular file"],
    );
    let csv = d.join("missing.csv");
    fails_with(
        &["data", "summary", "--data", s(&csv)],
        &[s(&csv), "No such file"],
    );
    fails_with(&["sid", "stats", "--index", s(d)], &[s(d)]);
    let truncated = d.join("t.ugr");
    std::fs::write(&truncated, b"UGRMODEL\x01\x00").unwrap();
    fails_with(
        &["recommend", "--model", s(&truncated), "--history", "1"],
        &[s(&truncated), "truncated"],
    );

    // A run directory: trained for two steps on the built-in data, then damaged.
    let run = d.join("run");
    let (ok, err) = ugr(&[
        "train",
        "sft",
        "--out",
        s(&run),
        "--max-steps",
        "2",
        "--epochs",
        "1",
        "--eval-rows",
        "20",
        "--d-model",
        "16",
        "--d-ff",
        "32",
        "--layers",
        "1",
        "--head-layers",
        "1",
        "--heads",
        "2",
    ]);
    assert!(ok, "{err}");
    let weights = run.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        &["eval", "--run", s(&run)],
        &[s(&weights), "expected the safetensors weights"],
    );
    std::fs::write(&weights, &bytes).unwrap();
    let info = run.join("run.json");
    let text = std::fs::read_to_string(&info).unwrap();
    std::fs::write(&info, text.replace("\"format\": 1", "\"format\": 99")).unwrap();
    fails_with(&["eval", "--run", s(&run)], &[s(&info), "run format 99 is newer"]);
    std::fs::write(&info, r#"{"sft": 3}"#).unwrap();
    fails_with(
        &["eval", "--run", s(&run)],
        &[s(&info), "expected a run.json of run format 1"],
    );
    fails_with(&["export", "--run", s(&run), "--out", s(d)], &[s(&info)]);
}
