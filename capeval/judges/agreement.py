"""The measured agreement of capeval's local judges with human judgments, read from their dataset card.

``datasets/judge-agreement.md`` holds, besides the prose and the commands that reproduce every number, one
fenced block tagged ``json capeval-judge-agreement``: a list of measurements (model, scoring mode, corpus,
statistic, value, 95% CI, rows). The demo reads it to pick the best measured local judge mode and to say on
its report what that judge's agreement is, and whether it is a result or only a plumbing check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from capeval.assets import asset_dir
from capeval.errors import CapevalError

CARD = "judge-agreement.md"
_BLOCK = re.compile(r"```json capeval-judge-agreement\n(.*?)\n```", re.DOTALL)
_DATASET_NAMES = {"flickr8k-expert": "Flickr8k-Expert", "flickr8k-cf": "Flickr8k-CF", "pascal-50s": "Pascal-50S"}
_STAT_NAMES = {"tau_c": "Kendall τ_c", "tau_b": "Kendall τ_b", "accuracy": "pairwise accuracy"}


@dataclass(frozen=True)
class Measurement:
    """One measured agreement figure of one judge (model x scoring mode x metric x corpus)."""

    model: str
    scoring: str
    metric: str
    dataset: str
    stat: str
    value: float
    ci: tuple[float, float]
    n: int
    failed: int
    signature: str

    @property
    def ci_includes_zero(self) -> bool:
        """For a correlation: whether 0 is inside the CI; for an accuracy: whether chance (50) is."""
        chance = 50.0 if self.stat == "accuracy" else 0.0
        return self.ci[0] <= chance <= self.ci[1]

    @property
    def agrees(self) -> bool:
        """Whether the whole CI shows agreement: above 0 (a correlation) or above chance, 50 (an accuracy)."""
        return self.ci[0] > (50.0 if self.stat == "accuracy" else 0.0)

    def sentence(self) -> str:
        """``Kendall τ_c = -6.4 (95% CI -14.3 to 2.3) on 1,008 Flickr8k-Expert rows``."""
        unit = "pairs" if self.stat == "accuracy" else "rows"
        return (f"{_STAT_NAMES.get(self.stat, self.stat)} = {self.value:.1f} (95% CI {self.ci[0]:.1f} to "
                f"{self.ci[1]:.1f}) on {self.n:,} {_DATASET_NAMES.get(self.dataset, self.dataset)} {unit}")


def card_path() -> Path:
    """The shipped card."""
    return asset_dir("datasets") / CARD


def load_measurements(path: str | Path | None = None) -> list[Measurement]:
    """Every measurement in the card's ``capeval-judge-agreement`` block."""
    path = Path(path) if path else card_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CapevalError(f"{path}: can't read the judge agreement card ({exc})") from exc
    m = _BLOCK.search(text)
    if m is None:
        raise CapevalError(f"{path}: no ```json capeval-judge-agreement block")
    try:
        rows = json.loads(m.group(1))
        return [Measurement(model=r["model"], scoring=r["scoring"], metric=r["metric"], dataset=r["dataset"],
                            stat=r["stat"], value=float(r["value"]), ci=(float(r["ci"][0]), float(r["ci"][1])),
                            n=int(r["n"]), failed=int(r["failed"]), signature=r["signature"]) for r in rows]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CapevalError(f"{path}: malformed capeval-judge-agreement block ({exc})") from exc


def best_local_judge(measurements: list[Measurement], available: set[str] | None = None,
                     metric: str = "clair", dataset: str = "flickr8k-expert") -> Measurement | None:
    """The measured (model, mode) with the highest statistic on ``dataset`` among ``available`` models."""
    pool = [m for m in measurements if m.metric == metric and m.dataset == dataset
            and (available is None or m.model in available)]
    return max(pool, key=lambda m: m.value, default=None)


def agreement_note(best: Measurement, others: list[Measurement] = ()) -> str:
    """The sentence the demo prints: the judge's measured agreement and what its numbers are worth."""
    extra = "".join(f"; {m.sentence()}" for m in others)
    note = (f"Judge: {best.model} ({best.scoring} scoring), the best local judge measured in "
            f"datasets/{CARD}: {best.metric} vs human judgments, {best.sentence()}{extra}.")
    if not best.agrees or not all(m.agrees for m in others):
        which = "includes no agreement" if best.ci_includes_zero or any(m.ci_includes_zero for m in others) \
            else "lies below chance"
        note += (f" The confidence interval {which}, so the judge numbers here are a plumbing check of the judge "
                 "path (cache, seeds, failures), not a result.")
    return note
