"""Judge price table (judges/prices.yaml, extendable by the user) and the cost of token usage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from capeval.assets import asset_path
from capeval.errors import CapevalError

log = logging.getLogger("capeval")


@dataclass(frozen=True)
class Price:
    """US dollars per one million input (prompt) and output (completion) tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollar cost of that many tokens."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


def _read(path: Path) -> dict[str, Price]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CapevalError(f"{path}: can't read the price table ({exc})") from exc
    models = doc.get("models", {}) if isinstance(doc, dict) else None
    if not isinstance(models, dict):
        raise CapevalError(f"{path}: a price table needs a 'models' mapping")
    out = {}
    for name, entry in models.items():
        try:
            out[str(name)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise CapevalError(f"{path}: model {name!r} needs numeric 'input' and 'output' prices") from exc
    return out


def load_prices(extra: str | Path | None = None) -> dict[str, Price]:
    """The shipped table, with the entries of ``extra`` (a YAML file of the same layout) merged over it."""
    table = _read(asset_path("judges", "prices.yaml"))
    if extra:
        table.update(_read(Path(extra).expanduser()))
    return table


def price_for(model: str, table: dict[str, Price]) -> Price | None:
    """Exact match first, then the longest table entry the model name starts with; None when unknown."""
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name)]
    return table[max(matches, key=len)] if matches else None
