"""The judge client against the fault-injecting server: every fault ends in a correct reply or a counted failure."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from capeval.errors import CapevalError
from capeval.judges import Judge, JudgeConfig, JudgeError, JudgeRequest, run_requests
from capeval.judges.faultserver import FaultServer, make_reply_text
from capeval.judges.ratelimit import TokenBucket


@pytest.fixture
def server():
    with FaultServer(hang_seconds=20, slow_seconds=0.3, retry_after=0.05) as s:
        yield s


def cfg(server, tmp_path, **kw):
    base = dict(model="m", base_url=server.base_url, cache_path=tmp_path / "c.sqlite", timeout=2.0, retries=3,
                backoff=0.01, backoff_max=1.0)
    base.update(kw)
    return JudgeConfig(**base)


def req(text, seed=0):
    return JudgeRequest(messages=[{"role": "user", "content": text}], seed=seed)


def expected_text(judge, request):
    """What the server answers when there is no fault: a pure function of the payload."""
    return make_reply_text(judge._payload(request))


RECOVERING = ["429", "500", "502", "503", "hang", "malformed", "truncated", "empty", "429,500,ok", "slow"]


@pytest.mark.parametrize("http", ["fast", "openai"])
@pytest.mark.parametrize("script", RECOVERING)
def test_fault_then_correct_reply(server, tmp_path, script, http):
    r = req(f"caption <<fault:{script}>>")
    with Judge(cfg(server, tmp_path, timeout=1.0, http=http)) as judge:
        reply = judge.run([r])[0]
        assert reply.ok, reply.error
        assert reply.text == expected_text(judge, r)
        faults = [f for f in script.split(",") if f not in ("ok", "slow")]
        assert reply.attempts == len(faults) + 1
        assert judge.usage.retries == len(faults)
        assert judge.usage.errors == 0
        assert judge.usage.requests == len(faults) + 1


@pytest.mark.parametrize(("script", "kind"), [("400", "http_400"), ("500,500,500,500,500", "http_500"),
                                                ("hang,hang,hang,hang", "timeout")])
@pytest.mark.parametrize("http", ["fast", "openai"])
def test_fault_that_does_not_recover_is_a_counted_failure(server, tmp_path, script, kind, http):
    with Judge(cfg(server, tmp_path, timeout=0.5, http=http)) as judge:
        reply = judge.run([req(f"x <<fault:{script}>>")])[0]
        assert not reply.ok and reply.text is None
        assert "gave up" in reply.error
        assert judge.usage.errors == 1 and judge.usage.by_error == {kind: 1}
        assert len(judge.cache) == 0


@pytest.mark.parametrize("http", ["fast", "openai"])
def test_mixed_faults_in_one_batch_keep_order_and_lose_nothing(server, tmp_path, http):
    rng = random.Random(7)
    pool = ["ok", "429", "500", "malformed", "truncated", "empty", "hang", "slow", "400", "503,503"]
    scripts = [rng.choice(pool) for _ in range(60)]
    requests = [req(f"item {i} <<fault:{s}>>") for i, s in enumerate(scripts)]
    with Judge(cfg(server, tmp_path, timeout=1.0, concurrency=8, http=http)) as judge:
        replies = judge.run(requests)
        assert len(replies) == 60
        for r, s, reply in zip(requests, scripts, replies, strict=True):
            if s == "400":
                assert reply.error and "HTTP 400" in reply.error
            else:
                assert reply.ok, (s, reply.error)
                assert reply.text == expected_text(judge, r)
        assert judge.usage.errors == scripts.count("400")
        assert judge.usage.completed + judge.usage.errors == 60
        # a rerun answers every successful request from the cache and retries only the failed ones
        again = judge.run(requests)
        assert [a.text for a, b in zip(again, replies, strict=True) if b.ok] == [b.text for b in replies if b.ok]
        assert sum(a.cached for a in again) == 60 - scripts.count("400")


def test_retry_after_is_honoured(tmp_path):
    with FaultServer(retry_after=0.6) as server, Judge(cfg(server, tmp_path, backoff=0.001)) as judge:
        start = time.monotonic()
        reply = judge.run([req("x <<fault:429>>")])[0]
        elapsed = time.monotonic() - start
    assert reply.ok
    assert elapsed >= 0.6  # the backoff alone would have waited ~1 ms


def test_timeout_then_retry_does_not_wait_for_the_hang(server, tmp_path):
    with Judge(cfg(server, tmp_path, timeout=0.5)) as judge:
        start = time.monotonic()
        reply = judge.run([req("x <<fault:hang>>")])[0]
        assert reply.ok and reply.attempts == 2
        assert time.monotonic() - start < 5


def test_concurrency_is_bounded(server, tmp_path):
    with Judge(cfg(server, tmp_path, concurrency=5)) as judge:
        judge.run([req(f"s{i} <<fault:slow>>") for i in range(20)])
    assert server.state.max_in_flight == 5


def test_requests_per_minute_limit(server, tmp_path):
    with Judge(cfg(server, tmp_path, rpm=1200, concurrency=50)) as judge:  # 20/s, bursts of 20
        start = time.monotonic()
        judge.run([req(f"r{i}") for i in range(50)])
        elapsed = time.monotonic() - start
    assert elapsed >= (50 - 20) / 20 * 0.9


def test_token_bucket_paces_tokens():
    async def run():
        bucket = TokenBucket(6000)  # 100 tokens/s, holds 100
        start = time.monotonic()
        for _ in range(4):
            await bucket.acquire(50)
        return time.monotonic() - start

    assert asyncio.run(run()) >= 0.95


def test_identical_requests_are_sent_once(server, tmp_path):
    with Judge(cfg(server, tmp_path)) as judge:
        replies = judge.run([req("same"), req("same"), req("other"), req("same", seed=1)])
    assert server.state.requests == 3
    assert replies[0].text == replies[1].text


@pytest.mark.parametrize("http", ["fast", "openai"])
def test_rejected_key_or_unknown_model_stops_the_run(server, tmp_path, http):
    with Judge(cfg(server, tmp_path, http=http)) as judge, pytest.raises(JudgeError, match="HTTP 401"):
        judge.run([req("a <<fault:401>>"), req("b")])
    with Judge(cfg(server, tmp_path, http=http)) as judge, pytest.raises(JudgeError, match="HTTP 404"):
        judge.run([req("c <<fault:404>>")])


def test_missing_key_for_the_openai_api_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    config = JudgeConfig(model="gpt-4o-mini", api_key_env="MY_JUDGE_KEY", cache="off")
    with Judge(config) as judge, pytest.raises(JudgeError, match="MY_JUDGE_KEY"):
        judge.run([req("x")])


def test_usage_tokens_and_cost(server, tmp_path):
    prices = tmp_path / "p.yaml"
    prices.write_text("models:\n  my-judge: {input: 1000000, output: 2000000}\n")
    with Judge(cfg(server, tmp_path, model="my-judge", prices=str(prices))) as judge:
        replies = judge.run([req("a"), req("bb")])
        usage = judge.take_usage()
    pt = sum(r.prompt_tokens for r in replies)
    ct = sum(r.completion_tokens for r in replies)
    assert pt > 0 and ct > 0
    assert usage.prompt_tokens == pt and usage.completion_tokens == ct
    assert usage.cost_usd == pytest.approx(pt * 1.0 + ct * 2.0)
    assert usage.as_usage()["cost_usd"] == pytest.approx(pt + 2.0 * ct)
    with Judge(cfg(server, tmp_path, model="my-judge", prices=str(prices))) as judge:
        judge.run([req("a"), req("bb")])
        cached = judge.take_usage()
    assert cached.cache_hits == 2 and cached.cost_usd == 0.0 and cached.prompt_tokens == 0


def test_unknown_model_has_no_cost(server, tmp_path):
    with Judge(cfg(server, tmp_path, model="no-such-model-xyz")) as judge:
        judge.run([req("a")])
        usage = judge.take_usage().as_usage()
    assert "cost_usd" not in usage and usage["prompt_tokens"] > 0


def test_connection_refused_is_retried_then_counted(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = JudgeConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", cache="off", retries=2, backoff=0.01)
    with Judge(config) as judge:
        reply = judge.run([req("x")])[0]
        assert not reply.ok and "connection error" in reply.error
        assert judge.usage.by_error == {"connection": 1} and judge.usage.requests == 3


def test_the_key_is_sent_as_a_bearer_token(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_JUDGE_KEY", "sk-test-123")
    with Judge(cfg(server, tmp_path, api_key_env="SOME_JUDGE_KEY")) as judge:
        judge.run([req("a")])
    assert server.state.authorization == {"Bearer sk-test-123"}


def test_response_format_modes(tmp_path):
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}}}}}
    with FaultServer(record=True) as server:
        for mode in ("json_schema", "json_object", "none"):
            r = JudgeRequest(messages=[{"role": "user", "content": mode}], response_format=schema)
            run_requests([r], cfg(server, tmp_path, response_format=mode, cache="off"))
        sent = [p.get("response_format") for p in server.state.payloads]
    assert sent == [schema, {"type": "json_object"}, None]


def test_config_from_options():
    c = JudgeConfig.from_options({
        "judge_model": "smollm2", "judge_base_url": "http://127.0.0.1:1/v1", "judge_concurrency": "3",
        "judge_timeout": "7", "judge_rpm": 60, "judge_cache": "/tmp/x.sqlite", "cache": True,
        "refresh_cache": True, "seeds": 3,
    }, max_tokens=99)
    assert (c.model, c.base_url, c.concurrency, c.timeout, c.rpm, c.max_tokens) == (
        "smollm2", "http://127.0.0.1:1/v1", 3, 7.0, 60.0, 99)
    assert str(c.resolved_cache_path) == "/tmp/x.sqlite" and c.cache == "refresh"
    assert c.temperature == 0.7
    assert JudgeConfig.from_options({"seeds": 1}).temperature == 0.0
    assert JudgeConfig.from_options({"seeds": 1, "judge_temperature": "0.3"}).temperature == 0.3
    assert JudgeConfig.from_options({"cache": False, "refresh_cache": True}).cache == "off"
    with pytest.raises(CapevalError, match="judge_concurrency"):
        JudgeConfig.from_options({"judge_concurrency": "lots"})
    with pytest.raises(CapevalError, match="judge_response_format"):
        JudgeConfig.from_options({"judge_response_format": "yaml"})
