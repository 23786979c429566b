"""Pairwise judge results ranked with Bradley–Terry (maximum likelihood, Hunter's 2004 MM algorithm) or Elo
(CapArena's online update: K=4, scale 400, base 10, start 1000), with percentile bootstrap CIs over battles.

Battle files are CapArena-Auto's: a JSON list of ``{"img", "source1", "caption1", "source2", "caption2",
"judge": "Caption 1 is better." | "Caption 2 is better." | "Tie", "ref_model"?}``; a ``winner`` field naming a
source (or ``tie``/``equal``/``tie (bothbad)``) is read too (human annotations). Battles without a verdict or with
one that can't be read are counted and reported, never scored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capeval.errors import CapevalError
from capeval.stats.bootstrap import percentile_interval, resample_counts, rng_for

SCALE, BASE, INIT = 400.0, 10.0, 1000.0
ELO_K = 4.0
TIES = {"tie", "tie.", "equal", "tie (bothbad)"}
PSEUDO = 1e-3  # wins added each way to every pair that met: keeps BT finite when a model never wins


@dataclass
class Battles:
    """Battles of one file: model indices, outcome (1 = a wins, 0 = b wins, 0.5 tie)."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    images: list[str | None]
    skipped: int = 0
    skipped_reasons: dict[str, int] | None = None


def _verdict(item: dict, source1: str, source2: str) -> float | None:
    judge = item.get("judge")
    if isinstance(judge, str):
        text = judge.strip().lower()
        if text in TIES:
            return 0.5
        if text.startswith("caption 1 is better"):
            return 1.0
        if text.startswith("caption 2 is better"):
            return 0.0
        return None
    winner = item.get("winner")
    if isinstance(winner, str):
        if winner == source1:
            return 1.0
        if winner == source2:
            return 0.0
        if winner.strip().lower() in TIES:
            return 0.5
    return None


def read_caparena(path: str | Path) -> Battles:
    """Read a CapArena-Auto battle file; a one-line error naming the file and row when it is malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CapevalError(f"{path}: not a readable JSON battle file ({exc})") from exc
    if not isinstance(data, list):
        raise CapevalError(f"{path}: a CapArena battle file is a JSON list of battles, got {type(data).__name__}")
    index: dict[str, int] = {}
    a, b, out, images = [], [], [], []
    reasons: dict[str, int] = {}
    for row, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("source1"), str) or not isinstance(
                item.get("source2"), str):
            raise CapevalError(f"{path}: battle {row}: needs string fields source1 and source2")
        s1, s2 = item["source1"], item["source2"]
        if s1 == s2:
            raise CapevalError(f"{path}: battle {row}: a model against itself ({s1!r})")
        verdict = _verdict(item, s1, s2)
        if verdict is None:
            why = "no verdict" if "judge" not in item and "winner" not in item else "unreadable verdict"
            reasons[why] = reasons.get(why, 0) + 1
            continue
        for s in (s1, s2):
            index.setdefault(s, len(index))
        a.append(index[s1])
        b.append(index[s2])
        out.append(verdict)
        images.append(str(item["img"]) if item.get("img") is not None else None)
    if not out:
        raise CapevalError(f"{path}: no battle with a readable verdict ({reasons or 'empty file'})")
    return Battles(list(index), np.asarray(a), np.asarray(b), np.asarray(out, dtype=float), images,
                   sum(reasons.values()), reasons)


def _wins(battles: Battles, weights: np.ndarray) -> np.ndarray:
    """``(B, m, m)`` weighted wins of row over column (ties half each) for battle multiplicities ``(B, n)``."""
    m = len(battles.models)
    cells_ab = battles.a * m + battles.b
    cells_ba = battles.b * m + battles.a
    out = np.zeros((weights.shape[0], m * m))
    for k in range(weights.shape[0]):
        out[k] = (np.bincount(cells_ab, weights=weights[k] * battles.outcome, minlength=m * m)
                  + np.bincount(cells_ba, weights=weights[k] * (1 - battles.outcome), minlength=m * m))
    return out.reshape(-1, m, m)


def bradley_terry(wins: np.ndarray, iterations: int = 10_000, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry ratings on the Elo scale (mean 1000) of ``(B, m, m)`` win matrices, by MM iterations.

    Example:
        >>> w = np.array([[[0, 3, 4], [1, 0, 3], [0, 1, 0]]], dtype=float)
        >>> r = bradley_terry(w)[0]
        >>> bool(r[0] > r[1] > r[2]), round(float(r.mean()), 6)
        (True, 1000.0)
    """
    games = wins + np.swapaxes(wins, 1, 2)
    met = games > 0
    w = wins + PSEUDO * met
    n = games + 2 * PSEUDO * met
    total = w.sum(axis=2)
    p = np.ones(wins.shape[:2])
    for _ in range(iterations):
        denom = (n / (p[:, :, None] + p[:, None, :])).sum(axis=2)
        new = np.where(denom > 0, total / np.where(denom > 0, denom, 1), p)
        new /= np.exp(np.log(new).mean(axis=1, keepdims=True))
        done = np.max(np.abs(new - p)) < tol
        p = new
        if done:
            break
    rating = SCALE * np.log(p) / np.log(BASE)
    return rating - rating.mean(axis=1, keepdims=True) + INIT


def elo(battles: Battles, order: np.ndarray | None = None) -> np.ndarray:
    """CapArena's online Elo over battles in file order (or ``order``, a sequence of battle indices)."""
    rating = np.full(len(battles.models), INIT)
    idx = range(len(battles.outcome)) if order is None else order
    for k in idx:
        i, j, s = battles.a[k], battles.b[k], battles.outcome[k]
        ea = 1 / (1 + BASE ** ((rating[j] - rating[i]) / SCALE))
        rating[i] += ELO_K * (s - ea)
        rating[j] += ELO_K * ((1 - s) - (1 - ea))
    return rating


def rank_battles(battles: Battles, *, method: str = "bt", n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> dict:
    """Ratings, percentile bootstrap CIs over battles and ranks (1 + models whose CI lies wholly above)."""
    if method not in ("bt", "elo"):
        raise CapevalError(f"rating method must be bt or elo, got {method!r}")
    n = len(battles.outcome)
    rng = rng_for(seed, "battles", str(n), *battles.models[:50])
    if method == "bt":
        point = bradley_terry(_wins(battles, np.ones((1, n))))[0]
        boot = np.concatenate([bradley_terry(_wins(battles, chunk)) for chunk in
                               np.array_split(resample_counts(n, n_boot, rng), max(1, n_boot // 100))]) \
            if n_boot else np.zeros((0, len(battles.models)))
    else:
        point = elo(battles)
        boot = np.array([elo(battles, rng.integers(0, n, size=n)) for _ in range(n_boot)]).reshape(
            n_boot, len(battles.models))
    cis = [percentile_interval(boot[:, k], alpha) if n_boot else (float("nan"), float("nan"))
           for k in range(len(battles.models))]
    models = []
    for k, name in enumerate(battles.models):
        played = (battles.a == k) | (battles.b == k)
        won = ((battles.a == k) & (battles.outcome == 1)) | ((battles.b == k) & (battles.outcome == 0))
        tied = played & (battles.outcome == 0.5)
        better = sum(1 for j in range(len(battles.models)) if j != k and cis[j][0] > cis[k][1])
        models.append({"model": name, "rating": float(point[k]), "ci_low": cis[k][0], "ci_high": cis[k][1],
                       "rank": 1 + better, "battles": int(played.sum()), "wins": int(won.sum()),
                       "ties": int(tied.sum()), "losses": int(played.sum() - won.sum() - tied.sum())})
    models.sort(key=lambda m: (m["rank"], -m["rating"]))
    return {"method": {"bt": "bradley-terry", "elo": "elo"}[method], "n_boot": n_boot, "seed": seed,
            "alpha": alpha, "battles": n, "skipped": battles.skipped, "skipped_reasons": battles.skipped_reasons or {},
            "models": models}


def battles_from_rows(rows: Sequence[tuple[str, str, float, str | None]]) -> Battles:
    """Battles from ``(model_a, model_b, outcome, image)`` rows (as the board stores them)."""
    index: dict[str, int] = {}
    for a, b, _, _ in rows:
        index.setdefault(a, len(index))
        index.setdefault(b, len(index))
    return Battles(list(index), np.asarray([index[r[0]] for r in rows]), np.asarray([index[r[1]] for r in rows]),
                   np.asarray([r[2] for r in rows], dtype=float), [r[3] for r in rows])
