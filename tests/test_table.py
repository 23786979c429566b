"""``capeval table``: values, scale, bold/underline marks, spreads, escaping; LaTeX checked structurally (and
compiled when a TeX engine is installed)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capeval.rundir import load_run
from capeval.tables import build_table, latex_escape, render_csv, render_latex, render_markdown

# captioner -> metric -> per-seed corpus values (what summary.json and corpus.parquet hold)
VALUES = {
    "Up-Down": {"bleu_4": [0.2926], "cider": [1.1072], "judge": [3.1, 3.3, 3.2], "err": [0.30]},
    "VinVL_large & co": {"bleu_4": [0.3398], "cider": [1.4181], "judge": [3.6, 3.4, 3.5], "err": [0.10]},
    "Human": {"bleu_4": [0.2848], "cider": [1.4181], "judge": [4.2, 4.0, 4.4], "err": [0.20]},
}
INFO = {"bleu": {"outputs": ["bleu_1", "bleu_4"], "higher_is_better": True},
        "cider": {"outputs": ["cider"], "higher_is_better": True},
        "judge": {"outputs": ["judge"], "higher_is_better": True, "stochastic": True},
        "err": {"outputs": ["err"], "higher_is_better": False}}


def write_table_run(path: Path) -> Path:
    """A run directory with BLEU-4, CIDEr (tied best), a 3-seed judge and a lower-is-better metric."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(30)]
    scores, corpus, summary = [], [], {}
    for cap, metrics in VALUES.items():
        summary[cap] = {}
        for metric, per_seed in metrics.items():
            for seed, value in enumerate(per_seed):
                noise = rng.normal(0, 0.05, len(ids))
                per_sample = value + noise - noise.mean()  # per-sample mean equals the corpus value
                scores += [{"captioner": cap, "sample_id": i, "metric": metric, "seed": seed, "value": float(v)}
                           for i, v in zip(ids, per_sample, strict=True)]
                corpus.append({"captioner": cap, "metric": metric, "seed": seed, "value": value})
            summary[cap][metric] = {"mean": float(np.mean(per_seed)),
                                    "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
                                    "n": len(ids), "seeds": len(per_seed)}
    pd.DataFrame(scores).to_parquet(path / "scores.parquet", index=False)
    pd.DataFrame(corpus).to_parquet(path / "corpus.parquet", index=False)
    pd.DataFrame([(c, i, "a caption") for c in VALUES for i in ids],
                 columns=["captioner", "sample_id", "caption"]).to_parquet(path / "captions.parquet", index=False)
    (path / "references.json").write_text(json.dumps({i: ["a reference"] for i in ids}))
    sigs = {m: f"{m}|fake|capeval:0.1.0" for m in ("bleu_4", "cider", "judge", "err")}
    (path / "summary.json").write_text(json.dumps({"captioners": summary, "signatures": sigs}))
    metrics_info = {k: {**v, "corpus_level": False} for k, v in INFO.items()}
    (path / "manifest.json").write_text(json.dumps({"capeval_version": "0.1.0", "captioners": list(VALUES),
                                                    "samples": len(ids),
                                                    "metrics": metrics_info, "signatures": sigs}))
    return path


@pytest.fixture
def run(tmp_path):
    return load_run(write_table_run(tmp_path / "run"))


def _latex_rows(tex: str) -> list[list[str]]:
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    rows = [line.strip() for line in body.strip().splitlines()]
    assert all(r.endswith("\\\\") for r in rows)
    return [re.split(r"(?<!\\)&", r[:-2]) for r in rows]


def check_latex_structure(tex: str, n_columns: int) -> None:
    """What a compiler would reject: unbalanced braces/environments, wrong cell counts, missing rules."""
    assert tex.count("{") - tex.count("\\{") == tex.count("}") - tex.count("\\}")
    for env in ("table", "tabular"):
        assert tex.count(f"\\begin{{{env}}}") == tex.count(f"\\end{{{env}}}") == 1
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    spec = re.search(r"\\begin\{tabular\}\{([^}]*)\}", tex).group(1)
    assert len(spec) == n_columns + 1
    header = tex.split("\\toprule", 1)[1].split("\\midrule", 1)[0].strip()
    assert len(re.split(r"(?<!\\)&", header)) == n_columns + 1
    for row in _latex_rows(tex):
        assert len(row) == n_columns + 1
    assert tex.count("$") % 2 == 0


def test_latex_values_scale_and_marks(run):
    table = build_table(run, ["bleu_4", "cider", "judge", "err"])
    tex = render_latex(table)
    check_latex_structure(tex, 4)
    assert "\\usepackage{booktabs}" in tex
    assert "BLEU-4 and CIDEr are $\\times$100" in tex
    assert "$\\pm$ is the standard deviation over seeds" in tex
    rows = {r[0].strip(): [c.strip() for c in r[1:]] for r in _latex_rows(tex)}
    assert set(rows) == {"Up-Down", "VinVL\\_large \\& co", "Human"}
    # BLEU-4 x100, one decimal: 33.98 best, 29.26 second
    assert rows["VinVL\\_large \\& co"][0] == "\\textbf{34.0}"
    assert rows["Up-Down"][0] == "\\underline{29.3}"
    assert rows["Human"][0] == "28.5"
    # CIDEr: two captioners tie at 141.8 -> both bold, the next one underlined
    assert rows["VinVL\\_large \\& co"][1] == rows["Human"][1] == "\\textbf{141.8}"
    assert rows["Up-Down"][1] == "\\underline{110.7}"
    # judge (3 seeds, 1-5 scale, not scaled): mean ± std over seeds
    assert rows["Human"][2] == "\\textbf{4.20}\\,$\\pm$\\,0.20"
    assert rows["VinVL\\_large \\& co"][2] == "\\underline{3.50}\\,$\\pm$\\,0.10"
    # lower is better: 0.100 best
    assert rows["VinVL\\_large \\& co"][3] == "\\textbf{0.100}"
    assert rows["Human"][3] == "\\underline{0.200}"


def test_markdown_table(run):
    md = render_markdown(build_table(run, ["bleu_4", "judge"]))
    lines = md.splitlines()
    assert lines[0] == "| Captioner | BLEU-4 (×100) | judge |"
    assert lines[1] == "|---|---:|---:|"
    assert "| VinVL\\_large & co | **34.0** | <u>3.50</u> ± 0.10 |" in lines
    assert "| Human | 28.5 | **4.20** ± 0.20 |" in lines
    assert lines[-1].startswith("_") and "BLEU-4 is ×100" in lines[-1]


def test_csv_table(run):
    text = render_csv(build_table(run, ["bleu_4", "judge"]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["captioner", "bleu_4_x100", "judge", "judge_std"]
    human = next(r for r in rows if r["captioner"] == "Human")
    assert float(human["bleu_4_x100"]) == pytest.approx(28.48)
    assert float(human["judge"]) == pytest.approx(4.2)
    assert float(human["judge_std"]) == pytest.approx(0.2)
    assert rows[1]["captioner"] == "VinVL_large & co"


def test_spread_ci_uses_bootstrap_half_width(run):
    from capeval.stats import compute_stats

    stats = compute_stats(run, n_boot=200, n_perm=100)
    table = build_table(run, ["bleu_4"], spread="ci", stats=stats)
    cell = table.cells[("Up-Down", "bleu_4")]
    st = stats["metrics"]["bleu_4"]["captioners"]["Up-Down"]
    assert cell.spread == pytest.approx((st["ci_high"] - st["ci_low"]) / 2 * 100)
    assert "half-width of the 95% bootstrap confidence interval" in render_markdown(table)
    assert build_table(run, ["judge"], spread="none").cells[("Human", "judge")].spread is None


def test_metric_family_expands_and_unknown_metric_errors(run):
    from capeval.errors import CapevalError

    assert [c.metric for c in build_table(run, ["bleu", "cider"]).columns] == ["bleu_4", "cider"]
    with pytest.raises(CapevalError, match="not in this run"):
        build_table(run, ["spice"])


def test_latex_escape():
    assert latex_escape("a_b & 100% #1 {x} ~ ^ \\") == (
        "a\\_b \\& 100\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}")


def test_cli_table(tmp_path, capsys):
    from capeval.cli import main

    run_dir = write_table_run(tmp_path / "run")
    out = tmp_path / "t.tex"
    main(["table", str(run_dir), "--format", "latex", "--metrics", "bleu_4,cider", "-o", str(out)])
    check_latex_structure(out.read_text(), 2)
    main(["table", str(run_dir), "--format", "csv"])
    assert capsys.readouterr().out.startswith("captioner,bleu_4_x100,cider_x100,judge,judge_std,err")
    with pytest.raises(SystemExit) as exc:
        main(["table", str(run_dir), "--format", "html"])
    assert exc.value.code == 2


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine here; structure checked above")
def test_latex_compiles(run, tmp_path):
    tex = render_latex(build_table(run, ["bleu_4", "cider", "judge", "err"]))
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0
