"""--engine ray equals the local engine, per sample and per corpus, on THumB's five captioners (a local Ray)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

import capeval
from capeval.engine.shards import ShardingError, shard_rule, split
from capeval.io.align import Dataset
from capeval.judges.faultserver import FaultServer
from capeval.registry import get_metric_class

pytest.importorskip("ray")

METRICS = ["bleu", "meteor", "rouge_l", "cider", "bertscore", "capture", "clair"]
N_IMAGES = int(os.environ.get("CAPEVAL_RAY_TEST_IMAGES", "500"))  # every THumB image (fewer: quicker local runs)


def _options(server: FaultServer, cache) -> dict:
    return {"bertscore_model": "all-MiniLM-L6-v2", "capture_parser": "spacy", "capture_encoder": "minilm",
            "judge_base_url": server.base_url, "judge_model": "fake-judge", "judge_cache": str(cache)}


def _long(results) -> pd.DataFrame:
    return results.samples.set_index(["captioner", "sample_id", "metric", "seed"])["value"]


@pytest.mark.slow
@pytest.mark.java
def test_ray_two_workers_equal_local_on_thumb(thumb, tmp_path):
    refs, systems = thumb
    ids = list(refs)[:N_IMAGES]
    refs = {i: refs[i] for i in ids}
    systems = {name: {i: c[i] for i in ids if i in c} for name, c in systems.items()}
    assert len(systems) == 5
    with FaultServer() as server:
        local = capeval.evaluate(refs, systems, METRICS, options=_options(server, tmp_path / "local.sqlite"))
        local_calls = server.state.completed
        ray_run = capeval.evaluate(refs, systems, METRICS, options=_options(server, tmp_path / "ray.sqlite"),
                                   engine="ray", workers=2)
        ray_calls = server.state.completed - local_calls
    a, b = _long(local), _long(ray_run)
    assert list(a.index) == list(b.index)  # same rows in the same order
    assert (np.isnan(a.to_numpy()) == np.isnan(b.to_numpy())).all()
    diff = pd.Series(np.nan_to_num(np.abs(a.to_numpy() - b.to_numpy())), index=a.index)
    by_metric = diff.groupby(level="metric").max()
    assert by_metric.max() <= 1e-12, f"per-sample differences by output: {by_metric[by_metric > 0].to_dict()}"
    ca = local.corpus.set_index(["captioner", "metric", "seed"])["value"]
    cb = ray_run.corpus.set_index(["captioner", "metric", "seed"])["value"]
    assert list(ca.index) == list(cb.index)
    assert np.abs(ca.to_numpy() - cb.to_numpy()).max() <= 1e-12
    assert set(a.index.get_level_values("metric")) >= {"bleu_4", "meteor", "cider", "bertscore", "capture", "clair"}
    # the judge was really asked by the Ray workers (fresh cache), once per distinct judgment (two captioners
    # giving one image the same caption, up to whitespace, make one request)
    from capeval.text import normalize_whitespace as norm

    n_judgments = len({(norm(c[i]), tuple(norm(r) for r in refs[i])) for c in systems.values() for i in c})
    assert ray_calls == local_calls == n_judgments
    assert ray_run.usage["clair"]["judge_calls"] == n_judgments
    assert local.signatures == ray_run.signatures
    # the run directory: same files, the engine only in the manifest
    local.write(tmp_path / "run_local")
    ray_run.write(tmp_path / "run_ray")
    m_local = json.loads((tmp_path / "run_local" / "manifest.json").read_text())
    m_ray = json.loads((tmp_path / "run_ray" / "manifest.json").read_text())
    assert "engine" not in m_local
    assert m_ray["engine"]["name"] == "ray" and m_ray["engine"]["workers"] == 2
    assert m_local["signatures"] == m_ray["signatures"]
    assert sorted(p.name for p in (tmp_path / "run_local").iterdir()) == \
        sorted(p.name for p in (tmp_path / "run_ray").iterdir())


def test_split_keeps_order_and_covers_every_sample():
    refs = {str(i): [f"ref {i}"] for i in range(10)}
    data = Dataset(refs, {"a": {str(i): "x" for i in range(10)}, "b": {str(i): "y" for i in range(0, 10, 3)}})
    shards = split(data, 3)
    assert [list(s.references) for s in shards] == [["0", "1", "2"], ["3", "4", "5", "6"], ["7", "8", "9"]]
    assert [i for s in shards for i in s.candidates["b"]] == ["0", "3", "6", "9"]
    assert len(split(data, 50)) == 10


def test_metrics_that_cannot_be_sharded_are_refused():
    pairwise = get_metric_class("pairwise").from_options({})
    with pytest.raises(ShardingError, match="pairwise.*--engine local"):
        shard_rule(pairwise)
    assert shard_rule(get_metric_class("bertscore").from_options({"bertscore_model": "all-MiniLM-L6-v2"})) == "whole"
    assert shard_rule(get_metric_class("cider").from_options({})) == "cider"


@pytest.mark.java
@pytest.mark.parametrize("impl", ["native", "pycocoevalcap"])
def test_shard_workers_without_ray_equal_one_run(thumb, impl):
    """The shard arithmetic alone (no Ray): three shards joined equal one local run, bit for bit."""
    from capeval.api import build_metrics
    from capeval.engine.ray_engine import _join
    from capeval.engine.shards import ShardWorker, cider_totals

    refs, systems = thumb
    ids = list(refs)[:90]
    refs = {i: refs[i] for i in ids}
    systems = {name: {i: c[i] for i in ids[k:]} for k, (name, c) in enumerate(list(systems.items())[:2])}
    names = ["bleu", "rouge_l", "cider"]
    options = {"coco_impl": impl}
    local = capeval.evaluate(refs, systems, names, options=options)
    data = capeval.api.align(*_caption_files(refs, systems))
    shards = split(data, 3)
    worker = ShardWorker(names, options, 1)
    firsts = [worker.run(s) for s in shards]
    df, docs = cider_totals(firsts, data.captioners)
    assert docs == {cap: len(data.ids_for(cap)) for cap in systems}
    worker._cider_state.pop(1)  # as if the worker had been restarted between the passes
    seconds = [worker.cider(s, df, docs) for s in shards]
    worker.close()
    outputs = _join(data, build_metrics(names, options), 1, firsts, {"cider": seconds})
    metrics = {m.name: m for m in build_metrics(names, options)}
    for (metric, cap, _seed), out in outputs.items():
        ids_cap = data.ids_for(cap)
        aggregated = metrics[metric].aggregate(out.table)
        for key, values in out.values.items():
            want = local.samples.query("captioner == @cap and metric == @key").set_index("sample_id")["value"]
            assert np.array_equal(values, want.loc[ids_cap].to_numpy()), (metric, cap, key)
            corpus = local.corpus.query("captioner == @cap and metric == @key")["value"].item()
            assert abs(float(aggregated[key][0]) - corpus) <= 1e-12, (cap, key)


def _caption_files(refs, systems):
    from capeval.io.readers import CaptionFile

    return (CaptionFile("<refs>", refs, "untyped"),
            {name: CaptionFile(f"<{name}>", {i: [c] for i, c in caps.items()}, "untyped")
             for name, caps in systems.items()})


@pytest.mark.slow
def test_ray_worker_killed_mid_run_completes_without_repeating_calls(thumb, tmp_path):
    """SIGKILL of a Ray worker while it judges: it is restarted, and the server answers every judgment once."""
    import signal
    import threading
    import time

    refs, systems = thumb
    ids = list(refs)[:40]
    refs = {i: refs[i] for i in ids}
    systems = {name: {i: c[i] for i in ids} for name, c in list(systems.items())[:2]}
    out: dict = {}
    with FaultServer(hold_after=30) as server:
        options = {"judge_base_url": server.base_url, "judge_model": "fake-judge",
                   "judge_cache": str(tmp_path / "cache.sqlite"), "judge_timeout": 60}

        def run() -> None:
            try:
                out["results"] = capeval.evaluate(refs, systems, ["clair"], options=options, engine="ray", workers=2)
            except BaseException as exc:  # noqa: BLE001 - reported below
                out["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 600
        while server.state.completed < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        while server.state.requests <= 30 and time.monotonic() < deadline:  # a worker waits on held requests
            time.sleep(0.1)
        time.sleep(1.0)
        victims = _my_ray_workers()
        assert victims, "no Ray worker process found"
        os.kill(victims[0], signal.SIGKILL)
        time.sleep(1.0)
        server.state.hold_after = None
        asyncio_release(server)
        thread.join(600)
        stats = dict(server.state.completions)
    assert "error" not in out, out.get("error")
    values = out["results"].samples["value"]
    assert len(values) == 2 * len(ids) and values.notna().all()
    assert all(v == 1 for v in stats.values())  # no judgment answered twice, counted at the server


def asyncio_release(server: FaultServer) -> None:
    """POST /release on an in-process fault server."""
    import urllib.request

    root = server.base_url.rsplit("/v1", 1)[0]
    urllib.request.urlopen(urllib.request.Request(root + "/release", method="POST"), timeout=10).read()


def _my_ray_workers() -> list[int]:
    """PIDs of ShardWorker processes descending from this process (the local Ray it started)."""
    from pathlib import Path

    def parent(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::ShardWorker"):
            pid, up = int(entry.name), int(entry.name)
            while up > 1:
                up = parent(up)
                if up == os.getpid():
                    found.append(pid)
                    break
    return found


@pytest.mark.java
def test_shards_use_the_runs_tokenisation_where_ptb_depends_on_the_next_caption():
    """PTB keeps 't.' of 'a ha t.' unless the next line of its batch starts upper-case: shards tokenised alone
    would score it differently from a local run; with the run's tokens (as --engine ray sends them) they don't."""
    from capeval.api import build_metrics
    from capeval.context import RunContext
    from capeval.engine.ray_engine import _join
    from capeval.engine.shards import ShardWorker, cider_totals, with_tokens

    refs = {"0": ["a cat on a mat", "a ha t."], "1": ["A dog runs.", "a dog runs on grass"],
            "2": ["a red bus", "A bus on a road."]}
    systems = {"s": {"0": "a ha t", "1": "a dog runs", "2": "a bus"}}
    names = ["bleu", "cider"]
    local = capeval.evaluate(refs, systems, names)
    data = capeval.api.align(*_caption_files(refs, systems))
    run_tokens = {"ptb": RunContext(data, {}).tokenized("ptb")}
    assert run_tokens["ptb"]["a ha t."] == "a ha t"

    def sharded(tokens):
        shards = [with_tokens(s, tokens) for s in split(data, 3)]
        worker = ShardWorker(names, {}, 1)
        firsts = [worker.run(s) for s in shards]
        df, docs = cider_totals(firsts, data.captioners)
        seconds = [worker.cider(s, df, docs) for s in shards]
        worker.close()
        return _join(data, build_metrics(names, {}), 1, firsts, {"cider": seconds})

    want = local.samples.query("metric == 'cider'")["value"].to_numpy()
    assert np.array_equal(sharded(run_tokens)[("cider", "s", 0)].values["cider"], want)
    assert not np.array_equal(sharded({})[("cider", "s", 0)].values["cider"], want)
