"""Typed metric options: each metric declares a dataclass of the ``--option KEY=VALUE`` keys it reads.

The run's options are one flat dict shared by every metric (``judge_model`` serves CLAIR and proxy QA alike).
:func:`check_option_keys` refuses a key that no selected metric and no run-level setting declares, with the
closest known keys ("did you mean"); :meth:`MetricOptions.from_dict` coerces a metric's fields from strings in
one place; fields marked ``signature`` are the score-moving ones and make the metric's signature.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from capeval.errors import CapevalError

# Keys every run understands (set by flags of `capeval score` rather than by one metric).
RUN_KEYS = frozenset({"seeds", "images", "cache", "refresh_cache", "run_dir", "cache_dir"})

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(value: Any, *, key: str = "value") -> bool:
    """The one yes/no parser: ``yes/no``, ``true/false``, ``on/off``, ``1/0`` (any case) or a bool.

    Example:
        >>> parse_bool("Yes"), parse_bool("off"), parse_bool(True)
        (True, False, True)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CapevalError(f"{key}={value!r}: expected yes/no (true/false, on/off, 1/0)")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(value, args[0], key) if len(args) == 1 else value
    try:
        if annotation is bool:
            return parse_bool(value, key=f"option {key}")
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        name = {int: "an integer", float: "a number", str: "a string"}.get(annotation, str(annotation))
        raise CapevalError(f"option {key}={value!r}: expected {name}") from None
    return value


@dataclasses.dataclass(frozen=True)
class MetricOptions:
    """Base of a metric's options. A field's run-option key is its name; ``metadata={"signature": "f"}``
    marks it score-moving (shown in the signature as ``f:value``)."""

    extra_keys: ClassVar[frozenset[str]] = frozenset()  # keys read outside the dataclass (e.g. a prefix family)

    @classmethod
    def keys(cls) -> frozenset[str]:
        """Every run-option key this class reads."""
        return frozenset(f.name for f in dataclasses.fields(cls)) | cls.extra_keys

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]):
        """The typed options from the run's flat option dict (unknown keys are ignored here: they are checked
        across all metrics by :func:`check_option_keys`)."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in options and options[f.name] is not None:
                values[f.name] = _coerce(options[f.name], hints.get(f.name, Any), f.name)
        return cls(**values)

    def signature_fields(self) -> dict[str, Any]:
        """``{signature field: value}`` of the score-moving fields that are set."""
        out = {}
        for f in dataclasses.fields(self):
            sig = f.metadata.get("signature")
            value = getattr(self, f.name)
            if sig and value is not None:
                out[sig] = value
        return out


@dataclasses.dataclass(frozen=True)
class NoOptions(MetricOptions):
    """A metric without options."""


def check_option_keys(options: Mapping[str, Any], option_keys: Iterable[Iterable[str]],
                      extra: Iterable[str] = ()) -> None:
    """Refuse option keys that nothing declares, naming the closest known keys.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class JudgeOpts(MetricOptions):
        ...     judge_temperature: float | None = None
        >>> check_option_keys({"judge_temprature": "0"}, [JudgeOpts.keys()])
        Traceback (most recent call last):
        ...
        capeval.errors.CapevalError: unknown option 'judge_temprature'. Did you mean judge_temperature?
    """
    known = set(RUN_KEYS) | set(extra)
    for keys in option_keys:
        known |= set(keys)
    unknown = [k for k in options if k not in known]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.8) or \
        difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else f" Known options: {', '.join(sorted(known))}"
    raise CapevalError(f"unknown option {key!r}.{hint}")
