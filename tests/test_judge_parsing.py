"""Reading judge replies: JSON first, then patterns, CLAIR's published fallbacks, failures stay failures."""

from __future__ import annotations

import math

import pytest

from capeval.judges.parsing import json_objects, parse_choice, parse_score, retry_request, strip_reasoning
from capeval.judges.protocol import JudgeRequest
from capeval.metrics.clair import parse_clair
from capeval.metrics.mllm_judge import parse_mllm
from capeval.metrics.pairwise import order_outcome, parse_winner

CLAIR_CASES = [
    ('{"score": 85, "reason": "same dog"}', 85.0, "same dog", "json"),
    ('{\n  "score": 9,\n  "reason": "2.1"\n}', 9.0, "2.1", "json"),
    ('Sure! Here it is:\n```json\n{"score": 72.5, "reason": "close"}\n```', 72.5, "close", "json"),
    ('{"reason": "both mention a red bus", "score": "90"}', 90.0, "both mention a red bus", "json"),
    ('{"Score": 40, "Reason": "partly"}', 40.0, "partly", "json"),
    ('<think>the score is 3 maybe</think>{"score": 60, "reason": "ok"}', 60.0, "ok", "json"),
    ('{"score": 0.5, "reason": "json values are taken as is"}', 0.5, "json values are taken as is", "json"),
    ('Score: 77\nReason: the captions agree', 77.0, "the captions agree", "pattern"),
    ('"score": 64, "reason": "truncated json', 64.0, None, "pattern"),
    ("I'd rate this 80/100.", 80.0, None, "pattern"),
    ("Rating: [[55]]", 55.0, None, "pattern"),
    ("The likelihood is 0.9", 90.0, None, "number"),  # CLAIR: a number below 1 is a fraction of 100
    ("95", 95.0, None, "number"),
    ("Probably 70 percent likely", 70.0, None, "number"),  # CLAIR's first-number fallback
]


@pytest.mark.parametrize(("text", "value", "reason", "method"), CLAIR_CASES)
def test_clair_reading(text, value, reason, method):
    v = parse_clair(text)
    assert v.ok
    assert v.value == pytest.approx(value)
    assert v.method == method
    if reason is not None:
        assert v.reason == reason


@pytest.mark.parametrize("text", [
    None,
    "",
    "I think the caption is quite good overall.",
    '{"score": 150, "reason": "too high"}',
    '{"score": -3}',
    '{"reason": "forgot the score"}',
])
def test_clair_unreadable_is_a_failure_not_zero(text):
    v = parse_clair(text)
    assert not v.ok
    assert v.value is None
    assert v.error


def test_out_of_range_pattern_is_rejected():
    v = parse_score("score: 7", lo=1, hi=5)
    assert not v.ok and "outside" in v.error


def test_strict_number_fallback_only_for_bare_numbers():
    assert parse_score("4", lo=1, hi=5).value == 4.0
    assert not parse_score("There are 3 dogs", lo=1, hi=5).ok  # no first-number fallback unless asked


def test_json_objects_finds_all_in_order():
    objs = json_objects('first {"a": 1} then {"b": {"c": 2}} and {broken')
    assert objs == [{"a": 1}, {"b": {"c": 2}}]


def test_strip_reasoning():
    assert strip_reasoning("<think>long\ntrace</think>\n answer") == "answer"
    assert strip_reasoning("trace without start</think>final") == "final"


WINNER_CASES = [
    ('{"reason": "more detail", "winner": "Caption 1"}', "1"),
    ('{"reason": "x", "winner": "Caption 2"}', "2"),
    ('{"winner": "Tie", "reason": "equal"}', "tie"),
    ('{"winner": "caption 2 is better."}', "2"),
    ("Winner: Caption 1", "1"),
    ('"winner": "Caption 2", "reason": "cut off', "2"),
    ("Tie", "tie"),
    ("Caption 1", "1"),
]


@pytest.mark.parametrize(("text", "label"), WINNER_CASES)
def test_pairwise_winner_reading(text, label):
    v = parse_winner(text)
    assert v.ok and v.value == label


@pytest.mark.parametrize("text", ["Both are nice captions of a dog.", '{"winner": "Caption 3"}', None])
def test_pairwise_unreadable(text):
    assert not parse_winner(text).ok


def test_order_outcome_maps_positions_back_to_the_candidate():
    assert order_outcome("1", candidate_first=True) == 1
    assert order_outcome("2", candidate_first=True) == -1
    assert order_outcome("1", candidate_first=False) == -1
    assert order_outcome("2", candidate_first=False) == 1
    assert order_outcome("tie", candidate_first=False) == 0


def test_parse_choice_custom_labels():
    v = parse_choice('{"answer": "B"}', key="answer", choices={"A": (), "B": ()})
    assert v.value == "B"


def test_mllm_reading_overall_and_criteria():
    v = parse_mllm('{"reason": "r", "accuracy": 4, "completeness": 3, "hallucination": 5, "detail": 2, "score": 4}')
    assert v.value == {"score": 4.0, "accuracy": 4.0, "completeness": 3.0, "hallucination": 5.0, "detail": 2.0}
    partial = parse_mllm('{"score": 3, "accuracy": 9}')
    assert partial.value["score"] == 3.0
    assert math.isnan(partial.value["accuracy"]) and math.isnan(partial.value["detail"])
    assert not parse_mllm('{"accuracy": 4}').ok


def test_retry_request_is_a_distinct_follow_up():
    req = JudgeRequest(messages=[{"role": "user", "content": "rate"}], seed=2, template_hash="h", tag="s1")
    again = retry_request(req, "no idea", "JSON only please")
    assert again.messages[-2:] == [{"role": "assistant", "content": "no idea"},
                                   {"role": "user", "content": "JSON only please"}]
    assert again.seed == 2 and again.template_hash == "h"
    assert req.messages == [{"role": "user", "content": "rate"}]  # the original is untouched


# --- issue 12: sign, decimal point, exponent, fractions, percentages and ranges in every fallback -----------

CLAIR_NUMBER_CASES = [  # (reply, CLAIR value on 0-100 or None for a counted failure, error fragment)
    ("-5", None, "score -5 outside"),
    ("I would rate it -5, a different image.", None, "score -5 outside"),
    ("\u22125", None, "score -5 outside"),  # a Unicode minus sign
    ("score: -5", None, "score -5 outside"),
    ('{"score": "-5"}', None, "score -5 outside"),
    ("+85", 85.0, None),
    ("Score: 72.5", 72.5, None),
    ("I'd say 72.5 overall", 72.5, None),
    ("1e2", 100.0, None),
    ("score: 8.5e-1", 85.0, None),  # 0.85: CLAIR's fraction-of-100 rule
    ("5/10", 50.0, None),  # a fraction is a share of the scale, not 5
    ("I rate it 7/10.", 70.0, None),
    ("4 out of 5", 80.0, None),
    ("80%", 80.0, None),
    ('{"score": "80%"}', 80.0, None),
    ("roughly 65 percent", 65.0, None),
    ("7-8", None, "a range"),
    ("score: 70-80", None, "a range"),
    ("somewhere from 70 to 80", None, "a range"),
    ("score: 3/0", None, "a fraction over 0"),
    ("GPT-4 would say 85", 4.0, None),  # a hyphen is not a minus sign: the first number is 4 (CLAIR's rule)
]


@pytest.mark.parametrize(("text", "value", "error"), CLAIR_NUMBER_CASES)
def test_clair_fallback_reads_whole_numbers(text, value, error):
    v = parse_clair(text)
    if value is None:
        assert not v.ok and v.value is None and error in v.error
    else:
        assert v.ok and v.value == pytest.approx(value), v


@pytest.mark.parametrize(("text", "value"), [
    ("4", 4.0), ("-4", None), ("4.5", 4.5), ("score: 4/5", 4.0), ("score: 8/10", 4.0), ("80%", 4.0),
    ("score: 4-5", None), ("Rating: [[-2]]", None), ("Rating: [[3.5]]", 3.5),
])
def test_bounded_scale_fallbacks(text, value):
    v = parse_score(text, lo=1, hi=5)
    assert (v.value == pytest.approx(value)) if value is not None else (not v.ok and v.value is None)
