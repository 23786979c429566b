"""The judge response cache: WAL mode, keys over everything that can change a reply, clear errors."""

from __future__ import annotations

import sqlite3

import pytest

from capeval.judges import (
    CacheError,
    Judge,
    JudgeCache,
    JudgeConfig,
    JudgeRequest,
    image_data_url,
    run_requests,
)
from capeval.judges.config import default_cache_path
from capeval.judges.faultserver import FaultServer
from capeval.judges.protocol import JUDGE_VERSION, cache_key


def test_wal_mode_and_round_trip(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = JudgeCache(path)
    cache.put("k1", "m", '{"score": 1}', 10, 3, "stop")
    assert cache.get("k1").text == '{"score": 1}'
    assert cache.get_many(["k1", "nope"]).keys() == {"k1"}
    assert len(cache) == 1
    cache.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    again = JudgeCache(path)
    assert again.get("k1").prompt_tokens == 10
    again.close()


def test_key_covers_every_component(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    png2 = tmp_path / "b.png"
    png2.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\1" * 20)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "rate"},
                                         {"type": "image_url", "image_url": {"url": image_data_url(png)}}]}]
    msgs2 = [{"role": "user", "content": [{"type": "text", "text": "rate"},
                                          {"type": "image_url", "image_url": {"url": image_data_url(png2)}}]}]
    params = {"temperature": 0.7, "max_tokens": 64}
    base = cache_key("m", msgs, params, 0, "t")
    variants = [
        cache_key("m2", msgs, params, 0, "t"),
        cache_key("m", msgs2, params, 0, "t"),  # only the image bytes differ
        cache_key("m", msgs, {"temperature": 0.0, "max_tokens": 64}, 0, "t"),
        cache_key("m", msgs, {"temperature": 0.7, "max_tokens": 65}, 0, "t"),
        cache_key("m", msgs, params, 1, "t"),
        cache_key("m", msgs, params, None, "t"),
        cache_key("m", msgs, params, 0, "t2"),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # the order of a schema's properties is part of the request (decoders generate fields in that order)
    fmt_a = {"type": "json_schema", "json_schema": {"schema": {"properties": {"score": {}, "reason": {}}}}}
    fmt_b = {"type": "json_schema", "json_schema": {"schema": {"properties": {"reason": {}, "score": {}}}}}
    assert cache_key("m", msgs, {**params, "response_format": fmt_a}, 0, "t") != \
        cache_key("m", msgs, {**params, "response_format": fmt_b}, 0, "t")
    assert JUDGE_VERSION in ("1",)  # bumping it invalidates old entries (it is hashed into every key)


def test_corrupt_cache_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not an sqlite database at all" * 200)
    with pytest.raises(CacheError, match=r"bad\.sqlite is corrupt"):
        JudgeCache(path)


def test_truncated_cache_is_a_clear_error(tmp_path):
    path = tmp_path / "trunc.sqlite"
    cache = JudgeCache(path)
    for i in range(300):
        cache.put(f"k{i}", "m", "x" * 500, 1, 1, "stop")
    cache.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[:4096] + b"\xff" * 4096 + data[8192: len(data) // 2])
    with pytest.raises(CacheError, match="corrupt|malformed"):
        c = JudgeCache(path)
        c.get_many([f"k{i}" for i in range(300)])
        c.check()


@pytest.mark.parametrize("when", ["open", "write"])
def test_locked_cache_is_a_clear_error(tmp_path, when):
    path = tmp_path / "locked.sqlite"
    JudgeCache(path).close()
    cache = JudgeCache(path, busy_timeout=0.2) if when == "write" else None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CacheError, match="locked by another process"):
            if cache is None:
                JudgeCache(path, busy_timeout=0.2)
            else:
                cache.put("k", "m", "t", 1, 1, None)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        if cache is not None:
            cache.close()


def test_default_path_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPEVAL_CACHE_DIR", str(tmp_path / "cc"))
    assert default_cache_path() == tmp_path / "cc" / "judge-cache.sqlite"
    monkeypatch.delenv("CAPEVAL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "capeval" / "judge-cache.sqlite"


def _requests(n, seed=0):
    return [JudgeRequest(messages=[{"role": "user", "content": f"item {i}"}], seed=seed) for i in range(n)]


def test_cache_modes_on_off_refresh(tmp_path):
    with FaultServer() as server:
        base = JudgeConfig(model="m", base_url=server.base_url, cache_path=tmp_path / "c.sqlite")
        with Judge(base) as judge:
            first = judge.run(_requests(5))
            assert [r.cached for r in first] == [False] * 5
            second = judge.run(_requests(5))
            assert [r.cached for r in second] == [True] * 5
            assert [r.text for r in second] == [r.text for r in first]
            assert judge.usage.cache_hits == 5 and judge.usage.completed == 5
        assert server.state.requests == 5
        with Judge(base.replace(cache="refresh")) as judge:
            assert not any(r.cached for r in judge.run(_requests(5)))
        assert server.state.requests == 10
        with Judge(base.replace(cache="off")) as judge:
            assert judge.cache is None
            assert not any(r.cached for r in judge.run(_requests(5)))
        assert server.state.requests == 15


def test_failed_calls_are_not_cached(tmp_path):
    with FaultServer() as server:
        cfg = JudgeConfig(model="m", base_url=server.base_url, cache_path=tmp_path / "c.sqlite", retries=0)
        req = [JudgeRequest(messages=[{"role": "user", "content": "x <<fault:500>>"}])]
        with Judge(cfg) as judge:
            assert judge.run(req)[0].error
            assert len(judge.cache) == 0
            again = judge.run(req)[0]  # the server's script is used up: the rerun succeeds
            assert again.ok and not again.cached


def test_request_body_is_the_json_the_key_hashes_in_its_own_order(tmp_path):
    from capeval.judges.protocol import body_json, request_body

    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"score": {"type": "number"}, "reason": {"type": "string"}}}}}
    judge = Judge(JudgeConfig(model="m", cache="off", top_p=0.9))
    reqs = [JudgeRequest(messages=[{"role": "user", "content": 'é ☃ "q"\n'}], seed=None),
            JudgeRequest(messages=[{"role": "user", "content": "a"}], seed=3, response_format=schema,
                         template_hash="abc")]
    for r in reqs:
        key, body = judge.prepare(r)
        assert body.decode() == body_json(request_body("m", r.messages, judge.params(r), r.seed))
        assert key == cache_key("m", r.messages, judge.params(r), r.seed, r.template_hash)
    judge.close()
    with FaultServer(record=True) as server:
        run_requests([reqs[1]], JudgeConfig(model="m", base_url=server.base_url, cache="off"))
        sent = server.state.payloads[0]["response_format"]["json_schema"]["schema"]["properties"]
    assert list(sent) == ["score", "reason"]  # not sorted: the endpoint sees the schema as built
