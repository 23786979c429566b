"""Readers of lmms-eval samples, VLMEvalKit predictions and Hugging Face datasets: layouts, detection, bad rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tool_files import write_lmms_samples, write_vlmeval

from capeval.errors import InputError
from capeval.io.detect import read_tool_file, sniff, split_prefix
from capeval.io.literal import NotACaptionLiteral, parse_caption_literal
from capeval.io.readers import read_candidates, read_references

REFS = {"974": ["A group of people ride atop of an elephant.", "A guide and three people riding an elephant."],
        "2453": ["Bench sitting in flood waters.", "A bench looking out onto a flooded river."],
        "2690": ["A large number of small boats."]}
CAPS = {"974": "People riding an elephant.", "2453": "A bench in water.", "2690": "Boats in a harbor."}


@pytest.mark.parametrize("nested", [False, True])
def test_lmms_samples_read_ids_captions_references(tmp_path, nested):
    path = write_lmms_samples(tmp_path / "llava-1.5", REFS, CAPS, nested=nested)
    assert sniff(path) == "lmms"
    tool = read_tool_file(str(path), "candidates")
    assert tool.format == "lmms-eval" and tool.captioner == "llava-1.5"
    assert tool.candidates.captions == {k: [v] for k, v in CAPS.items()}
    assert tool.candidates.id_kind == "int"  # lmms-eval's image_id is an int
    assert tool.references.captions == REFS
    assert read_references(path).captions == REFS  # --refs on the same file
    assert read_candidates(f"lmms:{path}")[None].captions == tool.candidates.captions


def test_lmms_falls_back_to_target_and_replies(tmp_path):
    """Without the per-metric dicts (other tasks' layout): the id is doc_id, references come from `target`."""
    path = tmp_path / "samples_flickr30k_test.jsonl"
    rows = [{"doc_id": 0, "target": str(["a dog", "a puppy"]), "filtered_resps": [["a brown dog"]]},
            {"doc_id": 1, "target": "one plain reference", "resps": [["a cat"]], "filtered_resps": ["a cat"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    tool = read_tool_file(f"lmms:{path}", "candidates")
    assert tool.candidates.captions == {"0": ["a brown dog"], "1": ["a cat"]}
    assert tool.references.captions == {"0": ["a dog", "a puppy"], "1": ["one plain reference"]}


def test_lmms_older_logs_layout(tmp_path):
    """lmms-eval 0.1/0.2 wrote <task>.json holding {"logs": [records]} with nested replies."""
    path = tmp_path / "coco2017_cap_val.json"
    logs = [{"doc_id": 0, "target": "['a dog', 'a puppy']", "resps": [["a brown dog"]],
             "filtered_resps": ["a brown dog"],
             "coco_CIDEr": {"answer": ["a dog", "a puppy"], "pred": "a brown dog", "image_id": 139}}]
    path.write_text(json.dumps({"args": {}, "model_configs": {}, "logs": logs}))
    assert sniff(path) == "lmms"
    tool = read_tool_file(str(path), "candidates")
    assert tool.candidates.captions == {"139": ["a brown dog"]}
    assert tool.references.captions == {"139": ["a dog", "a puppy"]}


def test_lmms_passthrough_has_no_references(tmp_path):
    path = tmp_path / "samples_coco2014_cap_test.jsonl"
    path.write_text(json.dumps({"doc_id": 0, "filtered_resps": "a cat",
                                "coco_passthrough": {"pred": "a cat", "image_id": 42}}) + "\n"
                    + json.dumps({"doc_id": 1, "filtered_resps": "a dog",  # flickr30k's keeps the reply list
                                  "flickr_passthrough": {"pred": ["a dog"], "image_id": 43}}) + "\n")
    tool = read_tool_file(str(path), "candidates")
    assert tool.candidates.captions == {"42": ["a cat"], "43": ["a dog"]} and tool.references is None
    with pytest.raises(InputError, match=r"holds no reference captions; pass --refs"):
        tool.require_references()


def test_lmms_results_json_gives_the_tools_scores(tmp_path):
    path = write_lmms_samples(tmp_path / "m", REFS, CAPS, task="nocaps_val", prefix="nocaps",
                              results={"nocaps_CIDEr": 0.91, "nocaps_Bleu_4": 0.3, "nocaps_METEOR": 0.25})
    ext = read_tool_file(str(path), "candidates").external
    assert ext.tool == "lmms-eval" and ext.scale == 1.0
    assert ext.values == {"cider": 0.91, "bleu_4": 0.3, "meteor": 0.25}
    assert ext.tool_names["cider"] == "nocaps_CIDEr"


@pytest.mark.parametrize(("line", "problem"), [
    ({"target": "x", "filtered_resps": "y"}, r"line 2: not an lmms-eval sample \(no 'doc_id'\)"),
    ({"doc_id": 1, "filtered_resps": [[3]]}, r"line 2: the reply is int, not a string"),
    ({"doc_id": 1, "coco_CIDEr": {"pred": "y", "image_id": 1, "answer": [1, 2]}},
     r"line 2: 'answer' must be a list of strings"),
    ({"doc_id": 0, "coco_CIDEr": {"pred": "y", "image_id": 974, "answer": ["r"]}}, r"id 974: line 2: duplicate id"),
])
def test_lmms_bad_rows_name_file_and_line(tmp_path, line, problem):
    path = tmp_path / "samples_coco2014_cap_val.jsonl"
    good = {"doc_id": 0, "filtered_resps": "a", "coco_CIDEr": {"pred": "a", "image_id": 974, "answer": ["r"]}}
    path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(InputError, match=problem) as err:
        read_tool_file(f"lmms:{path}", "candidates")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".xlsx", ".tsv", ".json"])
def test_vlmeval_predictions_every_format(tmp_path, suffix):
    path = write_vlmeval(tmp_path / f"llava_v1.5_7b_COCO_VAL{suffix}", REFS, CAPS,
                         scores={"Bleu": [70.1, 50.2, 40.3, 30.4], "ROUGE_L": 55.5, "CIDEr": 101.5})
    assert sniff(path) == "vlmeval"
    tool = read_tool_file(str(path), "candidates")
    assert tool.captioner == "llava_v1.5_7b"
    assert tool.candidates.captions == {k: [v] for k, v in CAPS.items()}
    assert tool.candidates.id_kind == "untyped"  # spreadsheet cells: ids match the references' ids as text
    assert tool.references.captions == REFS
    ext = tool.external
    assert ext.tool == "VLMEvalKit" and ext.scale == 100.0
    assert ext.values == {"bleu_1": 70.1, "bleu_2": 50.2, "bleu_3": 40.3, "bleu_4": 30.4, "rouge_l": 55.5,
                          "cider": 101.5}


def test_vlmeval_id_from_an_image_column(tmp_path):
    import pandas as pd

    path = tmp_path / "m_COCO_VAL.tsv"
    pd.DataFrame({"index": [0, 1], "image_path": ["a.jpg", "b.jpg"], "answer": ["['x']", "['y', 'z']"],
                  "prediction": ["p", "q"]}).to_csv(path, sep="\t", index=False)
    tool = read_tool_file(str(path), "candidates", id_field="image_path")
    assert tool.candidates.captions == {"a.jpg": ["p"], "b.jpg": ["q"]}
    assert tool.references.captions == {"a.jpg": ["x"], "b.jpg": ["y", "z"]}


MARKER_CODE = "__import__('os').system('touch {marker}')"


@pytest.mark.parametrize("suffix", [".xlsx", ".tsv", ".json"])
def test_vlmeval_answer_with_code_is_refused_and_not_run(tmp_path, suffix):
    marker = tmp_path / "executed"
    refs = dict(REFS)
    path = write_vlmeval(tmp_path / f"m_COCO_VAL{suffix}", refs, CAPS)
    from tool_files import vlmeval_frame

    frame = vlmeval_frame(refs, CAPS)
    frame.loc[1, "answer"] = MARKER_CODE.format(marker=marker)
    if suffix == ".xlsx":
        frame.to_excel(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        path.write_text(json.dumps(frame.to_dict("records")))
    row = {".xlsx": "row 3", ".tsv": "row 3", ".json": "row 2"}[suffix]
    with pytest.raises(InputError, match=rf"{row}: 'answer' refused \(a function call") as err:
        read_tool_file(str(path), "candidates")
    assert str(path) in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "capeval", "score", "--cand", f"vlmeval:{path}", "-m", "bleu",
                           "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line
    assert str(path) in proc.stderr and row in proc.stderr and "refused" in proc.stderr
    assert not marker.exists()  # nothing was executed
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("text", "problem"), [
    ("__import__('os').system('true')", "a function call"),
    ("open('/etc/passwd').read()", "a function call"),
    ("['ok', 1]", "item 1 is a int constant"),
    ("['ok', x]", "item 1 is a name"),
    ("{'a': 1}", "a dict"),
    ("['unclosed'", "not a Python literal"),
    ("[] + []", "an operator"),
])
def test_caption_literal_refuses_everything_but_strings(text, problem):
    with pytest.raises(NotACaptionLiteral, match=problem):
        parse_caption_literal(text)


def test_caption_literal_reads_lists_tuples_and_strings():
    assert parse_caption_literal("['a', \"b's\"]") == ["a", "b's"]
    assert parse_caption_literal("('a',)") == ["a"]
    assert parse_caption_literal("'one'") == ["one"]


@pytest.mark.parametrize(("change", "problem"), [
    ({"drop": "prediction"}, r"no 'prediction' column"),
    ({"drop": "index"}, r"no 'index' column.*pass --id-field"),
    ({"dup": True}, r"row 3: duplicate index '974' \(first in row 2\)"),
    ({"answer": "[1, 2]"}, r"row 2: 'answer' refused \(item 0 is a int constant"),
])
def test_vlmeval_bad_rows_name_file_and_row(tmp_path, change, problem):
    from tool_files import vlmeval_frame

    frame = vlmeval_frame(REFS, CAPS)
    if "drop" in change:
        frame = frame.drop(columns=[change["drop"]])
    if change.get("dup"):
        frame.loc[1, "index"] = 974
    if "answer" in change:
        frame.loc[0, "answer"] = change["answer"]
    path = tmp_path / "m_COCO_VAL.xlsx"
    frame.to_excel(path, index=False)
    with pytest.raises(InputError, match=problem) as err:
        read_tool_file(str(path), "candidates")
    assert str(path) in str(err.value)


def test_vlmeval_empty_prediction_is_the_empty_caption(tmp_path):
    captions = dict(CAPS, **{"2453": ""})
    path = write_vlmeval(tmp_path / "m_COCO_VAL.xlsx", REFS, captions)
    assert read_tool_file(str(path), "candidates").candidates.captions["2453"] == [""]


def test_hf_dataset_on_disk_parquet_and_arrow(tmp_path):
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa

    cand = datasets.Dataset.from_dict({"image_id": [974, 2453], "caption": ["People on an elephant.", "A bench."],
                                       "width": [640, 480]})
    refs = datasets.Dataset.from_dict({"image_id": [974, 2453], "references": [REFS["974"], REFS["2453"]]})
    cand.save_to_disk(str(tmp_path / "cand"))
    datasets.DatasetDict({"validation": refs}).save_to_disk(str(tmp_path / "refs"))
    cand.to_parquet(str(tmp_path / "cand.parquet"))
    with pa.OSFile(str(tmp_path / "cand.arrow"), "wb") as sink, pa.ipc.new_file(sink, cand.data.table.schema) as w:
        w.write_table(cand.data.table)
    expected = {"974": ["People on an elephant."], "2453": ["A bench."]}
    for item in ("cand", "cand.parquet", "cand.arrow"):
        assert sniff(tmp_path / item) == "hf"
        assert read_candidates(str(tmp_path / item))[None].captions == expected
    assert read_candidates(f"hf:{tmp_path / 'cand'}")[None].id_kind == "int"
    assert read_references(str(tmp_path / "refs")).captions == {k: REFS[k] for k in ("974", "2453")}
    assert read_references(f"hf:{tmp_path / 'refs' / 'validation'}").captions["974"] == REFS["974"]
    datasets.DatasetDict({"a": refs, "b": refs}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(InputError, match=r"a DatasetDict with splits \['a', 'b'\]: name one"):
        read_references(str(tmp_path / "two"))
    with pytest.raises(InputError, match=r"no text field 'nope'"):
        read_candidates(str(tmp_path / "cand.parquet"), text_field="nope")


def test_prefix_and_plain_files_are_not_tool_files(tmp_path):
    assert split_prefix("lmms:x.jsonl") == ("lmms", "x.jsonl")
    assert split_prefix("refs.json") == (None, "refs.json")
    plain = tmp_path / "c.jsonl"
    plain.write_text(json.dumps({"image_id": 1, "caption": "a"}) + "\n")
    assert sniff(plain) is None and read_tool_file(str(plain), "candidates") is None
    with pytest.raises(InputError, match="file not found"):
        read_tool_file(f"vlmeval:{tmp_path / 'missing.xlsx'}", "candidates")


def test_import_datasets_is_hugging_faces_not_the_asset_folder():
    """The checkout's top-level datasets/ (assets, no __init__.py) must not shadow HF datasets on sys.path."""
    pytest.importorskip("datasets")
    from conftest import REPO

    probe = "import datasets, sys; print(datasets.__file__); print(hasattr(datasets, 'load_from_disk'))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    where, has_api = out.stdout.split()
    assert where != "None" and not where.startswith(str(REPO / "datasets")), where
    assert has_api == "True"


@pytest.mark.java
def test_python_api_takes_prefixed_tool_files(tmp_path):
    import capeval

    path = write_lmms_samples(tmp_path / "m", REFS, CAPS)
    results = capeval.evaluate(f"lmms:{path}", {"m": f"lmms:{path}"}, metrics=["rouge_l"])
    assert results.dataset.references == REFS
    assert len(results.inputs["references"]["sha256"]) == 64
    assert results.inputs["candidates"]["m"]["path"] == f"lmms:{path}"
    assert 0 < results.summary_dict()["captioners"]["m"]["rouge_l"]["mean"] < 1
