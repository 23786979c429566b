"""``capeval board``: leaderboards that last, kept in a folder with an embedded SQLite database."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from capeval.cli import app

board_app = typer.Typer(name="board", no_args_is_help=True, add_completion=False,
                        help="Lasting leaderboards: a folder with an SQLite database. Run `capeval board COMMAND "
                             "--help` for examples.")
app.add_typer(board_app, name="board")

def _stats_params(n_boot: int, n_perm: int, seed: int, alpha: float) -> dict:
    return {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "alpha": alpha}


N_BOOT = typer.Option(1000, "--n-boot", help="Bootstrap resamples over images.")
N_PERM = typer.Option(5000, "--n-perm", help="Permutations of each paired test.")
SEED = typer.Option(0, "--seed", help="Seed of the resampling.")
ALPHA = typer.Option(0.05, "--alpha", help="Significance level (CIs are 1 - alpha).")


@board_app.command("init")
def init_command(
    board_dir: Path = typer.Argument(..., help="Folder of the new board."),
    refs: Path = typer.Option(..., "--refs", help="References every submission must have been scored against."),
    metrics: str | None = typer.Option(None, "--metrics", "-m",
                                       help="Comma-separated metrics to rank (default: those of the first run)."),
    title: str | None = typer.Option(None, "--title", help="Board title (default: the folder name)."),
    ref_id_field: str | None = typer.Option(None, "--ref-id-field", help="Id field of the references."),
    ref_text_field: str | None = typer.Option(None, "--ref-text-field", help="Text field of the references."),
) -> None:
    """Create a board fixed to REFS (sha256 of the reference texts) and, from its first submission, to each
    metric's signature.

    Example:
        capeval board init boards/coco --refs mscoco_references.jsonl --metrics bleu,meteor,rouge_l,cider
    """
    from capeval.board import init_board

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    path = init_board(board_dir, refs, metrics=names, title=title, id_field=ref_id_field, text_field=ref_text_field)
    print(f"created board {path}")


@board_app.command("add")
def add_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    run_dir: Path = typer.Argument(..., help="A run directory written by `capeval score`."),
    name: str | None = typer.Option(None, "--name", help="Submission name (default: the captioner's name)."),
    note: str | None = typer.Option(None, "--note", help="A note shown with the submission."),
    track: str | None = typer.Option(None, "--track", help="Rank on this separate track (created on first use)."),
    captioner: list[str] = typer.Option([], "--captioner", help="Captioner(s) of the run to add (default: all)."),
) -> None:
    """Add a run's captioner(s). A run whose references or score-moving signature fields differ from the
    board's is refused, naming them; re-adding a name makes a new version and keeps the old one in the history.

    Example:
        capeval board add boards/coco runs/mine --name "mine (beam 5)" --note "beam search, 5 beams"
        capeval board add boards/coco runs/other-refs --track karpathy-test
    """
    from capeval.board import add_submission

    for rec in add_submission(board_dir, run_dir, name=name, note=note, track=track, captioners=captioner or None):
        moved = f"; now on top of {', '.join(rec['took_top'])}" if rec["took_top"] else ""
        print(f"added {rec['name']!r} v{rec['version']} to track {rec['track']!r}{moved}")


@board_app.command("remove")
def remove_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    name: str = typer.Argument(..., help="Submission name."),
    track: str = typer.Option("main", "--track", help="Track of the submission."),
) -> None:
    """Take a submission off the board (its data and history are kept).

    Example:
        capeval board remove boards/coco "mine (beam 5)"
    """
    from capeval.board import remove_submission

    rec = remove_submission(board_dir, name, track=track)
    print(f"removed {rec['name']!r} v{rec['version']} from track {rec['track']!r}")


def _load(board_dir: Path, params: dict) -> dict:
    from capeval.board import open_board
    from capeval.board.document import board_document

    conn = open_board(board_dir)
    try:
        return _guard(board_dir, lambda: board_document(conn, board_dir, params))
    finally:
        conn.close()


def _guard(board_dir: Path, fn):
    import sqlite3

    from capeval.board.db import db_path
    from capeval.errors import CapevalError

    try:
        return fn()
    except sqlite3.DatabaseError as exc:
        raise CapevalError(f"{db_path(board_dir)}: corrupt or unreadable board database ({exc})") from exc


@board_app.command("list")
def list_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    n_boot: int = N_BOOT, n_perm: int = N_PERM, seed: int = SEED, alpha: float = ALPHA,
) -> None:
    """Print every track's leaderboard: value, 95% CI and tier per metric.

    Example:
        capeval board list boards/coco
    """
    from rich.console import Console
    from rich.table import Table

    from capeval.report.build import fmt

    doc = _load(board_dir, _stats_params(n_boot, n_perm, seed, alpha))
    console = Console()
    for t in doc["tracks"]:
        console.print(f"{doc['title']} · track {t['name']} · {t['samples']} images · {len(t['submissions'])} "
                      "submissions", markup=False)
        for metric, meta in t["metrics"].items():
            table = Table(title=f"{metric} · {meta['method']}", title_justify="left")
            for col in ("tier", "captioner", "value", "95% CI", "n", "length"):
                table.add_column(col, justify="left" if col == "captioner" else "right")
            subs = sorted(t["submissions"], key=lambda s, m=metric: (s["metrics"][m]["rank"] or 10**9,
                                                                     -(s["metrics"][m]["value"] or 0)))
            for s in subs:
                c = s["metrics"][metric]
                length = "–" if s["mean_length"] is None else f"{s['mean_length']:.1f}"
                table.add_row(str(c["rank"] or "–"), f"{s['name']} v{s['version']}", fmt(c["value"]),
                              f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]", str(c["n"]), length)
            console.print(table)
    for b in doc["battles"]:
        table = Table(title=f"pairwise judge {b['name']} · {b['method']} · {b['battles']} battles",
                      title_justify="left")
        for col in ("rank", "model", "rating", "95% CI", "battles"):
            table.add_column(col)
        for m in b["models"]:
            table.add_row(str(m["rank"]), m["model"], f"{m['rating']:.1f}", f"[{m['ci_low']:.1f}, {m['ci_high']:.1f}]",
                          str(m["battles"]))
        console.print(table)


@board_app.command("show")
def show_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    name: str = typer.Argument(..., help="Submission name."),
    track: str | None = typer.Option(None, "--track", help="Track (default: every track holding NAME)."),
    n_boot: int = N_BOOT, n_perm: int = N_PERM, seed: int = SEED, alpha: float = ALPHA,
) -> None:
    """Print one submission: values, CIs, tiers, and the history of its versions.

    Example:
        capeval board show boards/coco VinVL-large
    """
    from capeval.errors import CapevalError
    from capeval.report.build import fmt

    doc = _load(board_dir, _stats_params(n_boot, n_perm, seed, alpha))
    found = False
    for t in doc["tracks"]:
        if track and t["name"] != track:
            continue
        versions = [v for v in t["all_versions"] if v["name"] == name]
        if not versions:
            continue
        found = True
        print(f"{name} · track {t['name']}")
        for s in t["submissions"]:
            if s["name"] != name:
                continue
            print(f"  v{s['version']} added {s['added']} · capeval {s['capeval_version']} · run {s['run_path']}")
            if s["note"]:
                print(f"  note: {s['note']}")
            for m, c in s["metrics"].items():
                print(f"  {m:10s} {fmt(c['value'])}  [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]  tier {c['rank']} "
                      f"of {len(t['submissions'])}  n={c['n']}")
        for v in versions:
            print(f"  history: v{v['version']} {v['status']} added {v['added']}")
    if not found:
        raise CapevalError(f"{board_dir}: no submission named {name!r}")


@board_app.command("build")
def build_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Site folder to write (replaced atomically)."),
    n_boot: int = N_BOOT, n_perm: int = N_PERM, seed: int = SEED, alpha: float = ALPHA,
) -> None:
    """Write the static site: the board, a page per submission, a compare page and board.json; it works from
    file:// and any static host.

    Example:
        capeval board build boards/coco -o site/
    """
    from capeval.board.site import build_site

    path = build_site(board_dir, out, params=_stats_params(n_boot, n_perm, seed, alpha))
    print(f"wrote {path / 'index.html'}")


@board_app.command("export")
def export_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    fmt_: str = typer.Option("json", "--format", "-f", help="json | csv | eee (Every Eval Ever)."),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="File to write (json, csv; default stdout) or folder (eee, required)."),
    organization: str = typer.Option("unknown", "--organization", help="EEE source_organization_name."),
    n_boot: int = N_BOOT, n_perm: int = N_PERM, seed: int = SEED, alpha: float = ALPHA,
) -> None:
    """Export the board as JSON, CSV (one row per submission and metric) or Every Eval Ever records (one JSON
    file per submission: metric config, bootstrap uncertainty, judge settings, generation config).

    Example:
        capeval board export boards/coco --format csv -o board.csv
        capeval board export boards/coco --format eee -o eee/
    """
    from capeval.board import export, open_board
    from capeval.errors import CapevalError

    if fmt_ not in ("json", "csv", "eee"):
        raise CapevalError(f"--format must be json, csv or eee, got {fmt_!r}")
    doc = _load(board_dir, _stats_params(n_boot, n_perm, seed, alpha))
    if fmt_ == "eee":
        if out is None:
            raise CapevalError("--format eee writes one file per submission: give a folder with --out")
        conn = open_board(board_dir)
        try:
            rows = conn.execute("SELECT track, name, manifest FROM submissions WHERE active = 1").fetchall()
        finally:
            conn.close()
        manifests = {(r["track"], r["name"]): json.loads(r["manifest"]) for r in rows}
        records = export.eee_records(doc, manifests, organization=organization)
        slugs = [s["slug"] for t in doc["tracks"] for s in t["submissions"]]
        paths = export.write_eee(records, out, slugs)
        print(f"wrote {len(paths)} Every Eval Ever record(s) to {out}")
        return
    text = export.to_csv(doc) if fmt_ == "csv" else json.dumps(doc, indent=1, ensure_ascii=False,
                                                              allow_nan=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")


@board_app.command("battles")
def battles_command(
    board_dir: Path = typer.Argument(..., help="The board folder."),
    battle_file: Path = typer.Argument(..., help="A CapArena-Auto battle file (JSON list of battles)."),
    name: str | None = typer.Option(None, "--name", help="Name of the battle set (default: the file name)."),
    method: str = typer.Option("bt", "--method", help="bt (Bradley–Terry) or elo (CapArena's online Elo)."),
    judge: str | None = typer.Option(None, "--judge", help="Judge model that produced the verdicts."),
) -> None:
    """Import pairwise judge battles (CapArena-Auto format) and rank their models with bootstrap CIs.

    Example:
        capeval board battles boards/coco caparena_auto_eval.json --method bt --judge gpt-4o
    """
    from capeval.board.submit import import_battles

    rec = import_battles(board_dir, battle_file, name=name, method=method, judge=judge)
    skipped = f" ({rec['skipped']} without a readable verdict: {rec['skipped_reasons']})" if rec["skipped"] else ""
    print(f"imported {rec['battles']} battles between {len(rec['models'])} models as {rec['name']!r}{skipped}")
