"""Judge endpoint pools: the YAML file, deterministic weighted routing, failover, per-endpoint usage."""

from __future__ import annotations

import threading
import time

import pytest

from capeval.judges import Judge, JudgeConfig, JudgeRequest
from capeval.judges.client import JudgeError
from capeval.judges.endpoints import Endpoint, EndpointPool, EndpointsError, load_endpoints, parse_endpoints
from capeval.judges.faultserver import FaultServer

pytest.importorskip("openai")


def _requests(n: int, tag: str = "") -> list[JudgeRequest]:
    return [JudgeRequest(messages=[{"role": "user", "content": f"rate caption {i} {tag}"}], seed=0)
            for i in range(n)]


def _pool(*servers: FaultServer, concurrency: int = 4, model: str = "fake") -> EndpointPool:
    return EndpointPool(model, tuple(Endpoint(f"e{k}", s.base_url, model, concurrency=concurrency)
                                     for k, s in enumerate(servers)))


@pytest.mark.parametrize(("doc", "message"), [
    ({"endpoints": []}, "expected a non-empty list of endpoints"),
    ({"endpoints": [{"model": "m"}]}, r"endpoint 1: base_url must be an http\(s\) URL, got None"),
    ({"endpoints": [{"base_url": "http://127.0.0.1:1/v1"}]}, "endpoint 1: no model"),
    ({"model": "m", "endpoints": [{"base_url": "http://x/v1", "concurrency": 0}]}, "concurrency must be > 0"),
    ({"model": "m", "endpoints": [{"base_url": "http://x/v1", "concurrency": "many"}]},
     "concurrency must be a positive integer, got 'many'"),
    ({"model": "m", "endpoints": [{"name": "gpu", "base_url": "http://x/v1", "rpm": -3}]},
     r"endpoint 1 \(gpu\): rpm must be > 0"),
    ({"model": "m", "endpoints": [{"base_url": "http://x/v1", "api_key": "sk-123"}]},
     r"unknown field\(s\) \['api_key'\]"),
    ({"model": "m", "endpoints": [{"base_url": "http://x/v1", "api_key_env": "not a name"}]},
     "api_key_env must name an environment variable"),
    ({"model": "m", "endpoints": [{"name": "a", "base_url": "http://x/v1"}, {"name": "a", "base_url": "http://y/v1"}]},
     r"endpoint name\(s\) \['a'\] given twice"),
    ({"model": "m", "hosts": []}, r"unknown top-level field\(s\) \['hosts'\]"),
])
def test_bad_endpoint_files_give_one_line_errors(doc, message):
    with pytest.raises(EndpointsError, match=message) as info:
        parse_endpoints(doc, "eps.yaml")
    assert "\n" not in str(info.value) and "eps.yaml" in str(info.value)


def test_endpoint_file_defaults_and_yaml_errors(tmp_path):
    path = tmp_path / "eps.yaml"
    path.write_text("model: judge-7b\nendpoints:\n  - base_url: http://127.0.0.1:8001/v1/\n"
                    "  - base_url: http://127.0.0.1:8002/v1\n    model: Judge-7B-Instruct\n    concurrency: 8\n"
                    "    api_key_env: GPU_KEY\n    tpm: 100000\n")
    pool = load_endpoints(path)
    assert pool.model == "judge-7b" and pool.concurrency == 24
    assert pool.endpoints[0] == Endpoint("a1", "http://127.0.0.1:8001/v1", "judge-7b")
    assert pool.endpoints[1].model == "Judge-7B-Instruct" and pool.endpoints[1].tpm == 100000.0
    path.write_text("endpoints: [base_url: x\n")
    with pytest.raises(EndpointsError, match="not valid YAML at line"):
        load_endpoints(path)
    with pytest.raises(EndpointsError, match="can't read"):
        load_endpoints(tmp_path / "missing.yaml")


def test_routing_is_deterministic_and_follows_capacity():
    pool = EndpointPool("m", (Endpoint("big", "http://a/v1", "m", concurrency=30),
                              Endpoint("small", "http://b/v1", "m", concurrency=10)))
    keys = [f"key-{i}" for i in range(8000)]
    firsts = [pool.order(k)[0] for k in keys]
    assert firsts == [pool.order(k)[0] for k in keys]
    share = firsts.count(0) / len(keys)
    assert 0.72 < share < 0.78  # 30 / (30 + 10)
    # removing an endpoint moves only the keys that were on it (rendezvous hashing)
    solo = EndpointPool("m", pool.endpoints[:1])
    assert all(solo.order(k)[0] == 0 for k in keys[:50])


def test_config_reads_the_endpoints_option(tmp_path):
    path = tmp_path / "eps.yaml"
    path.write_text("model: judge-7b\nendpoints:\n  - base_url: http://127.0.0.1:8001/v1\n    concurrency: 5\n")
    config = JudgeConfig.from_options({"judge_endpoints": str(path)})
    assert config.model == "judge-7b" and config.concurrency == 5 and config.endpoints is not None
    with pytest.raises(Exception, match="differs from the model 'judge-7b'"):
        JudgeConfig.from_options({"judge_endpoints": str(path), "judge_model": "other"})


def test_pool_spreads_load_and_equals_one_endpoint(tmp_path):
    with FaultServer() as a, FaultServer() as b:
        config = JudgeConfig(model="fake", cache_path=tmp_path / "pool.sqlite", endpoints=_pool(a, b))
        with Judge(config) as judge:
            pooled = judge.run(_requests(300))
            usage = judge.take_usage()
        single_cfg = JudgeConfig(model="fake", base_url=a.base_url, cache_path=tmp_path / "one.sqlite")
        with Judge(single_cfg) as judge:
            single = judge.run(_requests(300))
    assert [r.text for r in pooled] == [r.text for r in single]
    assert usage.completed == 300 and usage.failovers == 0
    counts = usage.by_endpoint
    assert counts["e0"]["completed"] + counts["e1"]["completed"] == 300
    assert 100 < counts["e0"]["completed"] < 200  # equal weights: about half each
    assert a.state.max_in_flight <= 4 and b.state.max_in_flight <= 4  # each endpoint's own concurrency cap
    flat = usage.as_usage()
    assert flat["endpoint:e0:completed"] == counts["e0"]["completed"] and flat["judge_failovers"] == 0


def test_endpoint_killed_mid_run_fails_over_without_losing_or_repeating(tmp_path):
    a = FaultServer().start()
    b = FaultServer(hold_after=40).start()
    try:
        config = JudgeConfig(model="fake", cache_path=tmp_path / "c.sqlite", endpoints=_pool(a, b), timeout=10,
                             backoff=0.01)
        out: dict = {}

        def run() -> None:
            with Judge(config) as judge:
                out["replies"] = judge.run(_requests(400, "kill"))
                out["usage"] = judge.take_usage()

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while b.state.requests <= 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        b.stop()  # held requests are dropped, later ones refused
        thread.join(120)
        assert not thread.is_alive()
    finally:
        a.stop()
    replies, usage = out["replies"], out["usage"]
    assert len(replies) == 400 and all(r.ok for r in replies)
    assert len({r.key for r in replies}) == 400
    assert usage.completed == 400  # each judgment counted once
    assert usage.by_endpoint["e1"]["completed"] == 40 and usage.by_endpoint["e1"]["errors"] >= 1
    assert usage.failovers >= 1 and usage.errors == 0
    assert sum(1 for v in a.state.completions.values() if v > 1) == 0
    with Judge(config.replace(endpoints=_pool(a))) as judge:  # everything is in the cache now
        again = judge.run(_requests(400, "kill"))
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in replies]


def test_endpoint_model_name_and_missing_key(tmp_path, monkeypatch):
    with FaultServer(record=True) as server:
        pool = EndpointPool("judge-7b", (Endpoint("gpu", server.base_url, "Judge-7B-Instruct"),))
        config = JudgeConfig(model="judge-7b", cache_path=tmp_path / "c.sqlite", endpoints=pool)
        with Judge(config) as judge:
            key = judge.key(_requests(1)[0])
            reply = judge.run(_requests(1))[0]
        assert reply.ok and reply.key == key  # the cache key uses the pool's model name
        assert server.state.payloads[0]["model"] == "Judge-7B-Instruct"
        monkeypatch.delenv("GPU_KEY", raising=False)
        keyed = EndpointPool("judge-7b", (Endpoint("gpu", server.base_url, "m", api_key_env="GPU_KEY"),))
        with Judge(config.replace(endpoints=keyed, cache="off")) as judge, \
                pytest.raises(JudgeError, match="endpoint gpu .*GPU_KEY .* not set"):
            judge.run(_requests(1, "k"))
        monkeypatch.setenv("GPU_KEY", "sk-test-secret")
        with Judge(config.replace(endpoints=keyed, cache="off")) as judge:
            assert judge.run(_requests(1, "k"))[0].ok
        assert "Bearer sk-test-secret" in server.state.authorization


def test_pool_signature_names_every_host():
    from capeval.judges.templates import load_template
    from capeval.metrics.judge import judge_signature

    pool = EndpointPool("m", (Endpoint("a", "http://127.0.0.1:9/v1", "m"),
                              Endpoint("b", "http://10.0.0.2:8000/v1", "m")))
    assert judge_signature(JudgeConfig(model="m", endpoints=pool), load_template("clair-v1"), 1)["host"] == \
        "10.0.0.2+127.0.0.1"
