"""Offline WordNet for CAPTURE: the NLTK corpus built from Debian's files, lexnames, clear errors, no downloads."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from capeval.capture import wordnet
from capeval.capture.wordnet import LEXNAMES, WordNetMissing, lexnames_text, prepare_wordnet, wordnet_reader

MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


def test_lexnames_has_45_files_with_categories():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    assert lines[29] == "29\tverb.body\t2" and lines[2] == "02\tadv.all\t4"


@pytest.mark.skipif(not MAN_PAGE.exists(), reason="wordnet-base's lexnames(5WN) man page is not installed")
def test_lexnames_agree_with_man_page():
    with gzip.open(MAN_PAGE, "rt") as fh:
        text = fh.read()
    rows = re.findall(r"^(\d\d)\t(\S+)\s*\t", text, flags=re.M)
    assert [name for _, name in rows] == list(LEXNAMES)
    assert [int(n) for n, _ in rows] == list(range(45))


def test_reader_reads_debian_database():
    wn = wordnet_reader()
    assert wn.get_version() == "3.0"
    assert wn.synset("dog.n.01").lexname() == "noun.animal"  # lexnames numbering agrees with the data files
    assert wn.synset("run.v.01").lexname() == "verb.motion"
    assert wordnet.lemmatize("churches", "n") == "church" and wordnet.lemmatize("bigger", "a") == "big"


@pytest.mark.skipif(wordnet.find_database() is None, reason="no WordNet database on this machine")
def test_prepare_into_fresh_directory(tmp_path):
    root = prepare_wordnet(tmp_path)
    assert root == tmp_path / "corpora" / "wordnet"
    assert sorted(p.name for p in root.iterdir()) == sorted([*wordnet.DATABASE_FILES, "lexnames"])
    assert (root / "lexnames").read_text() == lexnames_text()
    assert not any(p.is_symlink() for p in root.iterdir())  # NLTK refuses links that leave its data paths
    assert prepare_wordnet(tmp_path) == root  # idempotent
    assert not [p for p in tmp_path.joinpath("corpora").iterdir() if p.name.startswith(".wordnet-")]


def test_incomplete_source_is_a_clear_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.noun").write_text("")
    with pytest.raises(WordNetMissing, match="lacks WordNet files .*apt-get install wordnet-base"):
        prepare_wordnet(tmp_path / "out", source=tmp_path / "src")


def test_missing_wordnet_is_a_clear_error(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setenv("CAPEVAL_NLTK_DATA", str(tmp_path / "nltk_data"))
    monkeypatch.delenv("CAPEVAL_WORDNET_DIR", raising=False)
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.setattr(wordnet, "SYSTEM_DIRS", ())

    def not_found(*args, **kwargs):
        raise LookupError("not here")

    def no_download(*args, **kwargs):
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk.data, "find", not_found)
    monkeypatch.setattr(nltk, "download", no_download)
    with pytest.raises(WordNetMissing, match="wordnet-base wordnet-sense-index"):
        wordnet.wordnet_root()
    from capeval.metrics.capture import Capture

    avail = Capture.availability()
    assert not avail.ok and "WordNet is missing" in avail.reason


@pytest.mark.skipif(wordnet.find_database() is None, reason="no WordNet database on this machine")
def test_fresh_process_builds_corpus_without_downloading(tmp_path):
    code = (
        "import nltk\n"
        "def boom(*a, **k): raise SystemExit('nltk.download called')\n"
        "nltk.download = boom\n"
        "from capeval.capture.wordnet import wordnet_reader, corpus_dir\n"
        "print(wordnet_reader().synsets('fire_engine')[0].name(), corpus_dir())\n"
    )
    env = {**os.environ, "CAPEVAL_NLTK_DATA": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["fire_engine.n.01", str(tmp_path / "data" / "corpora" / "wordnet")]
