"""The protocol every capeval metric implements (modelled on sacrebleu's metric base class).

A metric turns one captioner's aligned candidates and references into per-sample scores and a corpus score
for each of its outputs (``bleu`` gives ``bleu_1`` .. ``bleu_4``). It declares what it needs (references,
images, an LLM), whether it is stochastic (then it runs once per seed), whether it can run on this machine, and
a reproducibility signature built from its named parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from capeval import __version__

NEEDS = ("references", "images", "llm")


@dataclass(frozen=True)
class Availability:
    """Whether a metric can run here, and if not, why."""

    ok: bool
    reason: str = ""


@dataclass
class Batch:
    """One captioner's aligned inputs: ``candidates[i]`` is scored against ``references[i]``."""

    captioner: str
    sample_ids: list[str]
    candidates: list[str]
    references: list[list[str]]
    images: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass
class MetricOutput:
    """What :meth:`Metric.score` returns.

    ``per_sample[key]`` holds one float per sample (NaN where the sample could not be scored, e.g. an
    unparsable judge reply; such samples are left out of means and counted in ``failures``);
    ``corpus[key]`` the corpus score (for corpus-level metrics such as BLEU, not the mean of ``per_sample``);
    ``details`` optional per-sample strings (judge reasons, raw replies);
    ``usage`` optional counters (tokens, requests, cost) summed into the run.
    """

    per_sample: dict[str, np.ndarray]
    corpus: dict[str, float]
    failures: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str | None]] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)


def format_signature(name: str, params: dict[str, Any]) -> str:
    """sacrebleu-style signature: ``name|key:value|...|capeval:VERSION``; booleans print yes/no."""
    parts = [name]
    for key, value in params.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        parts.append(f"{key}:{value}")
    parts.append(f"capeval:{__version__}")
    return "|".join(parts)


def nrefs_label(references: list[list[str]]) -> str:
    """The ``nrefs`` signature field: the reference count, or ``var`` when it differs between samples."""
    counts = {len(r) for r in references}
    return str(counts.pop()) if len(counts) == 1 else "var"


class Metric(ABC):
    """Base class of every metric. Subclasses set the class attributes and implement :meth:`score`."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({"references"})
    outputs: ClassVar[tuple[str, ...]] = ()
    stochastic: ClassVar[bool] = False
    corpus_level: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        self.options = options

    @classmethod
    def availability(cls) -> Availability:
        """Whether this metric can run on this machine; override to check dependencies."""
        return Availability(True)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Metric:
        """Build the metric from the run's option dict (each metric picks the keys it knows)."""
        return cls()

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        """Named parameters that can move a score; shown in the signature."""
        return {"nrefs": nrefs_label(references)}

    def signatures(self, references: list[list[str]]) -> dict[str, str]:
        """Signature string for each output key."""
        params = self.signature_params(references)
        return {key: format_signature(key, params) for key in self.outputs}

    def setup(self, context: Any) -> None:  # noqa: B027 - optional hook
        """Prepare for scoring (start a JVM, load a model); called once per run."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`setup` acquired."""

    @abstractmethod
    def score(self, batch: Batch, context: Any, seed: int = 0) -> MetricOutput:
        """Score one captioner's batch."""
