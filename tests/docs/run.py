#!/usr/bin/env python3
"""Runs the shell blocks of README.md and docs/ as a user would, and fails on the first one
that fails, naming the file, the block and the command.

Usage: python3 tests/docs/run.py --ugr target/debug/ugr [--prebuilt-libugr] [--list] [FILE...]

Rules (docs/development.md, "Documentation that runs"):
- A fenced block tagged ```sh or ```bash is a command a user runs: it is executed. Synopses
  and flag listings are tagged ```text; code in other languages has its own tag.
- `<!-- docs-run: skip: REASON -->` on the line right before a block's opening fence skips
  that block; `<!-- docs-run: skip-file: REASON -->` anywhere in a file skips the file. Both
  are listed with their reason in every run.
- Each file's blocks run in order in one bash session (`set -eo pipefail`) from the
  repository root, so a later block sees what an earlier one wrote; files run in a fixed
  order (README.md, then docs/ in path order).
- `cargo test ...` is not run here: it is CI's own test step (listed as skipped).
- Short budgets: `--epochs N` becomes `--epochs 1`; `ugr quickstart` gets `--epochs 1`, and
  it and `ugr train sft` get `--eval-rows 300` (validation, fusion fit and calibration on a
  sample) unless the command sets it.
- `ugr` is the binary given by --ugr (put first on PATH); `cargo run --release -p ugr-train
  --bin ugr --` becomes `ugr`, so the documentation's commands run against that build.
- With --prebuilt-libugr, `ugr-ffi/package.sh` packages the libugr that the test build
  already linked (`--profile dev --prebuilt`) instead of building a release one.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"<!--\s*docs-run:\s*skip:\s*(.+?)\s*-->")
SKIP_FILE = re.compile(r"<!--\s*docs-run:\s*skip-file:\s*(.+?)\s*-->")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)")
RUNNABLE = {"sh", "bash", "shell", "console"}


def blocks(path):
    """Yields (line number of the opening fence, language, skip reason or None, lines)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        start = i
        prev = lines[i - 1] if i > 0 else ""
        skip = SKIP.search(prev)
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        yield start + 1, lang, (skip.group(1) if skip else None), body


def commands(body):
    """The logical commands of a block: continuation lines joined, comments and blanks dropped."""
    out, cur, first = [], "", None
    for n, line in enumerate(body):
        stripped = line.strip()
        if not cur and (not stripped or stripped.startswith("#")):
            continue
        if first is None:
            first = n
        if stripped.endswith("\\"):
            cur += stripped[:-1] + " "
            continue
        cur += stripped
        out.append((first, cur))
        cur, first = "", None
    if cur:
        out.append((first, cur))
    return out


def rewrite(cmd, prebuilt_libugr):
    cmd = re.sub(r"cargo run --release -p ugr-train --bin ugr --", "ugr", cmd)
    cmd = re.sub(r"--epochs \d+", "--epochs 1", cmd)
    if re.search(r"(^|\s)ugr quickstart\b", cmd) and "--epochs" not in cmd:
        cmd = re.sub(r"(ugr quickstart)\b", r"\1 --epochs 1", cmd)
    if re.search(r"(^|\s)ugr (quickstart|train sft)\b", cmd) and "--eval-rows" not in cmd:
        cmd = re.sub(r"(ugr (quickstart|train sft))\b", r"\1 --eval-rows 300", cmd)
    if prebuilt_libugr and "ugr-ffi/package.sh" in cmd:
        cmd = cmd.replace("ugr-ffi/package.sh", "ugr-ffi/package.sh --profile dev --prebuilt")
    return cmd


def documents(selected):
    if selected:
        return [ROOT / s for s in selected]
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def self_test(ugr):
    """A document whose second block fails: the run must fail and name it."""
    with tempfile.TemporaryDirectory() as tmp:
        doc = Path(tmp) / "doc.md"
        doc.write_text(
            "# t\n\n```sh\ntrue\n```\n\n<!-- docs-run: skip: not this one -->\n```sh\nfalse\n```\n\n"
            "```text\nfalse\n```\n\n```sh\necho ok\nls /nonexistent-docs-run-check\n```\n"
        )
        r = subprocess.run(
            [sys.executable, __file__, "--ugr", ugr, str(doc)], capture_output=True, text=True
        )
        out = r.stdout + r.stderr
        want = "block at line 16, command: ls /nonexistent-docs-run-check"
        ok = r.returncode == 1 and want in out and "skipped" in out and "not this one" in out
        print(f"docs-run self-test: {'ok' if ok else 'FAILED'}")
        if not ok:
            print(out)
        return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ugr", default="target/debug/ugr", help="the ugr binary the documentation's commands run")
    ap.add_argument("--prebuilt-libugr", action="store_true", help="package the libugr the test build linked")
    ap.add_argument("--list", action="store_true", help="list the blocks, run nothing")
    ap.add_argument("--self-test", action="store_true", help="check that a failing block is reported by file, block and command")
    ap.add_argument("files", nargs="*", help="documents to run (default: README.md and docs/)")
    a = ap.parse_args()
    if a.self_test:
        return self_test(a.ugr)

    plan, skipped = [], []
    for doc in documents(a.files):
        rel = Path(os.path.relpath(doc, ROOT))
        text = doc.read_text(encoding="utf-8")
        file_skip = SKIP_FILE.search(text)
        runnable = [b for b in blocks(doc) if b[1] in RUNNABLE]
        if file_skip:
            if runnable:
                skipped.append(f"{rel}: every block ({len(runnable)}): {file_skip.group(1)}")
            continue
        for line, _, reason, body in runnable:
            if reason:
                skipped.append(f"{rel}:{line}: {reason}")
            else:
                plan.append((rel, line, body))

    for rel, line, body in plan:
        for offset, cmd in commands(body):
            if cmd.startswith("cargo test"):
                skipped.append(f"{rel}:{line + 1 + offset}: `{cmd}` is CI's own test step")
    print(f"docs-run: {len(plan)} blocks to run, {len(skipped)} skipped")
    for s in skipped:
        print(f"  skipped {s}")
    if a.list:
        for rel, line, body in plan:
            print(f"  run {rel}:{line}: {len(commands(body))} commands")
        return 0

    ugr = (ROOT / a.ugr).resolve()
    if not ugr.is_file():
        print(f"docs-run: {ugr} is not a built ugr (cargo build -p ugr-train)", file=sys.stderr)
        return 2
    bindir = Path(tempfile.mkdtemp(prefix="ugr-docs-bin-"))
    (bindir / "ugr").symlink_to(ugr)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")

    by_file = {}
    for rel, line, body in plan:
        by_file.setdefault(rel, []).append((line, body))
    for rel, items in by_file.items():
        script = ["set -eo pipefail", f"trap 'echo \"docs-run: FAILED in {rel}, block at line $__block, command: $__cmd\" >&2' ERR"]
        count = 0
        for line, body in items:
            for offset, cmd in commands(body):
                if cmd.startswith("cargo test"):
                    continue
                cmd = rewrite(cmd, a.prebuilt_libugr)
                count += 1
                where = f"{rel}:{line + 1 + offset}"
                script.append(f"__block={line}; __cmd={shlex.quote(cmd)}")
                script.append(f"printf '$ %s   # %s\\n' {shlex.quote(cmd)} {shlex.quote(where)}")
                script.append(cmd)
            # Every block starts from the repository root.
            script.append("cd " + shlex.quote(str(ROOT)))
        print(f"docs-run: {rel}: {len(items)} blocks, {count} commands")
        r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=env)
        if r.returncode != 0:
            print(f"docs-run: {rel} failed (exit {r.returncode}); the failing block and command are named above", file=sys.stderr)
            return 1
    print("docs-run: every runnable block ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
