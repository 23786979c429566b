"""``capeval demo``: the main job on the bundled default, offline, end to end.

Generates the synthetic shapes test split, captions it with the bundled MM-SeR baseline (single pass and
refined) and a deliberately weak rule-based captioner, scores them with every metric that can run here, then
writes the run directory, statistics, the HTML report and a Markdown table.

Judge metrics (CLAIR, proxy QA) run through a local judge when ``capeval[local]`` is installed, on a subset of
the images (``judge_images``) and with ``seeds`` seeds, as a second run directory. The judge is the best local
(model, scoring mode) measured against human judgments in ``datasets/judge-agreement.md``; the report page and
``table.md`` state that measured agreement with its CI, and say that the judge numbers are a plumbing check,
not a result, when the CI includes no agreement (as it does for the tiny models capeval can ship).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("capeval")

COCO_METRICS = ["bleu", "meteor", "rouge_l", "cider"]
NEURAL_METRICS = ["bertscore", "capture"]
JUDGE_METRICS = ["clair", "proxy_qa"]
CAPTIONERS = ("mmser-refined", "mmser-single", "one-shape")
TABLE_METRICS = ["bleu_1", "bleu_4", "meteor", "rouge_l", "cider", "bertscore", "capture", "clair", "proxy_qa"]


@dataclass
class DemoResult:
    """Where the demo wrote things, what ran, and what was skipped (with why)."""

    out_dir: Path
    run_dir: Path
    report: Path
    table: Path
    judge_run_dir: Path | None = None
    metrics: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _available(names: list[str], skipped: dict[str, str]) -> list[str]:
    from capeval.registry import get_metric_class

    ok = []
    for name in names:
        try:
            avail = get_metric_class(name).availability()
        except Exception as exc:  # a metric whose optional dependencies are not installed
            skipped[name] = f"failed to load: {exc}"
            continue
        if avail.ok:
            ok.append(name)
        else:
            skipped[name] = avail.reason
    return ok


def _write_captions(out: Path, images_dir: Path, say: Callable[[str], None]) -> dict[str, Path]:
    from capeval.baselines.mmser.inference import caption_images, write_coco_results
    from capeval.baselines.oneshape import caption_images_oneshape

    out.mkdir(parents=True, exist_ok=True)
    caps = caption_images(images_dir, refine=True,
                          on_batch=lambda done, total: say(f"  captioned {done}/{total} images"))
    paths = {
        "mmser-refined": write_coco_results(caps, out / "mmser-refined.json", which="refined"),
        "mmser-single": write_coco_results(caps, out / "mmser-single.json", which="initial"),
    }
    weak = caption_images_oneshape(images_dir)
    weak_path = out / "one-shape.json"
    weak_path.write_text(json.dumps([{"image_id": k, "caption": v} for k, v in weak.items()], indent=1) + "\n",
                         encoding="utf-8")
    paths["one-shape"] = weak_path
    return paths


def choose_judge() -> tuple[str, str, str | None]:
    """(model, scoring mode, agreement note) of the best measured local judge whose package is installed."""
    from capeval.judges.agreement import agreement_note, best_local_judge, load_measurements
    from capeval.judges.local_models import MODELS, model_available

    installed = {name for name in MODELS if model_available(name)[0]}
    try:
        measured = load_measurements()
    except Exception as exc:  # noqa: BLE001 - the demo still runs, and says it has no measurement
        log.warning("demo: no judge agreement card (%s)", exc)
        measured = []
    best = best_local_judge(measured, installed)
    if best is None:
        return "smollm2", "generate", ("Judge: smollm2; its agreement with human judgments has not been measured, "
                                       "so the judge numbers here are a plumbing check, not a result.")
    pascal = [m for m in measured if m.model == best.model and m.scoring == best.scoring
              and m.metric == best.metric and m.dataset == "pascal-50s"]
    return best.model, best.scoring, agreement_note(best, pascal)


def _judge_run(out: Path, references: Path, captions: dict[str, Path], scenes: Path, images_dir: Path,
               n_images: int, seeds: int, metrics: list[str], progress: bool | None,
               model: str = "smollm2", scoring: str = "generate") -> Path:
    import capeval
    from capeval.io.readers import read_candidates, read_references
    from capeval.judges.serve import LocalJudgeServer

    refs = read_references(references)
    keep = list(refs.captions)[:n_images]
    subset_refs = {k: refs.captions[k] for k in keep}
    subset = {}
    for name, path in captions.items():
        cands = read_candidates(path)[None].captions
        subset[name] = {k: cands[k][0] for k in keep}
    run_dir = out / "run-judges"
    with LocalJudgeServer(model=model, parallel=1) as server:  # threads: every core (nothing else runs)
        options = {
            "judge_base_url": server.base_url, "judge_model": server.alias, "judge_scoring": scoring,
            # one request in flight for the one slot: time queued at the server would count against the timeout
            "judge_concurrency": 1, "judge_timeout": 600,
            "judge_cache": str(out / "judge-cache.sqlite"),
            "proxy_qa_questions": str(scenes), "images": str(images_dir),
        }
        results = capeval.evaluate(subset_refs, subset, metrics, seeds=seeds, options=options, progress=progress)
    results.inputs["references"]["path"] = f"{references} (first {len(keep)} images)"
    results.write(run_dir, command=["capeval", "demo"])
    return run_dir


def run_demo(out_dir: str | Path = "capeval-demo", *, n_images: int = 48, judge_images: int = 8, seeds: int = 2,
             judge: bool | None = None, progress: bool | None = None,
             say: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo into ``out_dir``; ``judge=None`` runs the judge metrics when the local judge exists."""
    import capeval
    from capeval.baselines.shapes import generate_shapes
    from capeval.report import build_report
    from capeval.rundir import load_run
    from capeval.stats import load_or_compute_stats
    from capeval.tables import build_table, render

    start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}

    say(f"[1/6] generating {n_images} synthetic shapes test images (seed 0)")
    images_dir, references = generate_shapes(out / "data", n_images, seed=0, split="test")
    scenes = images_dir.parent / "scenes.json"

    say("[2/6] captioning with the bundled MM-SeR baseline (single pass + refined) and the one-shape rule")
    captions = _write_captions(out / "captions", images_dir, say)

    metrics = _available(COCO_METRICS + NEURAL_METRICS, skipped)
    say(f"[3/6] scoring {len(CAPTIONERS)} captioners with {', '.join(metrics)}")
    results = capeval.evaluate(str(references), {k: str(v) for k, v in captions.items()}, metrics,
                               progress=progress, options={"images": str(images_dir)})
    run_dir = out / "run"
    results.write(run_dir, command=["capeval", "demo"])

    judge_run = None
    judge_metrics: list[str] = []
    if judge is not False:
        from capeval.judges.serve import local_judge_available

        ok, why = local_judge_available()
        judge_metrics = _available(JUDGE_METRICS, skipped) if ok else []
        if not ok:
            for m in JUDGE_METRICS:
                skipped[m] = f"no local judge: {why}"
    note = None
    if judge_metrics:
        model, scoring, note = choose_judge()
        say(f"[4/6] judging {judge_images} images with {', '.join(judge_metrics)} through the local {model} "
            f"judge ({scoring} scoring), {seeds} seeds")
        judge_run = _judge_run(out, references, captions, scenes, images_dir, judge_images, seeds,
                               judge_metrics, progress, model, scoring)
        say(f"  {note}")
    else:
        say("[4/6] judge metrics skipped: " + "; ".join(f"{m}: {skipped.get(m, 'off')}" for m in JUDGE_METRICS))

    say("[5/6] statistics: bootstrap confidence intervals, paired tests, ranks")
    runs = [run_dir] + ([judge_run] if judge_run else [])
    for r in runs:
        load_or_compute_stats(r)

    say("[6/6] writing the HTML report and the Markdown table")
    report = build_report([str(r) for r in runs], out / "report.html", images_dir=str(images_dir),
                          title="capeval demo: MM-SeR on synthetic shapes", notes=[note] if note else [])
    parts = []
    for r in runs:
        run = load_run(r)
        present = set(run.corpus["metric"].astype(str))
        table = build_table(run, metrics=[m for m in TABLE_METRICS if m in present])
        head = f"### {r.name}\n\n" + (f"{note}\n\n" if r == judge_run and note else "")
        parts.append(head + render(table, "markdown"))
    table_path = out / "table.md"
    table_path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return DemoResult(out_dir=out, run_dir=run_dir, report=report, table=table_path, judge_run_dir=judge_run,
                      metrics=metrics + judge_metrics, skipped=skipped, seconds=time.time() - start)
