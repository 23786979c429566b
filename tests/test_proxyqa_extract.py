"""Proxy-QA answer extraction: a table of realistic replies (plain, markdown, reasoning traces, truncated)."""

from __future__ import annotations

import pytest

from capeval.proxyqa.extract import extract_choice, extract_open, final_text, normalize_answer, open_match

ANIMALS = ["a cat", "a dog", "a bird", "a horse"]
COLORS = ["blue", "red", "green", "Cannot answer from the caption"]  # "cannot" shown at D
COUNTS = ["2", "3", "4", "5"]
YES_NO = ["Yes", "No"]
NESTED = ["red", "red and white", "blue"]

# (reply, options, cannot_index, expected shown index or None)
MC_CASES = [
    ("B", ANIMALS, None, 1),
    ("B.", ANIMALS, None, 1),
    ("(C)", ANIMALS, None, 2),
    ("c", ANIMALS, None, 2),
    (" D\n", ANIMALS, None, 3),
    ("Answer: D", ANIMALS, None, 3),
    ("**Answer:** B", ANIMALS, None, 1),
    ("The answer is (A) a cat.", ANIMALS, None, 0),
    ("B) a dog", ANIMALS, None, 1),
    ("A. a cat", ANIMALS, None, 0),
    ("a dog", ANIMALS, None, 1),
    ("It is a dog.", ANIMALS, None, 1),
    ("A dog on a mat.", ANIMALS, None, 1),  # the reply opens with option B's text
    ("Answer: a", ANIMALS, None, 0),  # a lower-case letter right after a marker
    ("3", ANIMALS, None, 2),  # an option number
    ("3", COUNTS, None, 1),  # ...unless an option's text is that number
    ("There are three people on the elephant.", COUNTS, None, 1),
    ("Option 2", COLORS, 3, 1),
    ("answer: 2", COLORS, 3, 1),
    ("<think>\nThe caption says 'a red sofa'. Options: A blue, B red, C green. So B.\n</think>\n\nB",
     COLORS, 3, 1),
    ("<think>Let me think. The caption mentions a dog... wait, it says a cat. A or B? It's A.</think>\n"
     "Answer: A", ANIMALS, None, 0),
    ("<think>The question asks about the colour. The caption doesn't say anything about", COLORS, 3, None),
    ("<think>Options A and B are both possible.</think>", COLORS, 3, None),  # nothing after the reasoning
    ("Based on the caption, the sofa is red, so the correct answer is B.", COLORS, 3, 1),
    ("The caption describes a red sofa. Therefore, the answer is: **B. red**", COLORS, 3, 1),
    ("\\boxed{C}", COLORS, 3, 2),
    ("Final Answer: $\\boxed{\\text{B}}$", COLORS, 3, 1),
    ("I'd go with B.", COLORS, 3, 1),
    ("I think the answer might be C, since the caption mentions green.", COLORS, 3, 2),
    ("The correct option is (B) red.", COLORS, 3, 1),
    ("B red", COLORS, 3, 1),
    ("Option B: red", COLORS, 3, 1),
    ("The caption does not mention the color of the sofa.", COLORS, 3, 3),
    ("D. Cannot answer from the caption", COLORS, 3, 3),
    ("Cannot answer from the caption.", COLORS, 3, 3),
    ("Yes", YES_NO, None, 0),
    ("No, the road is dry.", YES_NO, None, 1),
    ("The answer is B.\n\nExplanation: the caption says two dogs, so option A is wrong.", ANIMALS, None, 1),
    ("Answer: B\nWait, re-reading the caption: it is a bird.\nAnswer: C", ANIMALS, None, 2),  # the last wins
    ("◁think▷The caption says red.◁/think▷B", COLORS, 3, 1),
    ("<|channel|>analysis<|message|>They ask the colour; the caption says red.<|end|><|start|>assistant"
     "<|channel|>final<|message|>B", COLORS, 3, 1),
    ("Let's check each option.\nA. blue - not mentioned.\nB. red - the caption says red.\nC. green - no.\n"
     "Therefore, the answer is B.", COLORS, 3, 1),
    ("The sofa is red and white.", NESTED, None, 1),  # "red" lies inside the longer option
    # unparsable: ambiguous, empty, no answer at all
    ("A or B, I am not sure.", ANIMALS, None, None),
    ("red or green", COLORS, 3, None),
    ("A dog is sitting next to a cat.", ANIMALS, None, None),  # two options named
    ("Let's check each option.\nA. blue - not mentioned.\nB. red - the caption says red.", COLORS, 3, None),
    ("Hmm.", ANIMALS, None, None),
    ("", ANIMALS, None, None),
    (None, ANIMALS, None, None),
]


@pytest.mark.parametrize(("reply", "options", "cannot", "expected"), MC_CASES)
def test_extract_choice_table(reply, options, cannot, expected):
    got = extract_choice(reply, options, cannot)
    assert got.index == expected, (reply, got)
    assert got.ok == (expected is not None)
    if expected is None:
        assert got.method.startswith("unparsable")


def test_table_is_large_enough():
    assert len(MC_CASES) >= 30
    assert sum("think" in (r or "") for r, *_ in MC_CASES) >= 5


# (reply, acceptable answers, correct?)  -- None: unparsable
OPEN_CASES = [
    ("Two.", ["2"], True),
    ("2 dogs", ["2"], False),  # exact match, as VQA: extra words make it wrong (the LLM grader may accept it)
    ("<think>1, 2, 3 people.</think>\nThe answer is three.", ["3"], True),
    ("<think>Count them: one, two.</think>\nFinal answer: **two**", ["2"], True),
    ("Answer: a snowboard", ["snowboard", "snow board"], True),
    ("Snow board", ["snowboard", "snow board"], True),
    ("Pink!", ["pink"], True),
    ("It's white.", ["white"], True),
    ("1,000", ["1000"], True),
    ("The harbour", ["harbor", "harbour"], True),
    ("blue", ["pink"], False),
    ("walking down the street", ["walking", "walking down street"], True),
    ("<think>I need to count the", ["2"], None),
    ("", ["2"], None),
    ("   \n", ["2"], None),
]


@pytest.mark.parametrize(("reply", "gold", "expected"), OPEN_CASES)
def test_open_answers(reply, gold, expected):
    ex = extract_open(reply)
    if expected is None:
        assert not ex.ok and ex.method.startswith("unparsable")
    else:
        assert ex.ok
        assert open_match(ex.answer, gold) is expected, ex


@pytest.mark.parametrize(("text", "expected"), [
    ("Two dogs, the Brown one's!", "2 dogs brown ones"),
    ("A red car.", "red car"),
    ("an apple", "apple"),
    ("3.5 kg", "3.5 kg"),
    ("1,234", "1234"),
    ("twenty", "20"),
    ("none", "0"),
    ("Hello-world  (test)", "hello world test"),
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_final_text():
    assert final_text("<think>x</think> <think>y</think>\n B ") == "B"
    assert final_text("no reasoning") == "no reasoning"
    assert final_text("<think>never closed") is None
    assert final_text(None) is None
