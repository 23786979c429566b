"""Input formats and the validation errors: each names the file, the id and the problem."""

from __future__ import annotations

import json

import pytest

from capeval.errors import InputError
from capeval.io import align, read_candidates, read_references


def write(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_coco_annotations(tmp_path):
    p = write(tmp_path / "ann.json", {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "id": 10, "caption": "x"}, {"image_id": 1, "id": 11, "caption": "y"},
                        {"image_id": 2, "id": 12, "caption": "z"}],
    })
    f = read_references(p)
    assert f.captions == {"1": ["x", "y"], "2": ["z"]}
    assert f.id_kind == "int" and f.images == {"1": "a.jpg", "2": "b.jpg"} and f.format == "coco-annotations"


def test_results_list_and_json_maps(tmp_path):
    rows = [{"image_id": 1, "caption": "a"}, {"image_id": 2, "caption": "b"}]
    res = read_candidates(write(tmp_path / "r.json", rows))
    assert res[None].captions == {"1": ["a"], "2": ["b"]} and res[None].id_kind == "int"
    m = read_candidates(write(tmp_path / "m.json", {"1": "a", "2": "b"}))[None]
    assert m.id_kind == "untyped"
    r = read_references(write(tmp_path / "refs.json", {"1": ["a", "b"], "2": "c"}))
    assert r.captions == {"1": ["a", "b"], "2": ["c"]}


@pytest.mark.parametrize(("header", "rows"), [
    ("image_id,caption", ["1,a dog", "2,a cat"]),
    ("seg_id,hyp", ["1,a dog", "2,a cat"]),
    ("id,text", ["1,a dog", "2,a cat"]),
])
def test_csv_detects_columns(tmp_path, header, rows):
    f = read_candidates(write(tmp_path / "c.csv", "\n".join([header, *rows]) + "\n"))[None]
    assert f.captions == {"1": ["a dog"], "2": ["a cat"]}


def test_jsonl_refs_lists_and_repeated_rows(tmp_path):
    p = write(tmp_path / "r.jsonl", '{"seg_id": "1", "refs": ["a", "b"]}\n{"seg_id": "1", "refs": ["c"]}\n')
    assert read_references(p).captions == {"1": ["a", "b", "c"]}


def test_field_flags(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"img": "1", "out": "a dog", "caption": "ignored"}\n')
    f = read_candidates(p, id_field="img", text_field="out")[None]
    assert f.captions == {"1": ["a dog"]}
    with pytest.raises(InputError, match="no id field 'nope'"):
        read_candidates(p, id_field="nope")


def test_system_field_splits_captioners(tmp_path):
    text = '{"SYS": "A", "seg_id": "1", "hyp": "x"}\n{"SYS": "B", "seg_id": "1", "hyp": "y"}\n'
    p = write(tmp_path / "t.jsonl", text)
    files = read_candidates(p, system_field="SYS")
    assert {k: v.captions for k, v in files.items()} == {"A": {"1": ["x"]}, "B": {"1": ["y"]}}


def test_duplicate_candidate_id(tmp_path):
    p = write(tmp_path / "dup.json", [{"image_id": 7, "caption": "a"}, {"image_id": 7, "caption": "b"}])
    with pytest.raises(InputError) as e:
        read_candidates(p)
    assert "dup.json" in str(e.value) and "id 7" in str(e.value) and "duplicate id" in str(e.value)


def test_non_string_caption(tmp_path):
    p = write(tmp_path / "bad.json", [{"image_id": 3, "caption": 42}])
    with pytest.raises(InputError) as e:
        read_candidates(p)
    assert "bad.json" in str(e.value) and "id 3" in str(e.value) and "must be a string" in str(e.value)


def test_non_string_reference(tmp_path):
    p = write(tmp_path / "refs.json", {"5": ["ok", None]})
    with pytest.raises(InputError, match=r"refs.json: id '5': reference is NoneType"):
        read_references(p)


def test_mixed_int_and_string_ids_in_one_file(tmp_path):
    p = write(tmp_path / "mix.json", [{"image_id": 1, "caption": "a"}, {"image_id": "1", "caption": "b"}])
    with pytest.raises(InputError, match="integer vs string"):
        read_candidates(p)


def test_id_type_mismatch_between_files(tmp_path):
    refs = read_references(write(tmp_path / "refs.jsonl", '{"image_id": 1, "refs": ["a"]}\n'))
    cands = read_candidates(write(tmp_path / "cands.jsonl", '{"image_id": "1", "caption": "a"}\n'))[None]
    with pytest.raises(InputError) as e:
        align(refs, {"sys": cands})
    msg = str(e.value)
    assert "cands.jsonl" in msg and "id '1'" in msg and "type mismatch" in msg


def test_untyped_ids_match_by_text(tmp_path):
    refs = read_references(write(tmp_path / "refs.jsonl", '{"image_id": 1, "refs": ["a"]}\n'))
    cands = read_candidates(write(tmp_path / "c.json", {"1": "a"}))[None]
    assert align(refs, {"sys": cands}).candidates == {"sys": {"1": "a"}}


def test_candidate_without_references(tmp_path):
    refs = read_references(write(tmp_path / "refs.json", {"1": ["a"]}))
    cands = read_candidates(write(tmp_path / "c.json", [{"image_id": 1, "caption": "a"},
                                                        {"image_id": 99, "caption": "b"}]))[None]
    with pytest.raises(InputError) as e:
        align(refs, {"mine": cands})
    assert "c.json" in str(e.value) and "id '99'" in str(e.value) and "no references" in str(e.value)


def test_empty_and_blank_captions_policy(tmp_path, caplog):
    refs = read_references(write(tmp_path / "refs.json", {"1": ["a dog", "  "], "2": ["a cat"]}))
    cands = read_candidates(write(tmp_path / "c.json", {"1": " \u2028 ", "2": "a\r\ncat"}))[None]
    data = align(refs, {"sys": cands})
    assert data.candidates["sys"] == {"1": "", "2": "a cat"}
    assert data.empty_candidates == {"sys": ["1"]} and data.dropped_references == 1
    assert data.references["1"] == ["a dog"]
    assert "empty caption" in caplog.text


def test_invalid_json_names_line(tmp_path):
    p = write(tmp_path / "broken.jsonl", '{"image_id": 1, "caption": "a"}\n{oops\n')
    with pytest.raises(InputError, match=r"broken.jsonl: line 2: not valid JSON"):
        list(read_candidates(p).values())


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_references(tmp_path / "nope.json")


def test_undetectable_columns(tmp_path):
    p = write(tmp_path / "c.csv", "foo,bar\n1,2\n")
    with pytest.raises(InputError, match="cannot tell which field holds the id"):
        read_candidates(p)


# --- issue 12: encodings, byte-order marks, repeated keys, ids of both kinds ---------------------------------

ENCODED = {
    "jsonl": '{"image_id": 1, "caption": "un caf\u00e9 au lait"}\n',
    "csv": 'image_id,caption\n1,un caf\u00e9 au lait\n',
    "json": '{"1": "un caf\u00e9 au lait"}',
}


@pytest.mark.parametrize("fmt", sorted(ENCODED))
@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
@pytest.mark.parametrize("reader", [read_candidates, read_references])
def test_non_utf8_files_are_a_clean_error(tmp_path, fmt, encoding, reader):
    p = tmp_path / f"caps.{fmt}"
    p.write_bytes(ENCODED[fmt].encode(encoding))
    with pytest.raises(InputError) as e:
        reader(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and "UTF-8" in msg and "\n" not in msg
    if encoding == "latin-1":
        assert f"line {2 if fmt == 'csv' else 1}:" in msg and "0xe9" in msg
    else:
        assert "UTF-16" in msg


@pytest.mark.parametrize("fmt", sorted(ENCODED))
def test_utf8_byte_order_mark_is_read_as_utf8(tmp_path, fmt):
    p = tmp_path / f"caps.{fmt}"
    p.write_bytes(b"\xef\xbb\xbf" + ENCODED[fmt].encode("utf-8"))
    cf = read_candidates(p)[None]
    assert cf.captions == {"1": ["un caf\u00e9 au lait"]}
    refs = read_references(p)
    assert refs.captions == {"1": ["un caf\u00e9 au lait"]}


def test_cli_latin1_jsonl_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    refs = write(tmp_path / "refs.json", {"1": ["a cup of coffee"]})
    cands = tmp_path / "c.jsonl"
    cands.write_bytes(ENCODED["jsonl"].encode("latin-1"))
    proc = subprocess.run([sys.executable, "-m", "capeval", "score", "--refs", str(refs), "--cand", str(cands),
                           "--metrics", "bleu", "--out", str(tmp_path / "run"), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "c.jsonl" in proc.stderr and "not UTF-8" in proc.stderr


def test_ids_mix_names_an_id_of_each_kind(tmp_path):
    p = write(tmp_path / "mix.json", [{"image_id": 1, "caption": "a"}, {"image_id": "x2", "caption": "b"}])
    with pytest.raises(InputError, match=r"mix integers and strings \(e\.g\. 1 and 'x2'\)"):
        read_candidates(p)


@pytest.mark.parametrize("reader", [read_candidates, read_references])
def test_repeated_key_in_a_json_map_is_an_error(tmp_path, reader):
    p = tmp_path / "c.json"
    p.write_text('{"974": "a man rides a horse", "975": "x", "974": "a red car"}', encoding="utf-8")
    with pytest.raises(InputError) as e:
        reader(p)
    assert str(p) in str(e.value) and "'974' appears twice" in str(e.value)


def test_repeated_key_in_a_jsonl_record_names_the_line(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"image_id": 1, "caption": "a"}\n{"image_id": 2, "caption": "b", "caption": "c"}\n')
    with pytest.raises(InputError, match=r"c.jsonl: line 2: key 'caption' appears twice"):
        read_candidates(p)


def test_repeated_csv_column_is_an_error(tmp_path):
    p = write(tmp_path / "c.csv", "image_id,caption,caption\n1,a,b\n")
    with pytest.raises(InputError, match="column 'caption' appears twice"):
        read_candidates(p)


@pytest.mark.parametrize("which", ["references", "candidates"])
def test_api_mapping_with_974_and_string_974_is_an_error(which):
    from capeval.api import evaluate

    both = {974: "a man rides a horse", "974": "a red car"}
    refs = {"974": ["a man on a horse"]} if which == "candidates" else both
    cands = both if which == "candidates" else {"974": "a man rides a horse"}
    with pytest.raises(InputError, match=r"holds both 974 and '974'"):
        evaluate(refs, {"sys": cands}, metrics=["bleu"])


def test_two_system_field_files_sharing_a_captioner_name(tmp_path):
    from capeval.cli.score_cmd import load_candidate_args
    from capeval.errors import CapevalError

    a = write(tmp_path / "a.jsonl", '{"SYS": "base", "seg_id": "1", "hyp": "x"}\n')
    b = write(tmp_path / "b.jsonl", '{"SYS": "base", "seg_id": "1", "hyp": "y"}\n')
    with pytest.raises(CapevalError) as e:
        load_candidate_args([str(a), str(b)], None, None, "SYS")
    assert "'base'" in str(e.value) and str(a) in str(e.value) and str(b) in str(e.value)
    named = load_candidate_args([f"A={a}", f"B={b}"], None, None, "SYS")
    assert list(named) == ["A:base", "B:base"]


def test_dropped_references_are_written_to_summary_inputs(tmp_path):
    from capeval.api import evaluate

    refs = {"1": ["a dog runs", " ", "a dog is running"], "2": ["a cat", ""], "3": ["", "a bird"]}
    r = evaluate(refs, {"all": {"1": "a dog", "2": "a cat"}, "one": {"3": "a bird"}}, metrics=["bleu"])
    inputs = r.summary_dict()["inputs"]
    assert inputs["all"]["dropped_references"] == 2 and inputs["one"]["dropped_references"] == 1
    r.write(tmp_path / "run")
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["inputs"]["all"]["dropped_references"] == 2
