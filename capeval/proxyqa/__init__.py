"""Caption-as-proxy question answering (CaptionQA, MetaCaptioner, Prism): question sets, prompting, answer
extraction, option shuffling and scoring. The registered metric is :mod:`capeval.metrics.proxy_qa`.
"""

from capeval.proxyqa.extract import extract_choice, extract_open, normalize_answer, open_match
from capeval.proxyqa.questions import Question, QuestionSet, load_questions
from capeval.proxyqa.scoring import Graded, aggregate, breakdown, cannot_score
from capeval.proxyqa.shuffle import permutation, presented_options

__all__ = [
    "Graded",
    "Question",
    "QuestionSet",
    "aggregate",
    "breakdown",
    "cannot_score",
    "extract_choice",
    "extract_open",
    "load_questions",
    "normalize_answer",
    "open_match",
    "permutation",
    "presented_options",
]
