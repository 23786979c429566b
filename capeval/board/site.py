"""``capeval board build``: a static multi-page site that works from a file:// URL and any static host.

Layout: ``index.html`` (every track's board, sortable, coloured by tier; battle rankings; history),
``s/<slug>.html`` (one page per submission with its per-sample browser), ``compare.html`` (any two submissions
of a track: per-sample differences, biggest wins and losses), ``board.json`` (the board document), ``data/*.js``
(per-sample data loaded with ``<script src>``, which file:// allows), ``assets/``. Names and captions are only
ever page text (Jinja autoescaping, JS ``textContent``) and never paths: files are named by slug.
The site is written to a temporary folder and swapped in, so a failed build leaves the old site.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from capeval import __version__
from capeval.assets import asset_dir
from capeval.board import db
from capeval.board.document import board_document
from capeval.board.slugs import slugify
from capeval.errors import CapevalError
from capeval.report.build import fmt, script_json

log = logging.getLogger("capeval")
TEMPLATES = "board-v1"


def _tier_class(rank: Any) -> str:
    return str(rank) if isinstance(rank, int) and 1 <= rank <= 5 else "more"


def _num(v: Any) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def _cells(sub: dict[str, Any], metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in metrics:
        c = sub["metrics"].get(m["key"], {})
        ci = (f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]" if c.get("ci_low") is not None
              and c.get("ci_high") is not None else "")
        rr = c.get("rank_range")
        out.append({"key": m["key"], "value": fmt(c.get("value")), "ci": ci, "tier": c.get("rank") or "–",
                    "tier_class": _tier_class(c.get("rank")), "n": c.get("n"),
                    "rank_range": "–" if not rr else f"{rr[0]}–{rr[1]}",
                    "sort": _num(c.get("value") if m["higher_is_better"] or c.get("value") is None
                                 else -c["value"])})
    return out


def _track_context(track: dict[str, Any]) -> dict[str, Any]:
    metrics = [{"key": k, **v} for k, v in track["metrics"].items()]
    primary = metrics[0]["key"] if metrics else ""
    rows = []
    for sub in track["submissions"]:
        cells = _cells(sub, metrics)
        tier = sub["metrics"].get(primary, {}).get("rank")
        cost = sub["cost_usd"]
        rows.append({**sub, "cells": cells, "tier": tier or "–", "tier_class": _tier_class(tier),
                     "tier_sort": tier if tier is not None else "",
                     "length": "–" if sub["mean_length"] is None else f"{sub['mean_length']:.1f}",
                     "length_sort": _num(sub["mean_length"]),
                     "cost": "–" if cost is None else f"${cost:.4f}", "cost_sort": _num(cost),
                     "cost_title": "judge cost of this captioner's run" if cost is not None else
                     "no judge cost recorded for this captioner alone",
                     "added_short": sub["added"][:16].replace("T", " "),
                     "run_name": Path(sub["run_path"]).name, "note": sub["note"]})
    rows.sort(key=lambda r: (r["tier"] if isinstance(r["tier"], int) else 10**9,
                             -(r["metrics"].get(primary, {}).get("value") or 0)
                             * (1 if not metrics or metrics[0]["higher_is_better"] else -1)))
    history = [{**h, "time_short": h["time"][:19].replace("T", " "), "took_top": h.get("took_top", []),
                "capeval_version": h.get("capeval_version")} for h in track["history"]]
    return {**track, "slug": slugify("track", track["name"]), "metrics": metrics, "primary": primary,
            "rows": rows, "history": history}


def _battle_context(b: dict[str, Any]) -> dict[str, Any]:
    rows = [{**m, "rating": f"{m['rating']:.1f}", "rating_sort": _num(m["rating"]),
             "ci": f"[{m['ci_low']:.1f}, {m['ci_high']:.1f}]" if m["ci_low"] is not None and math.isfinite(
                 m["ci_low"]) else "–", "ci_sort": _num(m["ci_low"]), "tier_class": _tier_class(m["rank"])}
            for m in b["models"]]
    return {**b, "rows": rows, "level": round(100 * (1 - b["alpha"]))}


def _sample_data(conn: sqlite3.Connection, sub_id: int, ids: list[str], metrics: list[str]) -> dict[str, Any]:
    """Captions and seed-averaged per-sample values of one submission, in the track's sample order."""
    caps = json.loads(conn.execute("SELECT texts FROM captions WHERE sub = ?", (sub_id,)).fetchone()[0])
    table = np.full((len(ids), len(metrics)), np.nan)
    for k, metric in enumerate(metrics):
        blobs = [np.frombuffer(r[0], dtype="<f8") for r in conn.execute(
            'SELECT "values" FROM scores WHERE sub = ? AND metric = ?', (sub_id, metric))]
        if blobs:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN samples stay NaN
                table[:, k] = np.nanmean(np.vstack(blobs), axis=0)
    values = [[None if v != v else v for v in row] for row in np.round(table, 6).tolist()]
    return {"metrics": metrics, "caps": caps, "scores": values}


def _write_js(path: Path, var: str, key: str, obj: Any) -> None:
    path.write_text(f"window.{var} = window.{var} || {{}};\nwindow.{var}[{json.dumps(key)}] = {script_json(obj)};\n",
                    encoding="utf-8")


def build_site(board_dir: str | Path, out_dir: str | Path, *, params: dict[str, Any] | None = None) -> Path:
    """Write the board's static site to ``out_dir`` (replaced atomically); returns ``out_dir``."""
    started = time.perf_counter()
    board_dir, out_dir = Path(board_dir), Path(out_dir)
    conn = db.open_board(board_dir)
    try:
        doc = board_document(conn, board_dir, params)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists()
                                    else None))
        try:
            _write_site(conn, doc, tmp)
            _swap(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except sqlite3.DatabaseError as exc:
        raise CapevalError(f"{db.db_path(board_dir)}: corrupt or unreadable board database ({exc})") from exc
    finally:
        conn.close()
    log.info("board: built %s in %.1f s", out_dir, time.perf_counter() - started)
    return out_dir


def _swap(tmp: Path, out_dir: Path) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists():
        if not (out_dir / "board.json").exists() and any(out_dir.iterdir()):
            raise CapevalError(f"{out_dir}: exists and is not a board site; choose an empty or new folder")
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def _write_site(conn: sqlite3.Connection, doc: dict[str, Any], out: Path) -> None:
    templates = asset_dir("reports") / TEMPLATES
    env = Environment(loader=FileSystemLoader(str(templates)), autoescape=True, undefined=StrictUndefined)
    (out / "assets").mkdir()
    (out / "data").mkdir()
    (out / "s").mkdir()
    for name in ("board.css", "board.js"):
        shutil.copy(templates / name, out / "assets" / name)
    tracks = [_track_context(t) for t in doc["tracks"]]
    alpha = tracks[0]["params"].get("alpha", 0.05) if tracks else 0.05
    common = {"title": doc["title"], "capeval_version": __version__, "alpha": alpha,
              "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    refs = {**doc["references"], "path_name": Path(doc["references"].get("path", "")).name}
    (out / "index.html").write_text(env.get_template("index.html.jinja").render(
        **common, root="", page="board", references=refs, tracks=tracks,
        n_active=sum(len(t["rows"]) for t in tracks), battles=[_battle_context(b) for b in doc["battles"]]),
        encoding="utf-8")
    index = {"tracks": []}
    sub_tpl = env.get_template("submission.html.jinja")
    for t in tracks:
        ids = [r[0] for r in conn.execute("SELECT sample_id FROM refs WHERE track = ? ORDER BY position",
                                          (t["name"],))]
        texts = [json.loads(r[0]) for r in conn.execute("SELECT texts FROM refs WHERE track = ? ORDER BY position",
                                                        (t["name"],))]
        _write_js(out / "data" / f"refs-{t['slug']}.js", "CAPEVAL_REFS", t["slug"], {"ids": ids, "refs": texts})
        keys = [m["key"] for m in t["metrics"]]
        versions = {}
        for v in t["all_versions"]:
            versions.setdefault(v["name"], []).append(v)
        for row in t["rows"]:
            sub_id = conn.execute("SELECT id FROM submissions WHERE slug = ?", (row["slug"],)).fetchone()[0]
            _write_js(out / "data" / f"{row['slug']}.js", "CAPEVAL_DATA", row["slug"],
                      _sample_data(conn, sub_id, ids, keys))
            sub = {**row, "cells": row["cells"], "length": row["length"], "cost": row["cost"]}
            (out / "s" / f"{row['slug']}.html").write_text(sub_tpl.render(
                **common, root="../", page="submission", sub=sub, track=t, versions=versions[row["name"]]),
                encoding="utf-8")
        index["tracks"].append({"name": t["name"], "slug": t["slug"],
                                "metrics": [{"key": m["key"], "hib": m["higher_is_better"]} for m in t["metrics"]],
                                "subs": [{"slug": r["slug"], "name": r["name"], "version": r["version"]}
                                         for r in t["rows"]]})
    (out / "compare.html").write_text(env.get_template("compare.html.jinja").render(
        **common, root="", page="compare", index_json=Markup(script_json(index)),
        refs_slugs=[t["slug"] for t in tracks]),
        encoding="utf-8")
    (out / "board.json").write_text(json.dumps(_public(doc), indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                                    encoding="utf-8")


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    """The board document without local file paths (a site is for publishing)."""
    out = json.loads(json.dumps(doc))
    for t in out["tracks"]:
        for s in t["submissions"]:
            s["run"] = Path(s.pop("run_path")).name
        for h in t["history"]:
            h.pop("run", None)
    for h in out["history"]:
        h.pop("run", None)
    out["references"] = {k: v for k, v in out["references"].items() if k != "path"}
    for b in out["battles"]:
        b["source"] = Path(b["source"]).name
    return out
