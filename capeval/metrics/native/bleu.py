"""BLEU-1..4 (Papineni et al., 2002) as pycocoevalcap 1.2's BleuScorer computes it, vectorised.

Per sample: test length, the 'closest' reference length (ties to the shorter), guesses and clipped matches
per order (:func:`bleu_statistics`); sentence BLEU with BleuScorer's ``tiny``/``small`` constants
(:func:`sentence_bleu`); corpus BLEU from the summed statistics (:func:`corpus_bleu`). Powers and
exponentials go through :mod:`math` (the C library, as Python's ``**`` and ``math.exp``), never numpy's
SIMD versions, which can differ in the last bit.
"""

from __future__ import annotations

import math

import numpy as np

from capeval.metrics.native.ngrams import ORDER, NgramTable, matches, release_freed_memory, sample_chunks

STAT_COLUMNS = ("testlen", "reflen", "guess_1", "guess_2", "guess_3", "guess_4",
                "correct_1", "correct_2", "correct_3", "correct_4")
SMALL, TINY = 1e-9, 1e-15

_pow = np.frompyfunc(math.pow, 2, 1)
_exp = np.frompyfunc(math.exp, 1, 1)


def bleu_statistics(table: NgramTable) -> np.ndarray:
    """``(S, 10)`` float statistics per sample, columns :data:`STAT_COLUMNS`.

    Example:
        >>> from capeval.metrics.native.ngrams import encode
        >>> bleu_statistics(encode(["a cat a cat"], [["a cat", "the big cat sat"]]))[0].tolist()
        [4.0, 4.0, 4.0, 3.0, 2.0, 1.0, 2.0, 1.0, 0.0, 0.0]
    """
    n = table.n_samples
    stats = np.zeros((n, len(STAT_COLUMNS)), dtype=np.float64)
    if n == 0:
        return stats
    testlen = table.lengths[table.cand]
    stats[:, 0] = testlen
    # closest reference length: min over references of (|len - testlen|, len)
    ref_len = table.lengths[table.refs]
    wide = np.int64(int(table.lengths.max()) + 1)
    sample_of_ref = np.repeat(np.arange(n, dtype=np.int64), table.n_refs)
    key = np.abs(ref_len - testlen[sample_of_ref]) * wide + ref_len
    stats[:, 1] = np.minimum.reduceat(key, table.ref_ptr[:-1]) % wide
    for k in range(ORDER):
        stats[:, 2 + k] = np.maximum(testlen - k, 0)
    correct = np.zeros(n * ORDER, dtype=np.float64)
    order_of_entry = _entry_order(table)
    for lo, hi in sample_chunks(table):
        m = matches(table, lo, hi)
        if not len(m.entry):
            continue
        best = np.maximum.reduceat(m.ref_tf, m.first)  # the max count over the sample's references
        clipped = np.minimum(table.tf[m.entry], best)
        row = (m.sample + lo) * ORDER + order_of_entry[m.entry]
        correct += np.bincount(row, weights=clipped, minlength=n * ORDER)
    stats[:, 6:] = correct.reshape(n, ORDER)
    release_freed_memory()
    return stats


def _entry_order(table: NgramTable) -> np.ndarray:
    """The order (0-based) of every entry of the table."""
    rows = np.diff(table.row_ptr)
    return np.repeat(np.tile(np.arange(ORDER, dtype=np.int64), len(table.lengths)), rows)


def sentence_bleu(stats: np.ndarray) -> np.ndarray:
    """``(S, 4)`` per-sample BLEU-1..4 exactly as ``BleuScorer.compute_score`` fills its ``bleu_list``.

    Example:
        >>> s = np.array([[4.0, 4.0, 4.0, 3.0, 2.0, 1.0, 2.0, 1.0, 0.0, 0.0]])
        >>> [round(float(x), 6) for x in sentence_bleu(s)[0]]
        [0.5, 0.408248, 4e-06, 0.0]
    """
    stats = np.asarray(stats, dtype=np.float64)
    out = np.empty((len(stats), ORDER), dtype=np.float64)
    bleu = np.ones(len(stats), dtype=np.float64)
    for k in range(ORDER):
        bleu = bleu * ((stats[:, 6 + k] + TINY) / (stats[:, 2 + k] + SMALL))
        out[:, k] = _pow(bleu, 1.0 / (k + 1)).astype(np.float64)
    ratio = (stats[:, 0] + TINY) / (stats[:, 1] + SMALL)
    short = ratio < 1
    if short.any():
        out[short] *= _exp(1 - 1 / ratio[short]).astype(np.float64)[:, None]
    return out


def corpus_bleu(stats: np.ndarray) -> list[float]:
    """Corpus BLEU-1..4 from per-sample statistics with ``BleuScorer.compute_score``'s arithmetic.

    Example:
        >>> s = np.array([[4.0, 4.0, 4.0, 3.0, 2.0, 1.0, 2.0, 1.0, 0.0, 0.0]])
        >>> [round(x, 6) for x in corpus_bleu(s)]
        [0.5, 0.408248, 4e-06, 0.0]
    """
    totals = [int(round(float(x))) for x in np.asarray(stats, dtype=np.float64).sum(axis=0)]
    testlen, reflen = totals[0], totals[1]
    bleus, bleu = [], 1.0
    for k in range(ORDER):
        bleu *= float(totals[6 + k] + TINY) / (totals[2 + k] + SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + TINY) / (reflen + SMALL)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus
