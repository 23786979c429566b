"""CIDEr-D (Vedantam et al., 2015) as pycocoevalcap 1.2's CiderScorer computes it, vectorised.

Document frequencies count the samples whose references hold an n-gram; ``idf = log(S) - log(max(1, df))``;
each sentence is one tf-idf vector per order; a (candidate, reference) pair scores, per order, the clipped
dot product ``sum min(v_c, v_r) * v_r`` over their norms, times the Gaussian length penalty
``e ** (-(delta ** 2) / (2 * sigma ** 2))`` on the bigram counts; a sample scores the mean over orders of
the sum over its references, over the reference count, times 10. Every sum runs in pycocoevalcap's order
(:func:`~capeval.metrics.native.sums.sequential_sums`) and every transcendental is evaluated as
pycocoevalcap evaluates it (numpy's scalar ``log``, Python's ``**``), once per distinct argument, so the
numbers are pycocoevalcap's to the last bit.
"""

from __future__ import annotations

import math
import platform

import numpy as np

from capeval.metrics.native.ngrams import ORDER, NgramTable, matches, ranges, release_freed_memory, sample_chunks
from capeval.metrics.native.sums import sequential_sums

SIGMA = 6.0
_SENTENCE_CHUNK = 100_000
# CiderScorer squares numpy scalars with pow(v, 2): the C library's pow, which differs from v * v in the last
# bit for about one value in a thousand, so the squares go through math.pow (the same C pow) too.
_pow = np.frompyfunc(math.pow, 2, 1)
# glibc's pow (2.28 and later) is within 0.52 ULP of the exact value, so it can only differ from the correctly
# rounded v * v where the exact square lies within 0.02 ULP of a rounding midpoint; squares whose rounding
# error is below 0.47 ULP are v * v exactly, the rest go through pow. Elsewhere every square goes through pow.
_GLIBC = platform.libc_ver()[0] == "glibc"
_NEAR_MIDPOINT = 0.47


def document_frequency(table: NgramTable) -> np.ndarray:
    """``(n_grams,)`` number of samples whose references contain each n-gram."""
    df = np.zeros(table.n_grams, dtype=np.int64)
    for lo, hi in sample_chunks(table):
        refs = table.refs[table.ref_ptr[lo]:table.ref_ptr[hi]]
        first, count = table.sentence_entries(refs)
        per_ref = np.repeat(np.arange(lo, hi, dtype=np.int64), table.n_refs[lo:hi])
        sample = np.repeat(per_ref - lo, count)
        keys = sample * np.int64(table.n_grams) + table.gram[ranges(first, count)]
        keys.sort()
        distinct = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # (sample, n-gram) pairs
        df += np.bincount(distinct % table.n_grams, minlength=table.n_grams)
    return df


def idf(table: NgramTable, df: np.ndarray, n_docs: int | None = None) -> np.ndarray:
    """``ref_len - log(max(1, df))`` per n-gram, each log computed as CiderScorer computes it; ``ref_len`` is
    ``log(n_docs)``, by default ``log`` of the table's sample count."""
    ref_len = np.log(float(table.n_samples if n_docs is None else n_docs))
    present = np.flatnonzero(np.bincount(df))
    logs = np.zeros(len(present) and int(present[-1]) + 1, dtype=np.float64)
    for d in present.tolist():
        logs[d] = np.log(max(1.0, float(d)))
    return ref_len - logs[df]


def sentence_norms(table: NgramTable, weights: np.ndarray) -> np.ndarray:
    """``(sentences, ORDER)`` norms of the tf-idf vectors, summed in the sentence's n-gram order."""
    n_sent = len(table.lengths)
    norms = np.zeros(n_sent * ORDER, dtype=np.float64)
    for s0 in range(0, n_sent, _SENTENCE_CHUNK):
        s1 = min(n_sent, s0 + _SENTENCE_CHUNK)
        lo, hi = table.row_ptr[s0 * ORDER], table.row_ptr[s1 * ORDER]
        v = table.tf[lo:hi] * weights[table.gram[lo:hi]]
        rows = table.row_ptr[s0 * ORDER:s1 * ORDER + 1] - lo
        squares = squares_as_pow(v)
        norms[s0 * ORDER:s1 * ORDER] = sequential_sums(squares, rows[:-1], np.diff(rows))
    return np.sqrt(norms).reshape(n_sent, ORDER)


def squares_as_pow(v: np.ndarray) -> np.ndarray:
    """``pow(x, 2.0)`` of every element, as the C library computes it, mostly by exact multiplication.

    The rounding error of ``v * v`` comes exactly from Dekker's product (``v`` split into halves of 26 bits);
    only squares near a rounding midpoint are recomputed with ``pow``.

    Example:
        >>> x = np.array([0.1, 3.0, 1e-3])
        >>> bool((squares_as_pow(x) == np.array([math.pow(t, 2.0) for t in x])).all())
        True
    """
    v = np.asarray(v, dtype=np.float64)
    if not _GLIBC:
        return _pow(v, 2.0).astype(np.float64)
    square = v * v
    hi = 134217729.0 * v  # 2**27 + 1
    hi -= hi - v
    lo = v - hi
    error = hi * hi
    error -= square
    error += 2.0 * hi * lo
    error += lo * lo  # the exact v**2 - square
    near = np.flatnonzero(np.abs(error) > _NEAR_MIDPOINT * np.spacing(square))
    square[near] = _pow(v[near], 2.0).astype(np.float64)
    return square


def _penalties(delta: np.ndarray, sigma: float) -> np.ndarray:
    """``np.e ** (-(delta ** 2) / (2 * sigma ** 2))`` per value, with Python floats as CiderScorer has them."""
    values, inverse = np.unique(delta, return_inverse=True)
    table = np.array([np.e ** (-(float(d) ** 2) / (2 * sigma ** 2)) for d in values.tolist()], dtype=np.float64)
    return table[inverse.reshape(-1)]


def cider_d(table: NgramTable, sigma: float = SIGMA, df: np.ndarray | None = None,
            n_docs: int | None = None) -> np.ndarray:
    """Per-sample CIDEr-D (n = 4); the corpus score is ``np.mean`` of it, as in ``CiderScorer.compute_score``.

    Document frequencies come from the table's references, unless given: ``df`` per n-gram id of the table
    and ``n_docs`` documents (a shard of a run scored with the whole run's, see :mod:`.ngram_keys`).

    Example:
        >>> from capeval.metrics.native.ngrams import encode
        >>> t = encode(["a cat sat", "a dog"], [["a cat sat down", "a cat"], ["the dog runs"]])
        >>> [round(float(x), 6) for x in cider_d(t)]
        [4.824072, 1.006543]
    """
    n = table.n_samples
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if (df is None) != (n_docs is None):
        raise ValueError("give both df and n_docs, or neither")
    if df is None:
        df = document_frequency(table)
    elif len(df) != table.n_grams:
        raise ValueError(f"df has {len(df)} entries for {table.n_grams} n-grams")
    weights = idf(table, np.asarray(df, dtype=np.int64), n_docs)
    norms = sentence_norms(table, weights)
    bigrams = np.maximum(table.lengths - 1, 0)
    n_refs = table.n_refs
    score = np.zeros(n * ORDER, dtype=np.float64)  # per sample and order: the sum over references
    for lo, hi in sample_chunks(table):
        m = matches(table, lo, hi)
        refs = table.ref_ptr[lo]  # pair (sample i, reference q) is pairs[ref_ptr[i] + q - refs]
        n_pairs = int(table.ref_ptr[hi] - refs)
        cand = table.cand[lo:hi]
        ref_sent = table.refs[refs:table.ref_ptr[hi]]
        pair_sample = np.repeat(np.arange(hi - lo, dtype=np.int64), n_refs[lo:hi])
        pair_q = np.arange(n_pairs, dtype=np.int64) - (table.ref_ptr[lo:hi] - refs)[pair_sample]
        vals = np.zeros(n_pairs * ORDER, dtype=np.float64)
        if len(m.entry):
            w = weights[table.gram[m.entry]]
            reps = n_refs[lo:hi][m.sample]
            v_cand = np.repeat(table.tf[m.entry] * w, reps)
            v_ref = m.ref_tf * np.repeat(w, reps)
            terms = np.minimum(v_cand, v_ref) * v_ref  # layout (sample, candidate n-gram, reference)
            # row (pair, order): candidate n-grams of that order, in their order, stride = the sample's refs
            c_rows = cand[pair_sample][:, None] * ORDER + np.arange(ORDER)[None, :]
            e_first = table.row_ptr[c_rows] - table.row_ptr[cand[pair_sample] * ORDER][:, None]
            e_count = table.row_ptr[c_rows + 1] - table.row_ptr[c_rows]
            base = np.zeros(hi - lo, dtype=np.int64)  # first term of each sample
            _, count = table.sentence_entries(cand)
            np.cumsum((count * n_refs[lo:hi])[:-1], out=base[1:])
            stride = n_refs[lo:hi][pair_sample]
            starts = base[pair_sample][:, None] + e_first * stride[:, None] + pair_q[:, None]
            vals = sequential_sums(terms, starts.ravel(), e_count.ravel(), np.repeat(stride, ORDER))
        nc = norms[cand[pair_sample]]
        nr = norms[ref_sent]
        vals = vals.reshape(n_pairs, ORDER)
        both = (nc != 0) & (nr != 0)
        vals = np.where(both, vals / np.where(both, nc * nr, 1.0), vals)
        delta = (bigrams[cand[pair_sample]] - bigrams[ref_sent]).astype(np.float64)
        vals = vals * _penalties(delta, sigma)[:, None]
        # sum over the sample's references, in order, per order
        first_pair = (table.ref_ptr[lo:hi] - refs)
        starts = (first_pair[:, None] * ORDER + np.arange(ORDER)[None, :]).ravel()
        sums = sequential_sums(vals.ravel(), starts, np.repeat(n_refs[lo:hi], ORDER), ORDER)
        score[lo * ORDER:hi * ORDER] = sums
    release_freed_memory()
    per_sample = np.mean(score.reshape(n, ORDER), axis=1)
    per_sample = per_sample / n_refs
    return per_sample * 10.0
