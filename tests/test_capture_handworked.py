"""CAPTURE worked out by hand: graphs, matches per stage, P/R/F1 and the final score for small caption pairs.

Formulas (reference implementation): P = m_c / (n_c + 1e-6), R = m_r / (n_r + 1e-6), F1 = 2PR / (P + R + 1e-6),
CAPTURE = (0.5 F1_obj + 0.5 F1_attr + 0.2 F1_rel) / 1.2. ``prf`` below is that arithmetic; the hand values in the
comments are the exact fractions, the asserts allow the eps terms (|diff| < 1e-5).
"""

from __future__ import annotations

import numpy as np
import pytest

from capeval.capture.graph import CaptureGraph
from capeval.capture.matching import hard_match, similar, similar_relation, soft_credit
from capeval.capture.scoring import OUTPUTS, prf, score_pairs

TOL = 1e-5


def col(name: str) -> int:
    return OUTPUTS.index(name)


def test_prf_matches_reference_arithmetic():
    # 2 of 2 candidate objects, 2 of 3 reference objects: P = 2/2 = 1, R = 2/3, F1 = 2*(2/3)/(5/3) = 0.8
    p, r, f1 = prf(2, 2, 2, 3)
    assert p == pytest.approx(1.0, abs=TOL) and r == pytest.approx(2 / 3, abs=TOL)
    assert f1 == pytest.approx(0.8, abs=TOL)
    # an empty side scores 0 (no division by zero): 0 / (0 + eps) = 0
    assert prf(0, 0, 0, 0) == (0.0, 0.0, 0.0)


def test_soft_matching_with_known_vectors():
    """Stage 3 worked by hand with fixed 2-d unit vectors instead of a sentence encoder.

    candidate objects [cat, lamp, rug], reference objects [cat, table]
      exact:    cat = cat                         -> 1 whole match
      synonyms: lamp~table? rug~table? no (no shared WordNet lemma names, no substring)
      soft:     lamp=(1,0), rug=(0,1), table=(0.6,0.8): cos(lamp,table)=0.6, cos(rug,table)=0.8
                candidate side: 0.6 + 0.8 = 1.4; reference side: max(0.6, 0.8) = 0.8
      P = (1 + 1.4) / 3 = 0.8, R = (1 + 0.8) / 2 = 0.9, F1 = 2*0.8*0.9 / 1.7 = 0.8470588
    attributes: candidate [] vs reference [red] -> P = R = F1 = 0
    relations: [(cat, on, rug)] vs [(cat, on, table)]: not equal; rug~table fails so not synonyms;
      soft: "cat on rug"=(1,0), "cat on table"=(0.8,0.6): 0.8 on both sides -> P = R = F1 = 0.8
    CAPTURE = (0.5*0.8470588 + 0.5*0 + 0.2*0.8) / 1.2 = 0.5835294 / 1.2 = 0.4862745
    """
    cand = CaptureGraph(objects=("cat", "lamp", "rug"), relations=(("cat", "on", "rug"),))
    ref = CaptureGraph(objects=("cat", "table"), attributes=(("car", "red"),), relations=(("cat", "on", "table"),))
    assert not similar("lamp", "table") and not similar("rug", "table")
    hm = hard_match(list(cand.objects), list(ref.objects), similar)
    assert (hm.exact, hm.matched, hm.left_candidates, hm.left_references) == (1, 1, (1, 2), (1,))

    vectors = {"lamp": [1, 0], "rug": [0, 1], "table": [0.6, 0.8], "cat on rug": [1, 0], "cat on table": [0.8, 0.6]}
    asked: list[list[str]] = []

    def embed(phrases):
        asked.append(list(phrases))
        return {p: np.asarray(vectors[p], dtype=float) for p in phrases}

    row = score_pairs([(cand, ref)], embed)[0]
    assert sorted(asked[0]) == sorted(vectors)  # one batched call, only phrases left after stages 1-2
    assert row[col("capture_obj_p")] == pytest.approx(0.8, abs=TOL)
    assert row[col("capture_obj_r")] == pytest.approx(0.9, abs=TOL)
    assert row[col("capture_obj_f1")] == pytest.approx(1.44 / 1.7, abs=TOL)
    assert row[col("capture_attr_f1")] == 0.0
    assert row[col("capture_rel_p")] == pytest.approx(0.8, abs=TOL)
    assert row[col("capture_rel_r")] == pytest.approx(0.8, abs=TOL)
    assert row[col("capture")] == pytest.approx((0.5 * 1.44 / 1.7 + 0.2 * 0.8) / 1.2, abs=TOL)
    # without soft matching only the exact cat counts: P = 1/3, R = 1/2, F1 = 0.4; relations 0
    row = score_pairs([(cand, ref)], None)[0]
    assert row[col("capture_obj_f1")] == pytest.approx(0.4, abs=TOL)
    assert row[col("capture")] == pytest.approx(0.5 * 0.4 / 1.2, abs=TOL)


def test_soft_credit_sides_differ():
    # 2 candidates both closest to the same reference: candidate side sums both, reference side takes one max
    c = np.array([[1.0, 0.0], [0.6, 0.8]])
    r = np.array([[1.0, 0.0]])
    assert soft_credit(c, r) == pytest.approx((1.6, 1.0))
    assert soft_credit(c, np.zeros((0, 2))) == (0.0, 0.0)


def test_greedy_exact_then_synonym_order():
    # exact first: "child" matches "child" even though "kid" (earlier) is its synonym
    hm = hard_match(["kid", "child"], ["child"], similar)
    assert (hm.exact, hm.matched, hm.left_candidates) == (1, 1, (0,))
    # a reference element is used once: two "dog"s against one
    hm = hard_match(["dog", "dog"], ["dog"], similar)
    assert (hm.matched, hm.left_candidates) == (1, (1,))
    # substring counts as a synonym ("on" in "sleep on"); relations need all three parts similar
    assert similar_relation(("cat", "on", "sofa"), ("cat", "sleep on", "sofa"))
    assert not similar_relation(("cat", "in", "image"), ("cat", "sleep on", "sofa"))


@pytest.fixture(scope="module")
def run_capture():
    import capeval

    def run(refs, cands):
        r = capeval.evaluate(refs, {"sys": cands}, metrics=["capture"],
                             options={"capture_parser": "spacy", "capture_encoder": "minilm"})
        table = r.samples.pivot_table(index="sample_id", columns="metric", values="value")
        return r, table

    return run


def test_exact_stage_end_to_end(run_capture):
    """Parsed by the offline parser; no soft matching is needed (nothing left on both sides of any type).

    candidate "A black dog runs on the grass."
        objects [dog, grass]; attributes [black (dog)]; relations [(dog, run on, grass)]
    reference "A black dog is running on the green grass."
        objects [dog, grass]; attributes [black (dog), green (grass)]; relations [(dog, run on, grass)]
    objects: 2 exact -> P = 2/2, R = 2/2, F1 = 1
    attributes: black exact; "green" left only on the reference side -> no soft credit
        P = 1/1 = 1, R = 1/2, F1 = 2*1*0.5/1.5 = 2/3
    relations: 1 exact -> F1 = 1
    CAPTURE = (0.5*1 + 0.5*2/3 + 0.2*1) / 1.2 = (31/30) / 1.2 = 0.8611111
    """
    r, t = run_capture({"1": ["A black dog is running on the green grass."]}, {"1": "A black dog runs on the grass."})
    assert r.details.iloc[0]["detail"] == ("objects: dog, grass | attributes: black dog | relations: dog run on grass")
    row = t.loc["1"]
    assert row["capture_obj_f1"] == pytest.approx(1.0, abs=TOL)
    assert row["capture_attr_p"] == pytest.approx(1.0, abs=TOL)
    assert row["capture_attr_r"] == pytest.approx(0.5, abs=TOL)
    assert row["capture_attr_f1"] == pytest.approx(2 / 3, abs=TOL)
    assert row["capture_rel_f1"] == pytest.approx(1.0, abs=TOL)
    assert row["capture"] == pytest.approx((31 / 30) / 1.2, abs=TOL)


def test_synonym_stage_end_to_end(run_capture):
    """candidate "A kid holds a big ball."
        objects [kid, ball], attributes [big], relations [(kid, hold, ball)]
    reference "A child holds a large ball."
        objects [child, ball], attributes [large], relations [(child, hold, ball)]
    objects: ball exact; kid~child (WordNet kid.n.01 = child, kid, youngster, ...) -> 2 matches, F1 = 1
    attributes: big~large (WordNet big.a.01 = large, big) -> F1 = 1
    relations: (kid, hold, ball) ~ (child, hold, ball): all three similar -> F1 = 1
    CAPTURE = (0.5 + 0.5 + 0.2) / 1.2 = 1
    """
    assert similar("kid", "child") and similar("big", "large")
    _, t = run_capture({"1": ["A child holds a large ball."]}, {"1": "A kid holds a big ball."})
    for key in ("capture", "capture_obj_f1", "capture_attr_f1", "capture_rel_f1"):
        assert t.loc["1", key] == pytest.approx(1.0, abs=TOL), key


def test_stop_words_and_mean_over_references(run_capture):
    """candidate "In the image, a white cat is on a sofa."
        objects [cat, sofa] ("image" is a stop word); attributes [white (cat)];
        relations [(cat, in, image), (cat, on, sofa)] (relations keep stop-word nouns, as in the reference)
    reference 1 "A white cat sleeps on a sofa."
        objects [cat, sofa]; attributes [white]; relations [(cat, sleep on, sofa)]
        objects, attributes: all exact -> F1 = 1
        relations: (cat, in, image) vs (cat, sleep on, sofa): "in"/"sleep on", image/sofa not similar;
                   (cat, on, sofa) ~ (cat, sleep on, sofa): "on" is a substring of "sleep on" -> 1 match;
                   (cat, in, image) is left but the reference has nothing left -> no soft credit
                   P = 1/2, R = 1/1, F1 = 2*0.5*1/1.5 = 2/3
        CAPTURE_1 = (0.5 + 0.5 + 0.2*2/3) / 1.2 = (17/15) / 1.2 = 0.9444444
    reference 2 = the candidate itself -> every F1 = 1, CAPTURE_2 = 1
    per-sample values are the means over the two references:
        capture = (0.9444444 + 1) / 2 = 0.9722222, rel_p = (0.5 + 1) / 2 = 0.75, rel_r = 1, rel_f1 = 5/6
    """
    cand = "In the image, a white cat is on a sofa."
    _, t = run_capture({"1": ["A white cat sleeps on a sofa.", cand]}, {"1": cand})
    row = t.loc["1"]
    assert row["capture_obj_p"] == pytest.approx(1.0, abs=TOL)
    assert row["capture_rel_p"] == pytest.approx(0.75, abs=TOL)
    assert row["capture_rel_r"] == pytest.approx(1.0, abs=TOL)
    assert row["capture_rel_f1"] == pytest.approx(5 / 6, abs=TOL)
    assert row["capture"] == pytest.approx(((17 / 15) / 1.2 + 1) / 2, abs=TOL)


def test_empty_candidate_scores_zero_and_is_counted(run_capture):
    r, t = run_capture({"1": ["A dog runs."], "2": ["A cat sleeps."]}, {"1": "", "2": "A cat sleeps."})
    assert t.loc["1", "capture"] == 0.0
    assert t.loc["2", "capture_obj_f1"] == pytest.approx(1.0, abs=TOL)
    assert r.usage["capture"]["capture_empty_candidate_graphs"] == 1


# --- issue 12: the reference's noun-filter case rule, hand-parsed graphs ------------------------------------

def _merged(noun_case="written", **sentence):
    from capeval.capture.graph import SentenceGraph, merge_sentences

    return merge_sentences([SentenceGraph(**sentence)], noun_case=noun_case)


# "Man rides a brown horse." as FACTUAL may write it: a capitalised head, and the tagger's token "Man"
CAPITAL_HEAD = dict(entities=("Man", "horse"), attributes=(("horse", "brown"),), relations=(("Man", "ride", "horse"),),
                    nouns=("Man", "horse"))
# "Cars are parked near a man.": the parser's head is "cars", the tagged token is "Cars"
CAPITAL_TOKEN = dict(entities=("cars", "man"), relations=(("cars", "park near", "man"),), nouns=("Cars", "man"))


def test_noun_filter_follows_the_reference_case_rule():
    """The reference (capture.py): objects = {lemmatize(head, NOUN)}; nouns = {lemmatize(token, NOUN) for the
    NN* tokens as written}; an object passes when it (or each of its words) is in nouns. NLTK's lemmatizer
    only knows lower-case WordNet forms, so "Man" -> "Man", "Cars" -> "Cars", "cars" -> "car".

    CAPITAL_HEAD: objects {Man, horse}, nouns {Man, horse}: both pass; (Man, ride, horse) passes.
    CAPITAL_TOKEN: objects {car, man}, nouns {Cars, man}: "car" fails, so does (car, park near, man).
    """
    g = _merged(**CAPITAL_HEAD)
    assert g.objects == ("Man", "horse")
    assert g.attributes == (("horse", "brown"),)
    assert g.relations == (("Man", "ride", "horse"),)
    g = _merged(**CAPITAL_TOKEN)
    assert g.objects == ("man",) and g.relations == ()


def test_noun_case_lower_option_folds_heads_and_tokens():
    g = _merged("lower", **CAPITAL_HEAD)
    assert g.objects == ("man", "horse") and g.relations == (("man", "ride", "horse"),)
    g = _merged("lower", **CAPITAL_TOKEN)
    assert g.objects == ("car", "man") and g.relations == (("car", "park near", "man"),)
    with pytest.raises(ValueError, match="noun_case"):
        _merged("upper", **CAPITAL_TOKEN)


def test_hand_pairs_score_by_the_reference_rule():
    """Scores with the exact and synonym stages only (embed=None), worked by hand from the graphs above.

    Pair 1: candidate CAPITAL_HEAD vs reference "A man rides a brown horse." (man, horse | brown |
    (man, ride, horse)). Objects: horse exact; Man~man (WordNet synsets are looked up lower-cased, so both
    have the lemma name "man") -> 2/2 both sides, F1 = 1. Attributes: brown exact, F1 = 1. Relations:
    (Man, ride, horse) ~ (man, ride, horse) element-wise -> F1 = 1. CAPTURE = (0.5 + 0.5 + 0.2) / 1.2 = 1.
    (Lower-casing tokens but not heads, capeval's old rule, dropped "Man": objects F1 = 2/3, relations 0,
    CAPTURE = (0.5*2/3 + 0.5) / 1.2 = 0.6944.)

    Pair 2: candidate CAPITAL_TOKEN vs reference "A man stands by parked cars." (man, car | parked |
    (man, stand by, car)). Objects [man] vs [man, car]: P = 1, R = 1/2, F1 = 2/3. Attributes [] vs [parked]:
    0. Relations [] vs one: 0. CAPTURE = 0.5 * 2/3 / 1.2 = 0.2777778. With noun_case="lower" (and under
    the old rule): objects [car, man] -> F1 = 1; relations (car, park near, man) vs (man, stand by, car):
    car~man fails -> 0; CAPTURE = 0.5 / 1.2 = 0.4166667.
    """
    ref1 = _merged(entities=("man", "horse"), attributes=(("horse", "brown"),),
                   relations=(("man", "ride", "horse"),), nouns=("man", "horse"))
    ref2 = _merged(entities=("man", "cars"), attributes=(("cars", "parked"),),
                   relations=(("man", "stand by", "cars"),), nouns=("man", "cars"))
    assert ref2.objects == ("man", "car") and ref2.attribute_words == ["parked"]
    rows = score_pairs([(_merged(**CAPITAL_HEAD), ref1), (_merged(**CAPITAL_TOKEN), ref2)], None)
    assert rows[0, col("capture")] == pytest.approx(1.0, abs=TOL)
    assert rows[1, col("capture_obj_f1")] == pytest.approx(2 / 3, abs=TOL)
    assert rows[1, col("capture")] == pytest.approx(0.5 * (2 / 3) / 1.2, abs=TOL)
    lower = score_pairs([(_merged("lower", **CAPITAL_TOKEN), ref2)], None)
    assert lower[0, col("capture")] == pytest.approx(0.5 / 1.2, abs=TOL)


def test_noun_case_option_reaches_the_signature_and_the_graphs():
    from capeval.metrics.capture import Capture

    m = Capture.from_options({"capture_parser": "spacy", "capture_noun_case": "lower"})
    assert m.noun_case == "lower"
    assert "|nouns:lower|" in m.signatures([["a"]])["capture"]
    assert Capture.from_options({"capture_parser": "spacy"}).noun_case == "written"
    from capeval.errors import CapevalError

    with pytest.raises(CapevalError, match="capture_noun_case"):
        Capture.from_options({"capture_noun_case": "title"})


# --- issue 12: scores never depend on PYTHONHASHSEED (the reference's set order does) ----------------------

_HASH_SCRIPT = r'''
import json
import numpy as np
from capeval.capture.graph import SentenceGraph, merge_sentences
from capeval.capture.scoring import score_pairs
sent = SentenceGraph(entities=("snowboard", "snow"), nouns=("snowboard", "snow"))
cand = merge_sentences([sent])
ref = merge_sentences([SentenceGraph(entities=("snowboarder", "mountain"), nouns=("snowboarder", "mountain"))])
vectors = {"snow": [1.0, 0.0], "snowboard": [0.0, 1.0], "mountain": [0.6, 0.8], "snowboarder": [0.0, 1.0]}
embed = lambda phrases: {p: np.asarray(vectors[p]) for p in phrases}
row = score_pairs([(cand, ref)], embed)[0]
reference_order = [o for o in set(["snowboard", "snow"])]  # what the reference iterates
print(json.dumps({"objects": list(cand.objects), "row": row.tolist(), "reference_order": reference_order}))
'''


def test_scores_do_not_depend_on_pythonhashseed():
    """candidate objects [snowboard, snow] (first appearance) vs reference [snowboarder, mountain]:
    no exact match; synonyms: "snowboard" comes first and takes "snowboarder" (substring); "snow" ~ "mountain"
    fails. Soft: snow=(1,0) vs mountain=(0.6,0.8): 0.6 on both sides -> P = R = (1 + 0.6)/2 = 0.8, F1 = 0.8.
    (Had "snow" come first, as some hash seeds make the reference do, it would take "snowboarder" and leave
    snowboard=(0,1): cos 0.8 -> F1 = 0.9.)
    """
    import json
    import os
    import subprocess
    import sys

    def run(code: str, seed: int) -> str:
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    # one hash seed of each set order the reference would iterate (cheap: no capeval import)
    seeds: dict[str, int] = {}
    for seed in range(64):
        seeds.setdefault(run("print(list(set(['snowboard', 'snow'])))", seed).strip(), seed)
        if len(seeds) == 2:
            break
    assert len(seeds) == 2, "the reference's set order should change with PYTHONHASHSEED"
    results = [json.loads(run(_HASH_SCRIPT, seed)) for seed in seeds.values()]
    assert {tuple(r["reference_order"]) for r in results} == {("snowboard", "snow"), ("snow", "snowboard")}
    for r in results:
        assert r["objects"] == ["snowboard", "snow"]
        assert r["row"] == results[0]["row"]
    assert results[0]["row"][col("capture_obj_f1")] == pytest.approx(0.8, abs=TOL)
