"""`ugr export --onnx DIR`: every graph passes the official checker (full check, shape
inference) and onnxruntime, fed the reference inputs, gives the engine's outputs to 1e-5."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5


def run_reference(d) -> float:
    """Runs every graph of the export directory `d` on its reference inputs, chaining the KV
    cache; returns the largest absolute difference from the engine's outputs."""
    ref = d / "reference"
    manifest = json.loads((ref / "reference.json").read_text())
    assert [g["graph"] for g in manifest["graphs"]][0] == "prefill"
    present: dict = {}
    worst = 0.0
    for g in manifest["graphs"]:
        path = d / f"{g['graph']}.onnx"
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {name: np.load(ref / file) for name, file in g["inputs"].items()}
        for i in session.get_inputs():
            if i.name.startswith("past."):
                feeds[i.name] = present["present." + i.name[len("past."):]]
        assert {i.name for i in session.get_inputs()} == set(feeds)
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, feeds)))
        present = {k: v for k, v in outputs.items() if k.startswith("present.")}
        for name, file in g["outputs"].items():
            want = np.load(ref / file)
            assert outputs[name].shape == want.shape, (g["graph"], name)
            worst = max(worst, float(np.max(np.abs(outputs[name] - want))))
    return worst


@pytest.mark.parametrize("which", ["tiny", "fresh"])
def test_exported_graphs_run_in_onnxruntime(which, request, ugr_bin, tmp_path):
    model = request.getfixturevalue("tiny_model" if which == "tiny" else "fresh_model")
    out = tmp_path / "onnx"
    subprocess.run([str(ugr_bin), "export", "--model", str(model), "--onnx", str(out)], check=True, capture_output=True)
    contract = json.loads((out / "contract.json").read_text())
    graphs = {p.stem for p in out.glob("*.onnx")}
    assert {"prefill"} | {f"step_{l}" for l in range(1, len(contract["codebooks"]))} <= graphs
    assert run_reference(out) <= TOLERANCE
    catalog = (out / "catalog.tsv").read_text().splitlines()
    import ugr

    engine = ugr.Engine(model)
    assert len(catalog) - 1 == engine.info.items
    item, sid = catalog[1].split("\t")[:2]
    assert engine.sid(int(item)) == sid
    assert len((out / "sids.tsv").read_text().splitlines()) - 1 == engine.info.sids
