"""Native, vectorised BLEU, ROUGE-L and CIDEr-D with pycocoevalcap 1.2's exact arithmetic.

Each kernel takes PTB-tokenised strings (one candidate and a non-empty list of references per sample) and
returns the same floating-point numbers as pycocoevalcap's scorers, bit for bit: n-grams are integer ids
(:mod:`.ngrams`), counts live in flat numpy arrays, and every sum that pycocoevalcap accumulates in a Python
loop is accumulated here in the same order (:mod:`.sums`), so not a single ulp moves.
"""

from capeval.metrics.native.bleu import bleu_statistics, corpus_bleu, sentence_bleu
from capeval.metrics.native.cider import cider_d
from capeval.metrics.native.ngrams import NgramTable, encode
from capeval.metrics.native.rouge import rouge_l

__all__ = ["NgramTable", "bleu_statistics", "cider_d", "corpus_bleu", "encode", "rouge_l", "sentence_bleu"]
