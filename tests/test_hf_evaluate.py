"""capeval's metrics as Hugging Face evaluate modules: exported, shipped, loaded offline, same numbers."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from capeval.hf_evaluate import EXPORTED, MODULES, export_modules, module_path, module_source

pytest.importorskip("evaluate")

CAPTIONER = "VinVL-large"


def offline_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "HF_HOME": str(tmp_path / "hf_home")})
    return env


def test_shipped_modules_are_what_export_writes():
    shipped = sorted(p.parent.name for p in MODULES.glob("*/*.py"))
    assert shipped == sorted(EXPORTED)
    for metric in EXPORTED:
        assert (MODULES / metric / f"{metric}.py").read_text() == module_source(metric), metric
        assert module_path(metric) == MODULES / metric


def test_export_cli_writes_one_thin_module_class_per_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "capeval", "export-evaluate", str(tmp_path / "mods")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) == len(EXPORTED)
    for metric in EXPORTED:
        tree = ast.parse((tmp_path / "mods" / metric / f"{metric}.py").read_text())
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        assert len(classes) == 1 and ast.unparse(classes[0].bases[0]) == "evaluate.Metric", metric
        methods = [n.name for n in classes[0].body if isinstance(n, ast.FunctionDef)]
        assert methods == ["_info", "_compute"]
        assert all(len(f.body) == 1 for f in classes[0].body if isinstance(f, ast.FunctionDef))  # thin


def test_unknown_module_is_a_clear_error(tmp_path):
    from capeval.errors import CapevalError

    with pytest.raises(CapevalError, match="no evaluate module for 'pairwise'; modules exist for bleu"):
        export_modules(tmp_path / "mods", ["pairwise"])
    assert not (tmp_path / "mods").exists()


PROBE = """
import json, sys, evaluate
data = json.load(open(sys.argv[1]))
out = {}
for path in sys.argv[2:]:
    module = evaluate.load(path, keep_in_memory=True)
    out[path] = module.compute(predictions=data["predictions"], references=data["references"])
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.java
def test_evaluate_load_equals_capeval_score_on_thumb_offline(tmp_path, thumb):
    refs, systems = thumb
    ids = list(refs)
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "cand.json").write_text(json.dumps({i: systems[CAPTIONER][i] for i in ids}))
    (tmp_path / "inputs.json").write_text(json.dumps({"predictions": [systems[CAPTIONER][i] for i in ids],
                                                      "references": [refs[i] for i in ids]}))
    score = subprocess.run([sys.executable, "-m", "capeval", "score", "--refs", str(tmp_path / "refs.json"),
                            "--cand", f"m={tmp_path / 'cand.json'}", "-m", "cider,bleu", "--out",
                            str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert score.returncode == 0, score.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    export_modules(tmp_path / "mods", ["cider", "bleu"])
    shipped = str(module_path("cider"))  # the wheel's copy, by absolute path
    proc = subprocess.run([sys.executable, "-c", PROBE, "inputs.json", "./mods/cider", "./mods/bleu", shipped],
                          cwd=tmp_path, env=offline_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    ours = summary["captioners"]["m"]
    assert ours["cider"]["mean"] > 1.0
    for path in ("./mods/cider", shipped):
        assert abs(got[path]["cider"] - ours["cider"]["mean"]) <= 1e-12, (got[path], ours["cider"])
        assert got[path]["signature"] == summary["signatures"]["cider"]
    for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4"):
        assert abs(got["./mods/bleu"][k] - ours[k]["mean"]) <= 1e-12
        assert got["./mods/bleu"]["signatures"][k] == summary["signatures"][k]
    assert not list((tmp_path / "hf_home").rglob("*.arrow"))  # keep_in_memory: no Arrow cache written


def test_dot_slash_pitfall(tmp_path):
    """Without ./ a one-slash path that isn't there is looked up on the hub (offline here: an error saying so)."""
    probe = ("import evaluate\nfor p in ('./missing/cider', 'missing/cider'):\n    try:\n"
             "        evaluate.load(p)\n    except FileNotFoundError as e:\n        print(repr(str(e)))\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=offline_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    local, hub = proc.stdout.splitlines()[-2:]
    assert "missing/cider/cider.py" in local and "Hub" not in local
    assert "Hugging Face Hub" in hub
