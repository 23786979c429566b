"""Creating a board and adding or removing submissions: every check happens before the one write transaction."""

from __future__ import annotations

import io
import json
import logging
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval import __version__
from capeval.board import db
from capeval.board.slugs import slugify
from capeval.errors import CapevalError
from capeval.hashing import sha256_file, sha256_json
from capeval.rundir import Run, load_run
from capeval.signature import differing_fields
from capeval.text import normalize_whitespace

log = logging.getLogger("capeval")

MAIN_TRACK = "main"


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds (orders events added in the same second)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def normalized_references(refs: dict[str, list[str]], path: str) -> dict[str, list[str]]:
    """References as a run stores them: whitespace normalised, blank ones dropped (as :func:`capeval.io.align`)."""
    out = {}
    for sid, texts in refs.items():
        kept = [t for t in (normalize_whitespace(x) for x in texts) if t]
        if not kept:
            raise CapevalError(f"{path}: id {sid!r}: every reference is blank")
        out[str(sid)] = kept
    return out


def init_board(board_dir: str | Path, refs_path: str | Path, *, metrics: Sequence[str] | None = None,
               title: str | None = None, id_field: str | None = None, text_field: str | None = None) -> Path:
    """Create a board in ``board_dir`` fixed to the references in ``refs_path`` (and, when given, to ``metrics``:
    metric or output names such as ``cider`` or ``bleu_4``); returns the database path."""
    from capeval.io.readers import read_references

    board_dir = Path(board_dir)
    if db.db_path(board_dir).exists():
        raise CapevalError(f"{db.db_path(board_dir)}: a board already exists here")
    ref_file = read_references(refs_path, id_field=id_field, text_field=text_field)
    refs = normalized_references(ref_file.captions, str(refs_path))
    conn = db.create(board_dir, {
        "title": title or board_dir.resolve().name, "created": now_iso(), "capeval_version": __version__,
        "metrics": list(metrics) if metrics else None,
        "references": {"path": str(refs_path), "sha256": sha256_file(refs_path), "samples": len(refs)},
    })
    try:
        with db.transaction(conn, db.db_path(board_dir)):
            _insert_track(conn, MAIN_TRACK, refs, dict(ref_file.images))
    finally:
        conn.close()
    return db.db_path(board_dir)


def _insert_track(conn: sqlite3.Connection, name: str, refs: dict[str, list[str]], images: dict[str, str]) -> None:
    conn.execute("INSERT INTO tracks (name, refs_sha256, signatures, signatures_json, metric_info, created) "
                 "VALUES (?, ?, NULL, NULL, NULL, ?)", (name, sha256_json(refs), now_iso()))
    conn.executemany("INSERT INTO refs (track, position, sample_id, texts, image) VALUES (?, ?, ?, ?, ?)",
                     [(name, k, sid, json.dumps(texts, ensure_ascii=False), images.get(sid))
                      for k, (sid, texts) in enumerate(refs.items())])


def track_references(conn: sqlite3.Connection, track: str) -> dict[str, list[str]]:
    """``{sample_id: [references]}`` of a track in board order."""
    return {r["sample_id"]: json.loads(r["texts"]) for r in
            conn.execute("SELECT sample_id, texts FROM refs WHERE track = ? ORDER BY position", (track,))}


def track_row(conn: sqlite3.Connection, track: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM tracks WHERE name = ?", (track,)).fetchone()


# --- comparability -----------------------------------------------------------------------------------------


def references_problem(board_refs: dict[str, list[str]], run: Run, track: str) -> str | None:
    """Why the run's references are not the track's (None when they are the same)."""
    run_refs = {str(k): list(v) for k, v in run.references.items()}
    if run_refs == board_refs:
        return None
    missing = [i for i in board_refs if i not in run_refs]
    extra = [i for i in run_refs if i not in board_refs]
    changed = [i for i in run_refs if i in board_refs and run_refs[i] != board_refs[i]]
    parts = []
    if changed:
        parts.append(f"{len(changed)} ids with different reference texts (first {changed[0]!r})")
    if extra:
        parts.append(f"{len(extra)} ids not on the board (first {extra[0]!r})")
    if missing:
        parts.append(f"{len(missing)} of the board's {len(board_refs)} ids not scored (first {missing[0]!r})")
    return (f"references differ from track {track!r}: run references sha256 {sha256_json(run_refs)[:16]}… vs board "
            f"{sha256_json(board_refs)[:16]}…; " + "; ".join(parts))


def board_outputs(wanted: Sequence[str] | None, run: Run) -> list[str]:
    """The output metrics a board ranks: ``wanted`` (metric or output names) resolved in the run's manifest."""
    metrics = run.manifest.get("metrics", {})
    if not wanted:
        return [o for info in metrics.values() for o in info.get("outputs", [])] or list(run.signatures)
    out = []
    for name in wanted:
        if name in metrics:
            out += metrics[name].get("outputs", [name])
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def signature_problems(fixed: dict[str, str], fixed_json: dict[str, Any], run: Run) -> list[str]:
    """Per-metric reasons why the run's signatures don't match the board's (empty = comparable), by the
    protocol's one rule (:func:`capeval.signature.differing_fields`) on the string and the JSON forms."""
    problems = []
    run_json = run.manifest.get("signatures_json", {})
    for metric, sig in fixed.items():
        theirs = run.signatures.get(metric)
        if theirs is None:
            problems.append(f"{metric}: not in the run (the run has {', '.join(run.signatures) or 'no metrics'})")
            continue
        diff = differing_fields(sig, theirs)
        if fixed_json.get(metric) and run_json.get(metric):
            diff += [d for d in differing_fields(fixed_json[metric], run_json[metric]) if d not in diff]
        if diff:
            problems.append(f"{metric}: score-moving field(s) differ (board vs run): {', '.join(diff)}")
    return problems


def _metric_info(run: Run, outputs: Sequence[str]) -> dict[str, Any]:
    info = {}
    for family, meta in run.manifest.get("metrics", {}).items():
        if any(o in outputs for o in meta.get("outputs", [family])):
            info[family] = {**meta, "outputs": [o for o in meta.get("outputs", [family]) if o in outputs]}
    return info


# --- adding ------------------------------------------------------------------------------------------------


def _leaders(conn: sqlite3.Connection, track: str, outputs: Sequence[str], hib: dict[str, bool]) -> dict[str, Any]:
    """Best value (mean over seeds) per metric among the track's active submissions: ``{metric: [name, value]}``."""
    out: dict[str, Any] = {}
    rows = conn.execute(
        "SELECT s.name, c.metric, avg(c.value) AS v FROM corpus c JOIN submissions s ON s.id = c.sub "
        "WHERE s.track = ? AND s.active = 1 GROUP BY s.id, c.metric", (track,)).fetchall()
    for r in rows:
        if r["metric"] not in outputs or r["v"] is None or not math.isfinite(r["v"]):
            continue
        best = out.get(r["metric"])
        sign = 1 if hib.get(r["metric"], True) else -1
        if best is None or sign * (r["v"] - best[1]) > 0:
            out[r["metric"]] = [r["name"], r["v"]]
    return out


def _cost(run: Run, outputs: Sequence[str], families: Sequence[str]) -> float | None:
    """Judge cost in USD of a single-captioner run (None when unknown or shared by several captioners)."""
    usage = run.summary.get("usage") or run.manifest.get("usage") or {}
    if len(run.captioners) != 1 or not usage:
        return None
    total = [float(u["cost_usd"]) for m, u in usage.items() if (m in outputs or m in families) and "cost_usd" in u]
    return float(sum(total)) if total else None


def add_submission(board_dir: str | Path, run_dir: str | Path, *, name: str | None = None, note: str | None = None,
                   track: str | None = None, captioners: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Import captioners of a run directory as submissions; returns one record per submission added.

    The run must have the track's references (same ids and texts) and, for every metric of the board, a
    signature whose score-moving fields match the board's; otherwise it is refused naming what differs. With
    ``track``, a run that does not fit the main track goes to that track (created, and fixed by this run, on
    first use). A name already on the track gets a new version; the old one stays in its history.
    """
    run = load_run(run_dir)
    conn = db.open_board(board_dir)
    path = db.db_path(board_dir)
    try:
        return _add(conn, path, run, name=name, note=note, track=track, captioners=captioners)
    except sqlite3.DatabaseError as exc:
        raise CapevalError(f"{path}: corrupt or unreadable board database ({exc})") from exc
    finally:
        conn.close()


def _select_captioners(run: Run, name: str | None, captioners: Sequence[str] | None) -> list[tuple[str, str]]:
    chosen = list(captioners) if captioners else run.captioners
    unknown = [c for c in chosen if c not in run.captioners]
    if unknown:
        raise CapevalError(f"{run.path}: no captioner {unknown[0]!r} in the run (it has {', '.join(run.captioners)})")
    if name is not None and len(chosen) != 1:
        raise CapevalError(f"{run.path}: --name needs exactly one captioner, the run has {len(chosen)} "
                           f"({', '.join(chosen)}); pick one with --captioner")
    if name is not None and not name.strip():
        raise CapevalError("--name must not be blank")
    return [(c, name if name is not None else c) for c in chosen]


def _add(conn: sqlite3.Connection, path: Path, run: Run, *, name: str | None, note: str | None,
         track: str | None, captioners: Sequence[str] | None) -> list[dict[str, Any]]:
    pairs = _select_captioners(run, name, captioners)
    settings = db.meta(conn)
    with db.transaction(conn, path):  # IMMEDIATE: checks and writes see one state of the board
        target = track or MAIN_TRACK
        if track_row(conn, target) is None:  # a new --track is fixed by its first run
            _insert_track(conn, target, {str(k): list(v) for k, v in run.references.items()}, run.images)
        problems = _problems(conn, target, track_references(conn, target), run, settings)
        if problems:
            hint = "" if track else " (add it with --track NAME to rank it on a separate track)"
            raise CapevalError(f"{run.path}: refused by the board{hint}: " + "; ".join(problems))
        row = track_row(conn, target)
        if row["signatures"] is None:
            outputs = board_outputs(settings.get("metrics"), run)
            missing = [o for o in outputs if o not in run.signatures]
            if missing:
                raise CapevalError(f"{run.path}: refused by the board: no {', '.join(missing)} in the run "
                                   f"(the run has {', '.join(run.signatures)})")
            fixed = {o: run.signatures[o] for o in outputs}
            fixed_json = {o: v for o, v in run.manifest.get("signatures_json", {}).items() if o in outputs}
            conn.execute("UPDATE tracks SET signatures = ?, signatures_json = ?, metric_info = ? WHERE name = ?",
                         (json.dumps(fixed), json.dumps(fixed_json), json.dumps(_metric_info(run, outputs)),
                          target))
        fixed = json.loads(track_row(conn, target)["signatures"])
        info = json.loads(track_row(conn, target)["metric_info"])
        outputs = list(fixed)
        hib = {o: bool(meta.get("higher_is_better", True)) for meta in info.values() for o in meta["outputs"]}
        return [_insert_submission(conn, run, target, cap, shown, note, outputs, list(info), hib)
                for cap, shown in pairs]


def _problems(conn: sqlite3.Connection, track: str, refs: dict[str, list[str]], run: Run,
              settings: dict[str, Any]) -> list[str]:
    problems = []
    ref_problem = references_problem(refs, run, track)
    if ref_problem:
        problems.append(ref_problem)
    row = track_row(conn, track)
    if row is not None and row["signatures"] is not None:
        problems += signature_problems(json.loads(row["signatures"]), json.loads(row["signatures_json"] or "{}"),
                                       run)
    return problems


def _insert_submission(conn: sqlite3.Connection, run: Run, track: str, captioner: str, name: str,
                       note: str | None, outputs: list[str], families: list[str],
                       hib: dict[str, bool]) -> dict[str, Any]:
    order = [r[0] for r in conn.execute("SELECT sample_id FROM refs WHERE track = ? ORDER BY position", (track,))]
    captions = run.captions[run.captions["captioner"] == captioner]
    scores = run.scores[(run.scores["captioner"] == captioner) & run.scores["metric"].isin(outputs)]
    corpus = run.corpus[(run.corpus["captioner"] == captioner) & run.corpus["metric"].isin(outputs)]
    ids = captions["sample_id"].astype(str).tolist()
    texts = captions["caption"].astype(str).tolist()
    by_id = dict(zip(ids, texts, strict=True))
    aligned = [by_id.get(i) for i in order]
    columns = scores.assign(sample_id=scores["sample_id"].astype(str)).pivot(
        index="sample_id", columns=["metric", "seed"], values="value")
    columns = columns.reindex(index=order)
    content = sha256_json({"captions": dict(zip(ids, texts, strict=True)), "signatures": {
        o: run.signatures[o] for o in outputs}, "corpus": sorted(
        (str(m), int(s), None if v != v else round(float(v), 12))
        for m, s, v in corpus[["metric", "seed", "value"]].itertuples(index=False))})
    previous = conn.execute("SELECT id, version, content_sha256, active FROM submissions WHERE track = ? AND name = ? "
                            "ORDER BY version DESC", (track, name)).fetchall()
    if previous and previous[0]["active"] and previous[0]["content_sha256"] == content:
        raise CapevalError(f"{run.path}: captioner {captioner!r} is already on track {track!r} as {name!r} "
                           f"v{previous[0]['version']} with identical captions and scores")
    version = previous[0]["version"] + 1 if previous else 1
    stats_blobs = _statistics_blobs(run, captioner, families)
    before = _leaders(conn, track, outputs, hib)
    conn.execute("UPDATE submissions SET active = 0, status = 'superseded' WHERE track = ? AND name = ? "
                 "AND active = 1", (track, name))
    lengths = [len(t.split()) for t in texts]
    added = now_iso()
    cur = conn.execute(
        "INSERT INTO submissions (track, name, version, slug, active, status, captioner, note, added, run_path, "
        "run_created, capeval_version, content_sha256, manifest, summary, mean_length, cost_usd, rows_expected) "
        "VALUES (?, ?, ?, ?, 1, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (track, name, version, slugify(track, name, str(version)), captioner, note, added,
         str(Path(run.path).resolve()), run.manifest.get("created"), run.manifest.get("capeval_version"), content,
         json.dumps(run.manifest, ensure_ascii=False),
         json.dumps(run.summary.get("captioners", {}).get(captioner, {}), ensure_ascii=False, allow_nan=True),
         float(np.mean(lengths)) if lengths else None, _cost(run, outputs, families),
         columns.shape[1] + 1 + len(stats_blobs)))
    sub = cur.lastrowid
    conn.execute("INSERT INTO captions (sub, texts) VALUES (?, ?)", (sub, json.dumps(aligned, ensure_ascii=False)))
    conn.executemany('INSERT INTO scores (sub, metric, seed, "values") VALUES (?, ?, ?, ?)',
                     [(sub, str(metric), int(seed), columns[(metric, seed)].to_numpy(dtype="<f8").tobytes())
                      for metric, seed in columns.columns])
    conn.executemany('INSERT INTO statistics (sub, metric, "table") VALUES (?, ?, ?)',
                     [(sub, family, blob) for family, blob in stats_blobs.items()])
    conn.executemany("INSERT INTO corpus (sub, metric, seed, value) VALUES (?, ?, ?, ?)",
                     _rows(sub, corpus[["metric", "seed", "value"]]))
    if run.details is not None and len(run.details):
        det = run.details[run.details["captioner"] == captioner]
        conn.executemany("INSERT INTO details (sub, metric, seed, sample_id, detail) VALUES (?, ?, ?, ?, ?)",
                         _rows(sub, det[["metric", "seed", "sample_id", "detail"]]))
    after = _leaders(conn, track, outputs, hib)
    took = [m for m in outputs if after.get(m, [None])[0] == name and (before.get(m, [None])[0] != name)]
    doc = {"capeval_version": run.manifest.get("capeval_version"), "board_capeval_version": __version__,
           "run": str(run.path), "captioner": captioner, "leaders_before": before, "leaders_after": after,
           "took_top": took}
    conn.execute("INSERT INTO events (time, kind, track, name, version, doc) VALUES (?, 'add', ?, ?, ?, ?)",
                 (added, track, name, version, json.dumps(doc, ensure_ascii=False)))
    return {"track": track, "name": name, "version": version, "captioner": captioner, "took_top": took,
            "replaced": version > 1}


def _statistics_blobs(run: Run, captioner: str, families: list[str]) -> dict[str, bytes]:
    """Protocol v2 statistics of one captioner per metric, as Parquet bytes (what the board's paired tests and
    resamples use; nothing is re-scored). Metrics of the ``mean`` rule need none: their values are the scores."""
    out = {}
    for family in families:
        if run.manifest.get("metrics", {}).get(family, {}).get("aggregation") == "mean":
            continue  # the mean rule's statistics are the per-sample values, stored as scores
        try:
            table = run.statistics(family)
        except CapevalError as exc:
            raise CapevalError(f"{run.path}: refused by the board: {exc}") from None
        buf = io.BytesIO()
        table[table["captioner"] == captioner].drop(columns=["captioner"]).to_parquet(buf, index=False)
        out[family] = buf.getvalue()
    return out


def _rows(sub: int, frame: pd.DataFrame):
    for row in frame.itertuples(index=False):
        yield (sub, *(None if isinstance(v, float) and v != v else (v.item() if hasattr(v, "item") else v)
                      for v in row))


def remove_submission(board_dir: str | Path, name: str, *, track: str = MAIN_TRACK) -> dict[str, Any]:
    """Take a submission off the board (its rows and history stay; ``board show`` still lists it)."""
    conn = db.open_board(board_dir)
    path = db.db_path(board_dir)
    try:
        with db.transaction(conn, path):
            row = conn.execute("SELECT id, version FROM submissions WHERE track = ? AND name = ? AND active = 1",
                               (track, name)).fetchone()
            if row is None:
                names = [r[0] for r in conn.execute("SELECT name FROM submissions WHERE track = ? AND active = 1 "
                                                    "ORDER BY name", (track,))]
                raise CapevalError(f"{path}: no submission {name!r} on track {track!r} "
                                   f"(it has {', '.join(map(repr, names)) or 'none'})")
            conn.execute("UPDATE submissions SET active = 0, status = 'removed' WHERE id = ?", (row["id"],))
            conn.execute("INSERT INTO events (time, kind, track, name, version, doc) VALUES (?, 'remove', ?, ?, ?, ?)",
                         (now_iso(), track, name, row["version"], json.dumps({"board_capeval_version": __version__})))
            return {"track": track, "name": name, "version": row["version"]}
    except sqlite3.DatabaseError as exc:
        raise CapevalError(f"{path}: corrupt or unreadable board database ({exc})") from exc
    finally:
        conn.close()


def import_battles(board_dir: str | Path, battle_file: str | Path, *, name: str | None = None,
                   method: str = "bt", judge: str | None = None) -> dict[str, Any]:
    """Store a CapArena-Auto battle file on the board as a named battle set ranked with ``method`` (bt|elo);
    importing the same name again replaces its battles (the event stays in the history)."""
    from capeval.board.battles import read_caparena

    if method not in ("bt", "elo"):
        raise CapevalError(f"rating method must be bt or elo, got {method!r}")
    battles = read_caparena(battle_file)
    name = name or Path(battle_file).stem
    conn = db.open_board(board_dir)
    path = db.db_path(board_dir)
    try:
        with db.transaction(conn, path):
            conn.execute("DELETE FROM battles WHERE battle_set = ?", (name,))
            conn.execute("DELETE FROM battle_sets WHERE name = ?", (name,))
            conn.execute("INSERT INTO battle_sets (name, method, source, sha256, judge, added, skipped) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, method, str(battle_file), sha256_file(battle_file),
                                                          judge, now_iso(), battles.skipped))
            conn.executemany(
                "INSERT INTO battles (battle_set, position, image, model_a, model_b, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(name, k, battles.images[k], battles.models[int(a)], battles.models[int(b)], float(o))
                 for k, (a, b, o) in enumerate(zip(battles.a, battles.b, battles.outcome, strict=True))])
            conn.execute("INSERT INTO events (time, kind, track, name, version, doc) VALUES (?, 'battles', NULL, ?, "
                         "NULL, ?)", (now_iso(), name, json.dumps({"battles": len(battles.outcome),
                                                                  "skipped": battles.skipped,
                                                                  "models": len(battles.models),
                                                                  "board_capeval_version": __version__})))
        return {"name": name, "battles": len(battles.outcome), "skipped": battles.skipped,
                "skipped_reasons": battles.skipped_reasons, "models": battles.models}
    finally:
        conn.close()
