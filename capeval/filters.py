"""``--keep`` row filters for dataset curation: ``clair>=0.6``, ``cider>0.5 and bleu_4>=0.2``.

A filter is one or more comparisons ``COLUMN OP NUMBER`` (``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``) joined
by ``and`` (or ``&``, ``,``). A row passes when every comparison holds; a NaN score (a failed judgment) passes
none, so it is never kept by accident.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capeval.errors import InputError

OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
       "<": operator.lt}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_CLAUSE = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_.:-]*)\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Comparison:
    """One ``column op value`` test."""

    column: str
    op: str
    value: float


@dataclass(frozen=True)
class KeepFilter:
    """A parsed ``--keep`` expression.

    Example:
        >>> f = parse_keep("clair>=0.6 and cider > 1")
        >>> f.columns, f.mask(pd.DataFrame({"clair": [0.7, 0.9, float("nan")], "cider": [2.0, 0.5, 3.0]})).tolist()
        (['clair', 'cider'], [True, False, False])
    """

    text: str
    comparisons: tuple[Comparison, ...]

    @property
    def columns(self) -> list[str]:
        """Columns the filter reads."""
        return list(dict.fromkeys(c.column for c in self.comparisons))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows that pass."""
        keep = np.ones(len(frame), dtype=bool)
        for c in self.comparisons:
            values = pd.to_numeric(frame[c.column], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                keep &= OPS[c.op](values, c.value) & np.isfinite(values)
        return keep


def parse_keep(text: str) -> KeepFilter:
    """Parse a ``--keep`` expression (one-line error naming the bad part)."""
    parts = [p for p in re.split(r"\s+and\s+|&|,", text.strip(), flags=re.IGNORECASE) if p.strip()]
    if not parts:
        raise InputError(f"--keep {text!r}: empty filter; write e.g. clair>=0.6")
    comparisons = []
    for part in parts:
        m = _CLAUSE.match(part)
        if m is None:
            raise InputError(f"--keep {text!r}: can't read {part.strip()!r}; write COLUMN OP NUMBER with OP one of "
                             f"{' '.join(OPS)} (e.g. clair>=0.6), joined by 'and'")
        comparisons.append(Comparison(m.group(1), m.group(2), float(m.group(3))))
    return KeepFilter(text, tuple(comparisons))


def check_columns(keep: KeepFilter, available: list[str]) -> None:
    """Every column the filter reads must exist (metric outputs or input columns)."""
    missing = [c for c in keep.columns if c not in available]
    if missing:
        raise InputError(f"--keep {keep.text!r}: no column {missing[0]!r}; columns are {available}")
