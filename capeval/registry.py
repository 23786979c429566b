"""The metric registry: built-in metrics, the ``@register_metric`` decorator and the ``capeval.metrics`` entry points.

Built-in metrics are registered lazily as ``"module:Class"`` strings so that ``capeval metrics`` and the COCO
metrics never import torch or an HTTP client they do not use.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from capeval.errors import UnknownMetric

if TYPE_CHECKING:
    from capeval.metrics.base import Metric

log = logging.getLogger("capeval")

ENTRY_POINT_GROUP = "capeval.metrics"

_BUILTIN: dict[str, str] = {
    "bleu": "capeval.metrics.coco:Bleu",
    "meteor": "capeval.metrics.coco:Meteor",
    "rouge_l": "capeval.metrics.coco:RougeL",
    "cider": "capeval.metrics.coco:CiderD",
    "spice": "capeval.metrics.coco:Spice",
    "bertscore": "capeval.metrics.bertscore:BERTScore",
    "capture": "capeval.metrics.capture:Capture",
    "clair": "capeval.metrics.clair:Clair",
    "mllm_judge": "capeval.metrics.mllm_judge:MLLMJudge",
    "pairwise": "capeval.metrics.pairwise:Pairwise",
    "proxy_qa": "capeval.metrics.proxy_qa:ProxyQA",
}

_registry: dict[str, str | type[Metric]] = dict(_BUILTIN)
_entry_points_loaded = False


def register_metric(name: str):
    """Class decorator: register a :class:`~capeval.metrics.base.Metric` subclass under ``name``.

    Example:
        >>> from capeval.metrics.base import Metric
        >>> @register_metric("my_length")
        ... class MyLength(Metric):
        ...     outputs = ("my_length",)
    """

    def wrap(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        _registry[name] = cls
        return cls

    return wrap


def register_lazy(name: str, target: str) -> None:
    """Register a metric by its ``"module:Class"`` path without importing it."""
    _registry[name] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            log.warning("entry point %s=%s ignored: a metric named %r already exists", ep.name, ep.value, ep.name)
            continue
        _registry[ep.name] = ep.value


def metric_names() -> list[str]:
    """Every registered metric name, built-ins first."""
    _load_entry_points()
    return list(_registry)


def get_metric_class(name: str) -> type[Metric]:
    """The class registered under ``name``; an unknown name answers with the closest names."""
    _load_entry_points()
    if name not in _registry:
        close = difflib.get_close_matches(name, list(_registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownMetric(f"unknown metric {name!r}.{hint} Known: {', '.join(_registry)}")
    target = _registry[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        cls.name = name
        _registry[name] = cls
        return cls
    return target
