"""``capeval report``: the HTML on a real run, escaping (XSS), merging run directories, thumbnails, the CLI,
and the build time and size of a 10,000 x 10 run."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capeval
from capeval.cli import main as cli_main
from capeval.report import build_report
from capeval.report.build import fmt, score_cube, script_json, win_rates
from capeval.report.merge import group_runs
from capeval.report.synthetic import synthetic_results, write_synthetic_run
from capeval.report.thumbs import make_thumbnails
from capeval.rundir import load_run

XSS = ["<script>alert(1)</script>", "</script><script>alert(2)</script>", '"><img src=x onerror=alert(3)>']
BLOB = re.compile(r'<script type="application/json" id="(g\d+)-data">(.*?)</script>', re.DOTALL)


class Tags(HTMLParser):
    """Start tags and their attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def blobs(html: str) -> dict[str, dict]:
    return {gid: json.loads(text) for gid, text in BLOB.findall(html)}


def shared_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder under the session's base temp dir, shared by test_report.py and test_report_browser.py."""
    return factory.getbasetemp() / name


def thumb_run_dir(thumb, factory: pytest.TempPathFactory) -> Path:
    """A real run (made once per session): 50 THumB images x 5 captioners scored with the COCO metrics."""
    path = shared_dir(factory, "report-thumb50") / "run"
    if not (path / "manifest.json").exists():
        refs, systems = thumb
        ids = list(refs)[:50]
        results = capeval.evaluate({i: refs[i] for i in ids},
                                   {s: {i: c[i] for i in ids} for s, c in systems.items()},
                                   metrics=["bleu", "meteor", "rouge_l", "cider"])
        results.write(path)
    return path


def large_report(factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The report of a synthetic 10,000 images x 10 captioners run (built once per session) and its build time."""
    base = shared_dir(factory, "report-10k")
    out = base / "big.html"
    if not out.exists():
        run = write_synthetic_run(base / "run", 10_000, 10, details=True)
        started = time.perf_counter()
        build_report([run], out, stats=False)
        (base / "seconds.txt").write_text(str(time.perf_counter() - started))
    return out, float((base / "seconds.txt").read_text())


@pytest.fixture(scope="module")
def thumb_run(thumb, tmp_path_factory) -> Path:
    """The real 50 x 5 run."""
    return thumb_run_dir(thumb, tmp_path_factory)


@pytest.fixture(scope="module")
def thumb_report(thumb_run, tmp_path_factory) -> Path:
    """Its report (statistics computed and stored in the run by the first build)."""
    return build_report([thumb_run], tmp_path_factory.mktemp("thumb-report") / "report.html")


def make_xss_run(path: Path) -> Path:
    """A real (ROUGE-L, CIDEr-D) run whose captions, references, captioner names and judge reasons hold script
    payloads; judge reasons, usage and failures are added to the run files as a judge metric would write them."""
    refs = {"1": ["a cat on a mat", XSS[0]], "2": ["a dog in a park", "a dog runs"], "3": ["two birds", XSS[2]]}
    cands = {
        "<b>bold</b>": {"1": XSS[0], "2": XSS[1], "3": XSS[2]},
        'evil"><img src=x onerror=alert(5)>': {"1": "a cat", "2": "a dog " + XSS[1], "3": "two birds"},
    }
    run = capeval.evaluate(refs, cands, metrics=["rouge_l", "cider"]).write(path)
    details = pd.DataFrame({"captioner": list(cands)[0], "sample_id": ["1", "2", "3"], "metric": "clair",
                            "seed": 0, "detail": XSS})
    details.to_parquet(run / "details.parquet", index=False)
    summary = json.loads((run / "summary.json").read_text())
    summary["usage"] = {"clair": {"judge_requests": 6.0, "prompt_tokens": 1234.0, "completion_tokens": 321.0,
                                  "cost_usd": 0.0123}}
    summary["failures"] = {"<b>bold</b>": {"clair": 1}}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


# ---------------------------------------------------------------- units


@pytest.mark.parametrize("text", [*XSS, "<!--<script>", "a & b > c", "line\u2028sep\u2029", "é 😀 \\ \""])
def test_script_json_cannot_end_the_script_element(text):
    obj = {"caps": [[text, None]], "x": 1.5}
    out = script_json(obj)
    assert not set("<>&\u2028\u2029") & set(out)
    assert json.loads(out) == obj


def test_win_rates_hand_computed():
    # 4 samples, 3 captioners, one metric; NaN = a failed score, left out of that pair
    cube = np.array([[0.5, 0.2, np.nan], [0.1, 0.1, 0.3], [0.9, 0.3, 0.8], [0.2, 0.4, 0.1]])
    w = win_rates(cube, higher_is_better=True)
    assert w[0, 1] == pytest.approx((2 + 0.5) / 4)  # wins on samples 0 and 2, tie on 1
    assert w[1, 0] == pytest.approx((1 + 0.5) / 4)
    assert w[0, 2] == pytest.approx(2 / 3)  # samples 1..3: loses, wins, wins
    assert np.isnan(w[0, 0])
    assert win_rates(cube, higher_is_better=False)[0, 1] == pytest.approx(w[1, 0])


def test_score_cube_averages_seeds_and_keeps_failures_missing(tmp_path):
    res = synthetic_results(3, 2, metrics=("judge",))
    s = res.samples
    extra = s.copy()
    extra["seed"] = 1
    extra["value"] = extra["value"] + 0.2
    res.samples = pd.concat([s, extra], ignore_index=True)
    res.samples.loc[(res.samples.sample_id == "100001") & (res.samples.captioner == "captioner_01"), "value"] = np.nan
    run = load_run(res.write(tmp_path / "r"))
    mean, std = score_cube(run, list(run.references), run.captioners, ["judge"])
    first = s[(s.captioner == "captioner_00") & (s.sample_id == "100000")]["value"].iloc[0]
    assert mean[0, 0, 0] == pytest.approx(first + 0.1)
    assert std[0, 0, 0] == pytest.approx(np.std([first, first + 0.2], ddof=1))
    assert np.isnan(mean[1, 1, 0]) and np.isnan(std[1, 1, 0])


# ---------------------------------------------------------------- a real run


def test_report_of_a_real_run(thumb_run: Path, thumb_report: Path):
    html = thumb_report.read_text(encoding="utf-8")
    summary = json.loads((thumb_run / "summary.json").read_text())
    stats = json.loads((thumb_run / "stats.json").read_text())  # computed and stored by the report
    assert set(stats["metrics"]) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"}

    # self-contained: no external resource of any kind
    for tag, attrs in tags(html):
        assert tag != "link"
        for name in ("src", "href"):
            assert not (attrs.get(name) or "").startswith(("http:", "https:", "//")), (tag, attrs)
        if tag == "script":
            assert "src" not in attrs
    assert html.count("<svg") == 14  # a bar chart and a pairwise matrix per metric

    # leaderboard: the run's means, the bootstrap CIs and the ranks of stats.json
    for cap, metrics in summary["captioners"].items():
        assert f">{cap}</th>" in html
        for metric, entry in metrics.items():
            st = stats["metrics"][metric]["captioners"][cap]
            assert stats["metrics"][metric]["captioners"][cap]["value"] == pytest.approx(entry["mean"])
            cell = f'<span class="mean">{fmt(entry["mean"])}</span><span class="rank">#{st["rank"]}</span>'
            assert cell + f'<div class="ci">[{fmt(st["ci_low"])}, {fmt(st["ci_high"])}]</div>' in html

    # the per-sample data: every caption and score of the run
    (data,) = blobs(html).values()
    assert len(data["ids"]) == 50
    assert data["captioners"] == list(summary["captioners"])
    captions = pd.read_parquet(thumb_run / "captions.parquet")
    for row in captions.sample(20, random_state=0).itertuples():
        assert data["caps"][data["ids"].index(row.sample_id)][data["captioners"].index(row.captioner)] == row.caption
    scores = pd.read_parquet(thumb_run / "scores.parquet")
    n_m = len(data["metrics"])
    for row in scores.sample(50, random_state=0).itertuples():
        s, c, m = data["ids"].index(row.sample_id), data["captioners"].index(row.captioner), \
            data["metrics"].index(row.metric)
        assert data["scores"][s][c * n_m + m] == pytest.approx(row.value, abs=5e-5)
    refs = json.loads((thumb_run / "references.json").read_text())
    assert data["refs"] == [refs[i] for i in data["ids"]]


def test_stats_json_is_reused(thumb_run: Path, thumb_report: Path, tmp_path: Path):
    stamp = (thumb_run / "stats.json").stat().st_mtime_ns
    build_report([thumb_run], tmp_path / "b.html")
    assert (thumb_run / "stats.json").stat().st_mtime_ns == stamp  # not recomputed


# ---------------------------------------------------------------- escaping


def test_xss_payloads_are_text_in_the_html(tmp_path: Path):
    run = make_xss_run(tmp_path / "run")
    html = build_report([run], tmp_path / "xss.html").read_text(encoding="utf-8")
    found = tags(html)
    assert [t for t, _ in found].count("script") == 2  # the JSON blob and the report's own JS
    assert [a.get("type") for t, a in found if t == "script"] == ["application/json", None]
    assert [t for t, _ in found].count("img") == 0
    assert not [(t, a) for t, a in found if any(k.startswith("on") for k in a)]
    assert len(re.findall(r"<script", html, re.IGNORECASE)) == 2
    assert len(re.findall(r"</script", html, re.IGNORECASE)) == 2
    # the captioner names are escaped text in the leaderboard, the SVG figures and the manifest
    assert "&lt;b&gt;bold&lt;/b&gt;</th>" in html
    assert "<b>bold</b>" not in html
    # every payload survives exactly in the per-sample data
    (data,) = blobs(html).values()
    assert [row[0] for row in data["caps"]] == XSS
    assert data["refs"][0][1] == XSS[0]
    assert [d[0][2] for d in data["details"]] == XSS
    assert data["detailKeys"] == ["clair"]
    # the usage and failures sections show the judge counters
    assert "$0.0123" in html and "1,234" in html


# ---------------------------------------------------------------- several runs


def test_runs_sharing_references_are_merged_with_prefixes(tmp_path: Path):
    two = ("rouge_l", "cider_like")
    a = write_synthetic_run(tmp_path / "a", 30, 3, metrics=two)
    b = write_synthetic_run(tmp_path / "b", 30, 2, metrics=two)  # same seed: same references; names clash
    groups = group_runs([load_run(a), load_run(b)])
    assert len(groups) == 1
    assert groups[0].merged.captioners == ["a/captioner_00", "a/captioner_01", "captioner_02",
                                           "b/captioner_00", "b/captioner_01"]
    html = build_report([a, b], tmp_path / "merged.html").read_text(encoding="utf-8")
    (data,) = blobs(html).values()
    assert data["captioners"] == groups[0].merged.captioners
    assert "b/captioner_01" in html and "Captioner names used by more than one run" in html
    assert html.count('<tr><th scope="row"') == 5
    assert not (a / "stats.json").exists()  # merged statistics are computed in memory, not stored in a run


def test_runs_that_cannot_be_compared_get_their_own_sections(tmp_path: Path):
    two = ("rouge_l", "cider_like")
    a = write_synthetic_run(tmp_path / "a", 30, 2, metrics=two)
    other_refs = write_synthetic_run(tmp_path / "b", 30, 2, seed=1, metrics=two)
    res = synthetic_results(30, 2, metrics=two)
    res.signatures = {k: v + "|model:other" for k, v in res.signatures.items()}
    other_sig = res.write(tmp_path / "c")
    groups = group_runs([load_run(p) for p in (a, other_refs, other_sig)])
    assert [g.names for g in groups] == [["a"], ["b"], ["c"]]
    assert "different references" in groups[1].reasons[0]
    assert "computed rouge_l differently" in groups[2].reasons[0]
    html = build_report([a, other_refs, other_sig], tmp_path / "three.html").read_text(encoding="utf-8")
    assert sorted(blobs(html)) == ["g0", "g1", "g2"]
    assert html.count("Not merged with an earlier section") == 3  # c can't join a (signature) nor b (refs)


def test_run_names_are_made_distinct(tmp_path: Path):
    a = write_synthetic_run(tmp_path / "x" / "run", 10, 1)
    b = write_synthetic_run(tmp_path / "y" / "run", 10, 1)
    groups = group_runs([load_run(a), load_run(b)])
    assert groups[0].names == ["x/run", "y/run"]
    assert groups[0].merged.captioners == ["x/run/captioner_00", "y/run/captioner_00"]


# ---------------------------------------------------------------- thumbnails


def test_thumbnails_found_downscaled_and_failures_counted(tmp_path: Path):
    from PIL import Image

    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (800, 600), "red").save(folder / "COCO_val2014_000000000974.jpg")  # by trailing number
    Image.new("RGB", (300, 900), "blue").save(folder / "sub" / "b.png")  # by stem
    Image.new("RGB", (50, 40), "green").save(folder / "whatever.jpg")  # by the recorded path
    (folder / "c.jpg").write_bytes(b"not an image")
    found = make_thumbnails(folder, ["974", "b", "rec", "c", "missing"], {"rec": "some/dir/whatever.jpg"})
    assert sorted(found.urls) == ["974", "b", "rec"]
    assert found.missing == ["missing"]
    assert list(found.unreadable) == ["c"]
    sizes = {}
    for sid, url in found.urls.items():
        assert url.startswith("data:image/jpeg;base64,")
        sizes[sid] = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size
    assert sizes == {"974": (160, 120), "b": (53, 160), "rec": (50, 40)}


def test_report_with_images_embeds_thumbnails(tmp_path: Path):
    from PIL import Image

    run = write_synthetic_run(tmp_path / "run", 12, 2, metrics=("rouge_l",))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for sid in list(load_run(run).references)[:10]:
        Image.new("RGB", (640, 480), "gray").save(folder / f"{sid}.jpg")
    html = build_report([run], tmp_path / "r.html", images_dir=folder).read_text(encoding="utf-8")
    (data,) = blobs(html).values()
    assert sum(t is not None for t in data["thumbs"]) == 10
    assert "10 of 12 images found" in html and "missing: 2" in html


# ---------------------------------------------------------------- the command line


@pytest.fixture()
def restore_logging():
    """``capeval.cli.main`` attaches a handler to the (captured) stderr of the moment; drop it afterwards."""
    import logging

    logger = logging.getLogger("capeval")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_cli_report(tmp_path: Path, capsys, restore_logging):
    run = write_synthetic_run(tmp_path / "run", 20, 3, metrics=("rouge_l", "cider_like"))
    out = tmp_path / "sub" / "report.html"
    cli_main(["report", str(run), "-o", str(out), "--no-stats", "--title", "My <title>"])
    assert out.exists()
    html = out.read_text(encoding="utf-8")
    assert "<title>My &lt;title&gt;</title>" in html
    assert "Statistics were turned off" in html
    assert str(out) in capsys.readouterr().out

    with pytest.raises(SystemExit) as exc:
        cli_main(["report", str(tmp_path / "nope"), "-o", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a capeval run directory" in err

    with pytest.raises(SystemExit) as exc:
        cli_main(["report", str(run), "-o", str(out), "--images", str(tmp_path / "no-such-folder")])
    assert exc.value.code == 2
    assert "not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------- a large run


@pytest.mark.slow
def test_large_run_build_time_and_size(tmp_path_factory):
    """10,000 images x 10 captioners x 7 metrics with a judge reason per caption: the per-sample part is one
    JSON blob rendered a page at a time, so the file stays small enough for a browser to open quickly."""
    out, seconds = large_report(tmp_path_factory)
    size = out.stat().st_size
    print(f"\n10k x 10 report: built in {seconds:.1f} s, {size / 1e6:.1f} MB")
    html = out.read_text(encoding="utf-8")
    assert html.count("<article") == 0  # nothing per sample is pre-rendered as HTML
    outside = BLOB.sub("", html)
    assert len(outside) < 1_500_000  # the markup around the data (figures, tables) stays small
    (data,) = blobs(html).values()
    assert len(data["ids"]) == 10_000 and len(data["captioners"]) == 10
    assert len(data["details"]) == 10_000 and all(len(d) == 10 for d in data["details"])
    print(f"\nreport of 10,000 images x 10 captioners: {seconds:.1f} s to build, {size / 1e6:.1f} MB")
    assert size < 30_000_000


# ---------------------------------------------------------------- seeds and templates


def test_multi_seed_metric_shows_std_over_seeds(tmp_path: Path):
    res = synthetic_results(40, 2, metrics=("judge",))
    res.metric_info["judge"]["stochastic"] = True
    shifted = res.samples.assign(seed=1, value=res.samples["value"] * 0.8)
    res.samples = pd.concat([res.samples, shifted], ignore_index=True)
    res.corpus = res.samples.groupby(["captioner", "metric", "seed"], as_index=False)["value"].mean()
    res.seeds = 2
    run = res.write(tmp_path / "run")
    html = build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    summary = json.loads((run / "summary.json").read_text())["captioners"]
    for doc in summary.values():
        entry = doc["judge"]
        assert entry["seeds"] == 2
        assert f'<span class="mean">{fmt(entry["mean"])}</span><span class="std">±{fmt(entry["std"])}' in html
    (data,) = blobs(html).values()
    first = res.samples[(res.samples.captioner == "captioner_00") & (res.samples.sample_id == "100000")]["value"]
    assert data["scores"][0][0] == pytest.approx(first.mean(), abs=5e-5)
    assert data["seedStd"][0][0] == pytest.approx(first.std(ddof=1), abs=5e-5)


def test_custom_template_is_autoescaped(tmp_path: Path):
    res = synthetic_results(5, 1, metrics=("rouge_l",))
    res.dataset.candidates = {"<i>x</i>": res.dataset.candidates["captioner_00"]}
    res.samples["captioner"] = "<i>x</i>"
    res.corpus["captioner"] = "<i>x</i>"
    run = res.write(tmp_path / "run")
    template = tmp_path / "mine.html.jinja"
    template.write_text("<h1>{{ title }}</h1>{% for g in groups %}<p>{{ g.captioners|join(', ') }}</p>"
                        "<script type=\"application/json\">{{ g.data_json }}</script>{% endfor %}")
    html = build_report([run], tmp_path / "r.html", template=template, stats=False, page_size=7) \
        .read_text(encoding="utf-8")
    assert "<p>&lt;i&gt;x&lt;/i&gt;</p>" in html
    data = json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])
    assert data["captioners"] == ["<i>x</i>"] and data["pageSize"] == 7
