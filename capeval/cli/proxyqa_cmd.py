"""``capeval proxy-qa``: caption-as-proxy QA (CaptionQA-style) in one command; writes a run directory."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from capeval.cli import app
from capeval.errors import CapevalError

log = logging.getLogger("capeval")


@app.command("proxy-qa")
def proxy_qa_command(
    questions: str = typer.Option(..., "--questions", "-Q",
                                  help="Question set: VLMEvalKit .tsv, CaptionQA .json, .jsonl, or a shipped "
                                       "set name (thumb)."),
    cand: list[str] = typer.Option([], "--cand", help="Captions as NAME=PATH (repeatable)."),
    id_field: str | None = typer.Option(None, "--id-field", help="Id field/column of the caption files."),
    text_field: str | None = typer.Option(None, "--text-field", help="Caption field/column."),
    system_field: str | None = typer.Option(
        None, "--system-field", help="Field naming the captioner when one file holds several (e.g. SYS)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory to write."),
    refs: Path | None = typer.Option(None, "--refs", help="References (optional; default: the questions "
                                                          "stand in as each image's references)."),
    seeds: int = typer.Option(1, "--seeds", help="Run with seeds 0..N-1 (option order and sampling)."),
    unanswerable: bool = typer.Option(False, "--unanswerable/--no-unanswerable",
                                      help="Add CaptionQA's 'Cannot answer from the caption' option."),
    grader: str = typer.Option("exact", "--grader", help="Open answers: exact (VQA-normalised) or llm."),
    with_image: bool = typer.Option(False, "--with-image", help="Also answer from the image (a VLM) and "
                                                                "report the caption's utility ratio."),
    images: Path | None = typer.Option(None, "--images", help="Folder of <image_id>.* images."),
    dump_images: Path | None = typer.Option(None, "--dump-images",
                                            help="Write the question set's base64 images to this folder "
                                                 "(as <image_id>.jpg, for captioning them) and exit."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Answering model at the endpoint."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="OpenAI-compatible base URL."),
    judge_template: Path | None = typer.Option(None, "--judge-template", help="Own Jinja2 prompt template."),
    judge_concurrency: int | None = typer.Option(None, "--judge-concurrency", help="Concurrent requests."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the judge cache."),
    refresh_cache: bool = typer.Option(False, "--refresh-cache", help="Ignore cached replies."),
    option: list[str] = typer.Option([], "--option", help="Metric/judge option KEY=VALUE (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Answer each image's questions from its caption alone with an LLM; score = CaptionQA's QA score.

    Example:
        capeval judge serve --port 8088 &
        capeval proxy-qa -Q thumb --cand mine=captions.json --judge-base-url http://127.0.0.1:8088/v1 \\
            --judge-model smollm2 --seeds 3 --unanswerable --out runs/pqa
        capeval proxy-qa -Q thumb --cand ../shared/data/thumb/mscoco_THumB-1.0.jsonl --system-field SYS \\
            --judge-base-url http://127.0.0.1:8088/v1 --judge-model smollm2 --out runs/thumb-pqa
        capeval proxy-qa -Q bench.tsv --dump-images imgs/   # VLMEvalKit TSV: write its images to caption
    """
    from capeval.cli.score_cmd import _coerce, load_candidate_args, parse_key_values
    from capeval.proxyqa.questions import dump_images as write_images
    from capeval.proxyqa.questions import load_questions

    if dump_images is not None:
        qs = load_questions(questions)
        written = write_images(qs, dump_images)
        print(f"wrote {len(written)} image(s) to {dump_images}")
        return
    if not cand:
        raise CapevalError("give at least one --cand NAME=PATH (or --dump-images DIR)")
    if out is None:
        raise CapevalError("give --out RUN_DIR")
    options = {k: _coerce(v) for k, v in parse_key_values(option, "--option").items()}
    flags = {
        "proxy_qa_questions": questions, "proxy_qa_unanswerable": unanswerable, "proxy_qa_grader": grader,
        "with_image": with_image, "images": str(images) if images else None,
        "judge_model": judge_model, "judge_base_url": judge_base_url,
        "judge_template": str(judge_template) if judge_template else None,
        "judge_concurrency": judge_concurrency, "cache": not no_cache, "refresh_cache": refresh_cache,
        "seeds": seeds, "run_dir": str(out),
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    candidates = load_candidate_args(cand, id_field, text_field, system_field)
    results = run_proxy_qa(questions, candidates, refs=refs, seeds=seeds, options=options,
                           progress=False if quiet else None)
    results.write(out, command=["capeval", *sys.argv[1:]])
    if not quiet:
        print_proxy_summary(results, out)


def run_proxy_qa(questions: str, candidates: dict, *, refs: Path | None = None, seeds: int = 1,
                 options: dict | None = None, progress: bool | None = False):
    """Score caption files with ``proxy_qa`` only; captions of images without questions are left out."""
    from capeval.api import evaluate
    from capeval.io.readers import CaptionFile, read_references
    from capeval.proxyqa.questions import load_questions

    options = dict(options or {})
    qs = load_questions(questions, images_dir=options.get("images"))
    kept: dict[str, CaptionFile] = {}
    for name, cf in candidates.items():
        captions = {i: t for i, t in cf.captions.items() if i in qs.by_image}
        dropped = len(cf.captions) - len(captions)
        if not captions:
            raise CapevalError(f"captioner {name!r} ({cf.path}): none of its ids is an image id of the "
                               f"question set {qs.path} (e.g. {next(iter(cf.captions), '?')!r} vs "
                               f"{next(iter(qs.by_image))!r})")
        if dropped:
            log.warning("%s: captioner %r: %d caption(s) of images without questions left out", cf.path, name, dropped)
        kept[name] = CaptionFile(cf.path, captions, "untyped", cf.images, cf.format, sha256=cf.sha256)
    if refs is not None:
        references = read_references(refs)
    else:
        references = CaptionFile(qs.path, {i: [q.question for q in qq] for i, qq in qs.by_image.items()},
                                 "untyped", format="questions", sha256=qs.sha256)
    return evaluate(references, kept, ["proxy_qa"], seeds=seeds, options=options, progress=progress)


def _cell(rows, metric: str) -> str:
    if metric not in rows.index:
        return "-"
    mean, std = rows.loc[metric, "mean"], rows.loc[metric, "std"]
    if mean != mean:  # NaN: nothing answered
        return "-"
    return f"{mean:.3f}" + (f"±{std:.3f}" if std is not None and std == std else "")


def print_proxy_summary(results, out: Path) -> None:
    """Two tables: the headline scores (mean±std over seeds, unparsable count) and the breakdown."""
    from rich.console import Console
    from rich.table import Table

    summary = results.summary
    names = list(dict.fromkeys(summary["metric"]))
    head = [m for m in names if not m.startswith("proxy_qa.")]
    parts = [m for m in names if m.startswith("proxy_qa.")]
    console = Console()
    table = Table(title=f"capeval proxy-qa · {out}")
    table.add_column("captioner")
    for m in head:
        table.add_column(m, justify="right")
    table.add_column("unparsable (all seeds)", justify="right")
    by_cap = {cap: summary[summary.captioner == cap].set_index("metric") for cap in results.dataset.captioners}
    for cap, rows in by_cap.items():
        table.add_row(cap, *(_cell(rows, m) for m in head),
                      str(results.failures.get(cap, {}).get("proxy_qa", 0)))
    console.print(table)
    if parts:
        detail = Table(title="proxy_qa by category (cat.) and split")
        detail.add_column("group")
        for cap in by_cap:
            detail.add_column(cap, justify="right")
        for m in parts:
            detail.add_row(m.removeprefix("proxy_qa."), *(_cell(rows, m) for rows in by_cap.values()))
        console.print(detail)
