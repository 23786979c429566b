"""capeval annotate: chunked reading, per-row columns equal to `score`, --keep, --refs, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import capeval
from capeval.annotate import annotate
from capeval.errors import InputError
from capeval.filters import parse_keep


def _rows(thumb, n_images: int = 40) -> pd.DataFrame:
    refs, systems = thumb
    ids = list(refs)[:n_images]
    rows = [{"image_id": i, "system": name, "caption": caps[i], "refs": refs[i]}
            for name, caps in systems.items() for i in ids if i in caps]
    return pd.DataFrame(rows)


@pytest.mark.java
def test_chunked_values_equal_score_including_cider_frequencies(thumb, tmp_path):
    frame = _rows(thumb, 40).head(150)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src)
    result = annotate(src, ["bleu", "cider", "rouge_l"], tmp_path / "out.parquet", chunk_rows=37)
    assert result.chunks == 5 and result.rows_in == result.rows_out == 150
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == [*frame.columns, "bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider", "rouge_l"]
    assert out["caption"].tolist() == frame["caption"].tolist()
    # the same rows as one `score` run: each row a sample of one captioner (CIDEr-D df over all rows)
    rid = [str(k) for k in range(len(frame))]
    ref = capeval.evaluate(dict(zip(rid, frame["refs"].map(list), strict=True)),
                           {"rows": dict(zip(rid, frame["caption"], strict=True))}, ["bleu", "cider", "rouge_l"])
    wide = ref.samples.pivot(index="sample_id", columns="metric", values="value").loc[rid]
    for key in ("bleu_4", "cider", "rouge_l"):
        np.testing.assert_allclose(out[key].to_numpy(), wide[key].to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.java
def test_jsonl_with_refs_file_and_keep(thumb, tmp_path):
    refs, systems = thumb
    ids = list(refs)[:30]
    (tmp_path / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    name, caps = next(iter(systems.items()))
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"seg_id": i, "hyp": caps[i], "score": k}) + "\n" for k, i in enumerate(ids)))
    result = annotate(src, ["rouge_l"], tmp_path / "out.parquet", refs=tmp_path / "refs.json", keep="rouge_l>=0.4",
                      chunk_rows=7)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert result.fields.text == "hyp" and result.fields.id == "seg_id"
    assert len(out) == result.rows_out and (out["rouge_l"] >= 0.4).all()
    assert 0 < result.rows_out < 30 and list(out.columns) == ["seg_id", "hyp", "score", "rouge_l"]


def test_bad_inputs_give_one_line_errors(tmp_path):
    src = tmp_path / "rows.parquet"
    pd.DataFrame({"caption": ["a cat", "a dog"], "refs": [["a cat"], []]}).to_parquet(src)
    with pytest.raises(InputError, match=r"rows.parquet.*row 2: no references"):
        annotate(src, ["rouge_l"], tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "o.parquet.partial").exists()
    with pytest.raises(InputError, match="no column 'clair'"):
        annotate(src, ["rouge_l"], tmp_path / "o.parquet", keep="clair>=0.6")
    with pytest.raises(InputError, match="can't read 'clair >> 1'"):
        parse_keep("rouge_l>0 and clair >> 1")
    with pytest.raises(InputError, match="no reference column 'gts'"):
        annotate(src, ["rouge_l"], tmp_path / "o.parquet", ref_field="gts")
    pd.DataFrame({"caption": ["a cat"], "other": [1]}).to_parquet(src)
    with pytest.raises(InputError, match="need references.*--ref-field or give --refs"):
        annotate(src, ["rouge_l"], tmp_path / "o.parquet")
    with pytest.raises(InputError, match="reads .parquet or .jsonl"):
        annotate(tmp_path / "rows.csv", ["rouge_l"], tmp_path / "o.parquet")


@pytest.mark.slow
@pytest.mark.java
def test_annotate_100k_rows_keep_matches_an_independent_count(thumb, tmp_path):
    base = _rows(thumb, 500)  # 2,500 (captioner, image) pairs
    n = 100_000
    frame = base.iloc[np.arange(n) % len(base)].reset_index(drop=True)
    frame["row"] = np.arange(n)
    src = tmp_path / "big.parquet"
    frame.to_parquet(src, row_group_size=20_000)
    cmd = [sys.executable, "-m", "capeval", "annotate", str(src), "--metrics", "rouge_l", "--keep", "rouge_l>=0.5",
           "--out", str(tmp_path / "kept.parquet"), "--chunk-rows", "25000"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    # independent count: score the 2,500 distinct pairs with `evaluate`, then count the rows that repeat them
    rid = [str(k) for k in range(len(base))]
    scored = capeval.evaluate(dict(zip(rid, base["refs"].map(list), strict=True)),
                              {"pairs": dict(zip(rid, base["caption"], strict=True))}, ["rouge_l"])
    per_pair = scored.samples.set_index("sample_id")["value"].loc[rid].to_numpy()
    expected = int((per_pair[np.arange(n) % len(base)] >= 0.5).sum())
    kept = pq.ParquetFile(tmp_path / "kept.parquet")
    assert kept.metadata.num_rows == expected
    assert 0 < expected < n
    table = kept.read(columns=["row", "rouge_l"]).to_pandas()
    assert table["row"].is_monotonic_increasing and (table["rouge_l"] >= 0.5).all()
    assert f"100000 rows scored, {expected} written" in proc.stdout


@pytest.mark.slow
@pytest.mark.java
def test_annotate_on_ray_equals_local(thumb, tmp_path):
    pytest.importorskip("ray")
    frame = _rows(thumb, 40).head(120)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src)
    local = annotate(src, ["bleu", "cider"], tmp_path / "local.parquet", chunk_rows=25, keep="cider>0.3")
    ray_run = annotate(src, ["bleu", "cider"], tmp_path / "ray.parquet", chunk_rows=25, keep="cider>0.3",
                       engine="ray", workers=2)
    assert ray_run.rows_out == local.rows_out and ray_run.chunks == 5
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local.parquet"),
                                  pd.read_parquet(tmp_path / "ray.parquet"))
