"""The rule-based perturber that makes MM-SeR's pseudo-initial captions: one element changed, seeded."""

from __future__ import annotations

import random

import pytest

from capeval.baselines.perturb import _LEXICON, RulePerturber, perturb


@pytest.mark.parametrize(
    ("caption", "kind", "original", "replacement_in"),
    [
        ("a small red circle", "attribute", None, {"small", "red"}),
        ("a red circle to the left of a blue square", "relation", "to the left of",
         {"to the right of", "above", "below"}),
        ("a man riding a horse", "entity", None, {"man", "horse"}),
        ("a dog sitting next to a cat", "relation", None, {"sitting", "next to"}),
    ],
)
def test_one_element_of_the_asked_kind_changes(caption, kind, original, replacement_in):
    for seed in range(20):
        p = perturb(caption, random.Random(seed), kinds=(kind,))
        assert p is not None and p.kind == kind and p.text != caption
        assert p.original in replacement_in or p.original == original
        group = _LEXICON[kind][p.original]
        assert p.replacement in group and p.replacement != p.original
        # Exactly one span differs: removing the two phrases leaves the same words around them.
        before, _, after = caption.partition(p.original)
        assert p.text.endswith(after)
        assert p.text.startswith(before[:-2] if before.endswith(("a ", "n ")) else before)


def test_longest_relation_phrase_wins():
    p = perturb("a circle to the left of a square", random.Random(0), kinds=("relation",))
    assert p.original == "to the left of"  # not "left of"


def test_article_agrees_with_the_new_word():
    seen = set()
    for seed in range(60):
        p = perturb("an elephant next to a tree", random.Random(seed), kinds=("entity",))
        first, second = p.text.split()[:2]
        seen.add(second)
        assert first == ("an" if second[0] in "aeiou" else "a"), p.text
    assert len(seen) > 3


def test_nothing_to_change_gives_none_and_the_perturber_keeps_it():
    assert perturb("lorem ipsum dolor", random.Random(0)) is None
    assert RulePerturber(seed=0, keep=0.0)("lorem ipsum dolor", 1) == "lorem ipsum dolor"


def test_perturber_is_seeded_by_caption_and_key():
    a, b = RulePerturber(seed=1, keep=0.0), RulePerturber(seed=1, keep=0.0)
    caps = [f"a small red circle to the left of a large blue square {i}" for i in range(30)]
    assert [a(c, k) for k, c in enumerate(caps)] == [b(c, k) for k, c in enumerate(caps)]
    outs = {a("a small red circle above a blue square", key) for key in range(40)}
    assert len(outs) > 5  # the key (epoch, index) varies the pseudo-initial caption
    assert "a small red circle above a blue square" not in outs  # keep=0: always changed


def test_keep_share():
    p = RulePerturber(seed=0, keep=0.3)
    kept = sum(p("a red circle above a blue square", k) == "a red circle above a blue square" for k in range(2000))
    assert 0.25 < kept / 2000 < 0.35
    with pytest.raises(ValueError):
        RulePerturber(keep=1.5)
    with pytest.raises(ValueError):
        RulePerturber(kinds=("colour",))


# ---------------------------------------------------------------- the optional LLM perturber

def test_reply_cleaning_and_acceptance():
    from capeval.baselines.llm_perturb import accept, changed_words, clean_reply

    assert clean_reply('Caption: "a blue circle above a square"\nDone.') == "a blue circle above a square"
    assert clean_reply("<think>red -> blue</think>\n\n a blue  circle") == "a blue circle"
    assert clean_reply("") is None and clean_reply(None) is None
    assert changed_words("a red circle", "a blue circle") == 1
    assert changed_words("a red circle left of a square", "a red circle right of a square") == 1
    assert accept("a red circle", "A Blue circle")
    assert not accept("a red circle", "a red circle")  # no mistake made
    assert not accept("a red circle", "the weather today is sunny and warm in the city")  # not an edit
    assert not accept("a large green square", '{"score": 50, "reason": "ok"}')  # as many words, all new


def _swap_colour(payload):
    text = payload["messages"][-1]["content"]
    caption = text.split("Caption: ", 1)[1].split("\n", 1)[0]
    if "red" in caption.split():
        return "Caption: " + caption.replace("red", "blue")
    return "I cannot help with that request, sorry, as it is not clear what you want"


def test_llm_perturb_through_the_judge_client(tmp_path):
    pytest.importorskip("aiohttp")
    from capeval.baselines.llm_perturb import MappedPerturber, llm_perturb
    from capeval.judges.faultserver import FaultServer

    caps = ["a small red circle", "a large green square", "a small red circle", "a red square above a circle"]
    with FaultServer(responder=_swap_colour) as server:
        opts = {"judge_model": "stub", "judge_base_url": server.base_url, "cache_dir": str(tmp_path)}
        made = llm_perturb(caps, opts)
        assert server.state.requests == 3  # each unique caption asked once
        again = llm_perturb(caps, opts)  # answered from the judge cache
        assert server.state.requests == 3
    assert made.edits == {"a small red circle": "a small blue circle",
                          "a red square above a circle": "a blue square above a circle"}
    assert made.failures == 1 and again.edits == made.edits
    mapped = MappedPerturber(made.edits, RulePerturber(seed=0, keep=0.0))
    assert mapped("a small red circle", 5) == "a small blue circle"
    assert mapped("a large green square", 5) != "a large green square"  # rule-based fallback
