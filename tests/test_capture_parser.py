"""CAPTURE's parsers: the offline spaCy parser against hand-labelled sentences, FACTUAL's output reading and
loading, sentence splitting and per-sentence caching."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from capeval.capture.factual import FactualParser, read_graph_text, split_facts
from capeval.capture.graph import SentenceGraph, merge_sentences
from capeval.capture.parsing import SpacyParser, split_sentences, verb_lemma
from capeval.capture.pipeline import GraphCache, resolve_parser
from capeval.capture.stopwords import STOP_WORDS
from capeval.capture.wordnet import lemmatize
from capeval.errors import CapevalError, MetricUnavailable

LABELS = Path(__file__).parent / "data" / "capture_labeled.jsonl"

# Threshold for the offline parser, on precision and on recall over all labelled facts (objects, attributes and
# relations pooled), both on all sentences and on the held-out ones.
# Why 0.65: FACTUAL's authors report that the dependency-parse-based scene-graph parser of SPICE (Stanford
# parser rules) reaches a SPICE F-score of 64.77 against FACTUAL's gold graphs, while their T5 parsers reach ~93.
# capeval's offline parser is also a dependency-parse rule system; it must at least match that established
# baseline. (Measured: all 53 sentences P 0.92 R 0.92; the 22 held-out THumB references, labelled before the
# parser was run on them, P 0.84 R 0.84 - see the closing note of the CAPTURE work.) Relations alone are the
# hardest (attachment ambiguity, pronouns), so per type only a floor of 0.5 is required.
THRESHOLD = 0.65
TYPE_FLOOR = 0.5


def _norm_head(head: str) -> str:
    # Parser evaluation compares names with the last word lemmatised ("palm trees" -> "palm tree"), which is how
    # the labels are written. (CAPTURE itself lemmatises the whole string, see capeval.capture.graph.)
    words = head.split(" ")
    return " ".join([*words[:-1], lemmatize(words[-1], "n")])


def _parser_facts(parser: SpacyParser, sentence: str) -> dict[str, set]:
    facts: dict[str, set] = {"objects": set(), "attributes": set(), "relations": set()}
    for g in parser.parse(split_sentences(sentence)):
        facts["objects"] |= {_norm_head(e) for e in g.entities} - STOP_WORDS
        facts["attributes"] |= {(_norm_head(h), lemmatize(a, "a")) for h, a in g.attributes}
        facts["relations"] |= {(_norm_head(s), p, _norm_head(o)) for s, p, o in g.relations}
    return facts


@pytest.fixture(scope="module")
def labelled():
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    parser = SpacyParser()
    return [(row, _parser_facts(parser, row["sentence"])) for row in rows]


def _precision_recall(pairs, kinds=("objects", "attributes", "relations")):
    tp = n_pred = n_gold = 0
    for row, got in pairs:
        for kind in kinds:
            gold = {x if isinstance(x, str) else tuple(x) for x in row[kind]}
            tp += len(got[kind] & gold)
            n_pred += len(got[kind])
            n_gold += len(gold)
    return tp / n_pred, tp / n_gold


def test_labelled_sentences_file():
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    assert len(rows) >= 20
    assert {r["split"] for r in rows} == {"dev", "heldout"}
    assert sum(r["split"] == "heldout" for r in rows) >= 20
    for r in rows:
        assert all(len(a) == 2 for a in r["attributes"]) and all(len(t) == 3 for t in r["relations"])


def test_offline_parser_precision_recall(labelled):
    heldout = [(r, g) for r, g in labelled if r["split"] == "heldout"]
    report = {}
    for name, subset in (("all", labelled), ("heldout", heldout)):
        p, r = _precision_recall(subset)
        report[name] = (p, r)
        for kind in ("objects", "attributes", "relations"):
            report[f"{name}/{kind}"] = _precision_recall(subset, (kind,))
    print("\noffline parser on hand-labelled sentences (precision, recall):")
    for key, (p, r) in report.items():
        print(f"  {key:<22} P {p:.3f}  R {r:.3f}")
    for name in ("all", "heldout"):
        p, r = report[name]
        assert p >= THRESHOLD and r >= THRESHOLD, (name, p, r)
    for kind in ("objects", "attributes", "relations"):
        p, r = report[f"all/{kind}"]
        assert p >= TYPE_FLOOR and r >= TYPE_FLOOR, (kind, p, r)


@pytest.mark.parametrize("sentence, relation", [
    ("A man in a red shirt is riding a brown horse on the beach.", ("man", "ride on", "beach")),
    ("Two small dogs sit next to a wooden bench.", ("dogs", "sit next to", "bench")),
    ("A bowl of fresh fruit sits in front of the window.", ("bowl", "sit in front of", "window")),
    ("A young woman wearing a black hat holds an umbrella.", ("woman", "wear", "hat")),
    ("A group of people riding on the back of an elephant.", ("people", "ride on back of", "elephant")),
    ("The street is lined with tall palm trees.", ("street", "line with", "palm trees")),
    ("A man picks up a ball.", ("man", "pick up", "ball")),
    ("There are two apples and a banana on the table.", ("apples", "on", "table")),
])
def test_relation_patterns(sentence, relation):
    (graph,) = SpacyParser().parse([sentence])
    assert relation in graph.relations, graph.relations


def test_attributes_quantities_and_compounds():
    (g,) = SpacyParser().parse(["Three small dogs and a silver clock tower; the sky is clear and blue."])
    assert ("dogs", "small") in g.attributes
    assert ("clock tower", "silver") in g.attributes  # a colour used as a compound noun is an attribute
    assert {("sky", "clear"), ("sky", "blue")} <= set(g.attributes)
    assert not any(a in ("three", "3") for _, a in g.attributes)  # numbers are quantities
    assert "clock tower" in g.entities
    assert set(g.nouns) >= {"dogs", "clock", "tower", "sky"}  # noun tokens as written (lemmatised at merge)


def test_verb_lemma_prefers_frequent_form():
    assert verb_lemma("riding") == "ride"  # NLTK's shortest-lemma rule would give "rid"
    assert verb_lemma("lying") == "lie" and verb_lemma("sits") == "sit"


def test_split_sentences():
    assert split_sentences("A dog runs. Mr. Smith waves! Is it 3.5 m tall?") == [
        "A dog runs.", "Mr. Smith waves!", "Is it 3.5 m tall?"]
    assert split_sentences("  ") == []


def test_merge_lemmatises_and_filters_like_reference():
    sent = SentenceGraph(
        entities=("dogs", "background", "palm trees", "it"),
        attributes=(("dogs", "bigger"), ("background", "blurry"), ("dogs", "full of energy")),
        relations=(("dogs", "run in", "background"), ("dogs", "near", "palm trees")),
        nouns=("dog", "background", "palm", "tree"),
    )
    g = merge_sentences([sent])
    assert g.objects == ("dog",)  # stop word dropped; "palm trees" stays unlemmatised and fails the noun test
    assert g.attributes == (("dog", "big"), ("background", "blurry"))  # " of" attributes dropped
    assert g.relations == (("dog", "run in", "background"),)


def test_each_unique_sentence_parsed_once():
    class Counting(SpacyParser):
        def __init__(self):
            super().__init__()
            self.seen: list[str] = []

        def parse(self, sentences):
            self.seen.extend(sentences)
            return super().parse(sentences)

    parser = Counting()
    cache = GraphCache(parser)
    caps = ["A dog runs. A cat sleeps.", "A cat sleeps. A bird is singing.", "A dog runs. A cat sleeps."]
    graphs = cache.graphs(caps)
    cache.graphs(["A bird is singing.", "A dog runs. A cat sleeps."])
    assert sorted(parser.seen) == ["A bird is singing.", "A cat sleeps.", "A dog runs."]
    assert graphs[0] is graphs[2]
    assert set(graphs[1].objects) == {"cat", "bird"}


# --- FACTUAL ------------------------------------------------------------------------------------------------

README_OUTPUT = "( pigs , is , 2 ) , ( pigs , is , beautiful ) , ( bags , on back of , pigs ) , " \
                "( pigs , fly on , sky ) , ( bags , is , 2 )"


def test_read_factual_output():
    g = read_graph_text(README_OUTPUT)
    assert g.entities == ("pigs", "bags", "sky")
    assert g.attributes == (("pigs", "beautiful"),)  # "is 2" is a quantity
    assert g.relations == (("bags", "on back of", "pigs"), ("pigs", "fly on", "sky"))
    assert g.malformed == 0


def test_read_factual_truncated_and_malformed():
    assert split_facts("( dog , on , grass ) , ( dog , is , bro") == ["dog , on , grass"]
    assert split_facts("( dog , on , grass ) , ( dog , on , grass )") == ["dog , on , grass"]
    assert read_graph_text("( dog").entities == ("dog",)
    g = read_graph_text("( dog , grass ) , ( dog , on , grass )")
    assert g.relations == (("dog", "on", "grass"),) and g.malformed == 1
    assert read_graph_text("") == SentenceGraph()


def test_factual_parser_generation_settings():
    """The generation call CAPTURE makes, checked with a stand-in tokenizer and model."""
    import torch

    calls = {}

    class Tok:
        pad_token_id = 0

        def __call__(self, prompts, **kw):
            calls["prompts"], calls["tok"] = prompts, kw
            n = len(prompts)
            return {"input_ids": torch.ones((n, 3), dtype=torch.long),
                    "attention_mask": torch.ones((n, 3), dtype=torch.long)}

        def batch_decode(self, ids, **kw):
            return ["( man , ride , horse ) , ( horse , is , brown )"] * len(ids)

    class Model:
        device = "cpu"

        def generate(self, input_ids, **kw):
            calls["gen"] = kw
            return torch.zeros((input_ids.shape[0], 4), dtype=torch.long)

    parser = FactualParser(Tok(), Model())
    (g,) = parser.parse(["A man rides a brown horse."])
    assert calls["prompts"] == ["Generate Scene Graph: A man rides a brown horse."]
    assert calls["tok"]["max_length"] == 64 and calls["tok"]["truncation"]
    assert calls["gen"]["num_beams"] == 5 and calls["gen"]["max_length"] == 128
    assert calls["gen"]["decoder_start_token_id"] == 0
    assert g.relations == (("man", "ride", "horse"),) and g.attributes == (("horse", "brown"),)
    assert set(g.nouns) == {"man", "horse"}  # from spaCy's tagger


def test_factual_fails_fast_offline(monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-capeval-test")
    start = time.monotonic()
    with pytest.raises(MetricUnavailable, match="capture_parser=spacy"):
        FactualParser.from_pretrained("lizhuang144/flan-t5-base-VG-factual-sg")
    assert resolve_parser("auto") == "spacy"
    assert "offline spaCy parser" in caplog.text
    assert resolve_parser("factual") == "factual"
    assert time.monotonic() - start < 10
    with pytest.raises(CapevalError, match="capture_parser must be one of"):
        resolve_parser("stanford")
