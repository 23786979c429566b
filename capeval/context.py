"""Per-run shared state handed to every metric: tokenisations computed once over the whole dataset."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from capeval.io.align import Dataset

TOKENIZERS: dict[str, str] = {"ptb": "capeval.tokenizers.ptb:tokenize_ptb"}


class RunContext:
    """What metrics share during one run: the dataset, the options, and cached tokenisations."""

    def __init__(self, dataset: Dataset, options: dict[str, Any] | None = None) -> None:
        self.dataset = dataset
        self.options = dict(options or {})
        self._tokenized: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.shared: dict[str, Any] = {}  # models or clients that several metrics reuse (e.g. one encoder)

    def all_texts(self) -> list[str]:
        """Every reference and candidate caption of the run (normalised), each once."""
        texts: dict[str, None] = {}
        for refs in self.dataset.references.values():
            texts.update(dict.fromkeys(refs))
        for cands in self.dataset.candidates.values():
            texts.update(dict.fromkeys(cands.values()))
        return list(texts)

    def tokenized(self, name: str) -> dict[str, str]:
        """``{caption: tokens}`` for every caption of the run, tokenised by ``name`` in one pass."""
        with self._lock:  # a metric scored in the background (METEOR) may ask at the same time
            if name not in self._tokenized:
                fn = _load(TOKENIZERS[name])
                self._tokenized[name] = fn(self.all_texts())
            return self._tokenized[name]


    def merge_tokenized(self, tokenized: dict[str, dict[str, str]]) -> None:
        """Add tokenisations computed elsewhere (a Ray run's workers, one shard each) to this run's."""
        for name, tok in tokenized.items():
            self._tokenized.setdefault(name, {}).update(tok)

    def token_table(self, name: str = "ptb") -> pd.DataFrame | None:
        """The run's tokenised candidates and references (None when no metric tokenised with ``name``):
        rows (captioner, sample_id, index, tokens), captioner ``""`` for references (``index`` = reference
        number; 0 for candidates)."""
        tok = self._tokenized.get(name)
        if tok is None:
            return None
        rows = [("", sid, k, tok[r]) for sid, refs in self.dataset.references.items() for k, r in enumerate(refs)]
        rows += [(cap, sid, 0, tok[text]) for cap, cands in self.dataset.candidates.items()
                 for sid, text in cands.items()]
        return pd.DataFrame(rows, columns=["captioner", "sample_id", "index", "tokens"])


def _load(target: str) -> Callable[..., Any]:
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
