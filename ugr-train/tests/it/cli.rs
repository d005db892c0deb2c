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

/// Business rules and catalog changes on the command line: `ugr recommend --deny/--allow/
/// --prefix/--unavailable` and `ugr catalog --remove/--add`, with one-line errors for bad input.
#[test]
fn rules_and_catalog_changes_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    let json = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_ugr"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let items = |v: &serde_json::Value| -> Vec<u64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["item"].as_u64().unwrap())
            .collect()
    };
    let base = ["recommend", "--model", s(&model), "--history", "5 6", "--json"];
    let plain = items(&json(&base));
    let deny = d.join("deny.txt");
    std::fs::write(&deny, format!("{}\n{}", plain[0], plain[1])).unwrap();
    let denied = items(&json(&[&base[..], &["--deny", s(&deny)]].concat()));
    assert_eq!(denied.len(), 10);
    assert!(!denied.contains(&plain[0]) && !denied.contains(&plain[1]));
    assert_eq!(
        items(&json(&[&base[..], &["--unavailable", s(&deny)]].concat())),
        denied
    );
    let only = items(&json(
        &[&base[..], &["--prefix", "<a_1>", "--prefix", "<a_2>"]].concat(),
    ));
    let sids = json(&[&base[..], &["--prefix", "<a_1>", "--prefix", "<a_2>"]].concat());
    assert_eq!(only.len(), 10);
    assert!(sids["items"].as_array().unwrap().iter().all(|r| {
        let sid = r["sid"].as_str().unwrap();
        sid.starts_with("<a_1>") || sid.starts_with("<a_2>")
    }));
    fails_with(
        &[&base[..], &["--prefix", "<a_1"]].concat(),
        &["--prefix", "<a_1"],
    );
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails_with(
        &[&base[..], &["--allow", s(&empty)]].concat(),
        &["empty allowlist"],
    );
    let junk = d.join("junk.txt");
    std::fs::write(&junk, "12 x7").unwrap();
    fails_with(&[&base[..], &["--deny", s(&junk)]].concat(), &[s(&junk), "x7"]);

    // ugr catalog: remove the two best items, add one with a SID of the catalog.
    let add = d.join("add.index.json");
    std::fs::write(&add, r#"{"777777": ["<a_1>", "<b_6>", "<c_0>"]}"#).unwrap();
    let out = d.join("changed.ugr");
    let (ok, err) = ugr(&[
        "catalog",
        "--model",
        s(&model),
        "--out",
        s(&out),
        "--remove",
        s(&deny),
        "--add",
        s(&add),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("2 removed, 1 added"), "{err}");
    let changed = ["recommend", "--model", s(&out), "--history", "5 6", "--json"];
    // Removing items answers as denying them; the added item shares item 1's SID and comes
    // right after it (popularity 0).
    let mut got = items(&json(&changed));
    let at = got
        .iter()
        .position(|&i| i == 777777)
        .expect("the added item is served");
    assert_eq!(got[at - 1], 1);
    got.remove(at);
    assert_eq!(got, denied[..got.len()]);
    let allow = d.join("allow.txt");
    std::fs::write(&allow, "777777").unwrap();
    assert_eq!(
        items(&json(&[&changed[..], &["--allow", s(&allow)]].concat())),
        vec![777777]
    );
    fails_with(
        &[
            "catalog",
            "--model",
            s(&model),
            "--out",
            s(&out),
            "--remove",
            s(&allow),
        ],
        &["777777", "not in the catalog"],
    );
}

/// A reader that stops early (`| head -1`) ends `ugr` quietly: no panic on the closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ugr"))
        .args([
            "recommend",
            "--model",
            s(&model),
            "--history",
            "1 2 3",
            "--k",
            "800",
            "--beam",
            "800",
            "--json",
        ])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe while `ugr` still has most of its output to write.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
