"""A non-editable wheel ships the asset folders and capeval finds them from a fresh virtual environment."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_assets_and_finds_them(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"),
                            str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("capeval-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "capeval/_assets/metrics/coco.yaml" in names
    for kind in ("judges", "reports", "datasets"):
        assert any(n.startswith(f"capeval/_assets/{kind}/") for n in names), kind
    assert "capeval/hf_evaluate/modules/cider/cider.py" in names  # the evaluate modules ship in the wheel
    assert not any(n.startswith(("metrics/", "datasets/")) for n in names)  # no top-level shadowing packages

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    inst = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-2000:]
    probe = ("import capeval, capeval.assets as a, capeval.suites as s; "
             "print(capeval.__file__); print(a.asset_dir('metrics')); print(s.load_suite('coco')['metrics'])")
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert str(venv) in lines[0], lines  # the wheel's copy, not the source checkout
    assert lines[1].endswith("capeval/_assets/metrics") and str(venv) in lines[1]
    assert lines[2] == "['bleu', 'meteor', 'rouge_l', 'cider']"
