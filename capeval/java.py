"""Locating Java and pycocoevalcap's bundled jars."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path


@lru_cache(maxsize=1)
def java_executable() -> str | None:
    """Path of the ``java`` binary, or None."""
    return shutil.which("java")


@lru_cache(maxsize=1)
def java_problem() -> str | None:
    """Why Java can't be used here (None when it can)."""
    java = java_executable()
    if java is None:
        return "no Java runtime on PATH (install a JRE >= 8, e.g. apt-get install openjdk-17-jre-headless)"
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"java -version failed: {exc}"
    return None


@lru_cache(maxsize=1)
def pycocoevalcap_dir() -> Path | None:
    """Folder of the installed pycocoevalcap package (a namespace package: no __file__)."""
    spec = find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def pycocoevalcap_jar(relative: str) -> Path:
    """Absolute path of a jar shipped by pycocoevalcap, e.g. ``tokenizer/stanford-corenlp-3.4.1.jar``."""
    base = pycocoevalcap_dir()
    if base is None:
        raise FileNotFoundError("pycocoevalcap is not installed (pip install pycocoevalcap==1.2)")
    path = base / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the pycocoevalcap install")
    return path
