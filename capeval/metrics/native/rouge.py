"""ROUGE-L (Lin, 2004) as pycocoevalcap 1.2's Rouge computes it (beta 1.2), with a bit-parallel LCS.

pycocoevalcap splits on single spaces (``str.split(" ")``, so an empty caption is one empty token), takes the
longest common subsequence of the candidate with each reference, the best precision and the best recall over
the references separately, and their F-measure with ``beta = 1.2``. The LCS length here comes from the
bit-vector recurrence of Allison & Dix (1986) / Hyyrö (2004): the candidate's positions are bits, one
reference token is one step ``V = (V + (V & M)) | (V & ~M)``, for a whole block of pairs at once; the LCS is
the number of cleared bits.
"""

from __future__ import annotations

import numpy as np

from capeval.metrics.native.ngrams import NgramTable, ranges

BETA = 1.2
_PAIR_CELLS = 4_000_000  # candidate-position x reference-position cells per block of pairs
_POPCOUNT8 = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)


def _rouge_tokens(table: NgramTable) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of every sentence under ``str.split(" ")`` (flat) and their row pointer."""
    lengths = table.lengths.copy()
    irregular = np.flatnonzero(~table.regular)
    if not len(irregular):
        return table.tokens, table.tok_ptr
    vocab = dict(table.vocab)
    extra = {}
    for s in irregular.tolist():
        extra[s] = [vocab.setdefault(w, len(vocab)) for w in table.sentences[s].split(" ")]
        lengths[s] = len(extra[s])
    ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    tokens = np.empty(int(ptr[-1]), dtype=np.int64)
    keep = table.regular
    src = ranges(table.tok_ptr[:-1][keep], table.lengths[keep])
    tokens[ranges(ptr[:-1][keep], lengths[keep])] = table.tokens[src]
    for s, ids in extra.items():
        tokens[ptr[s]:ptr[s + 1]] = ids
    return tokens, ptr


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of a ``(P, W)`` uint64 array."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(len(words), -1)
    return _POPCOUNT8[as_bytes].sum(axis=1)


def _padded(tokens: np.ndarray, ptr: np.ndarray, sentences: np.ndarray, width: int, fill: int) -> np.ndarray:
    """``(len(sentences), width)`` token ids, right-padded with ``fill``."""
    lengths = ptr[sentences + 1] - ptr[sentences]
    out = np.full((len(sentences), width), fill, dtype=np.int64)
    rows = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
    cols = ranges(np.zeros(len(sentences), dtype=np.int64), lengths)
    out[rows, cols] = tokens[ranges(ptr[sentences], lengths)]
    return out


def _lcs_block(cand: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """LCS lengths of padded candidate rows (pad -1) and reference rows (pad -2)."""
    n_pairs, width_c = cand.shape
    words = max(1, -(-width_c // 64))
    eq = cand[:, :, None] == ref[:, None, :]  # (P, candidate position, reference position)
    bits = np.packbits(eq, axis=1, bitorder="little")  # (P, bytes, reference position)
    del eq
    masks = np.zeros((n_pairs, ref.shape[1], words * 8), dtype=np.uint8)
    masks[:, :, :bits.shape[1]] = bits.transpose(0, 2, 1)
    masks = masks.view(np.uint64)  # (P, reference position, words); bit i of word w = position 64 w + i
    v = np.full((n_pairs, words), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    for j in range(ref.shape[1]):
        m = masks[:, j, :]
        u = v & m
        keep = v & ~m
        if words == 1:
            v = (v + u) | keep
        else:  # multi-word addition, carry from word w to w + 1
            total = np.empty_like(v)
            carry = np.zeros(n_pairs, dtype=np.uint64)
            for w in range(words):
                s = v[:, w] + u[:, w]
                c1 = s < v[:, w]
                s2 = s + carry
                carry = (c1 | (s2 < s)).astype(np.uint64)
                total[:, w] = s2
            v = total | keep
    return 64 * words - _popcount(v)


def lcs_lengths(table: NgramTable, tokens: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """LCS length of each (candidate, reference) pair of the table, pairs sample by sample."""
    sample = np.repeat(np.arange(table.n_samples, dtype=np.int64), table.n_refs)
    cand_sent = table.cand[sample]
    ref_sent = table.refs
    len_c = ptr[cand_sent + 1] - ptr[cand_sent]
    len_r = ptr[ref_sent + 1] - ptr[ref_sent]
    out = np.zeros(len(sample), dtype=np.int64)
    order = np.lexsort((len_r, len_c))  # similar lengths together: little padding
    start = 0
    while start < len(order):
        wc, wr = int(len_c[order[start]]), int(len_r[order[start]])
        stop = start
        # grow the block while its padded cells stay within budget
        step = max(1, _PAIR_CELLS // max(1, max(wc, 8) * max(wr, 1)))
        stop = min(len(order), start + step)
        block = order[start:stop]
        wc = max(int(len_c[block].max()), 1)
        wr = max(int(len_r[block].max()), 1)
        while stop - start > 1 and (stop - start) * wc * wr > 2 * _PAIR_CELLS:
            stop = start + (stop - start) // 2
            block = order[start:stop]
            wc = max(int(len_c[block].max()), 1)
            wr = max(int(len_r[block].max()), 1)
        c = _padded(tokens, ptr, cand_sent[block], wc, -1)
        r = _padded(tokens, ptr, ref_sent[block], wr, -2)
        out[block] = _lcs_block(c, r)
        start = stop
    return out


def rouge_l(table: NgramTable, beta: float = BETA) -> np.ndarray:
    """Per-sample ROUGE-L F-measure, as ``Rouge.calc_score``.

    Example:
        >>> from capeval.metrics.native.ngrams import encode
        >>> round(float(rouge_l(encode(["a cat sat"], [["a cat", "the cat sat down"]]))[0]), 6)
        0.829932
    """
    n = table.n_samples
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    tokens, ptr = _rouge_tokens(table)
    lcs = lcs_lengths(table, tokens, ptr)
    sample = np.repeat(np.arange(n, dtype=np.int64), table.n_refs)
    len_c = (ptr[table.cand + 1] - ptr[table.cand]).astype(np.float64)
    len_r = (ptr[table.refs + 1] - ptr[table.refs]).astype(np.float64)
    prec = np.maximum.reduceat(lcs / len_c[sample], table.ref_ptr[:-1])
    rec = np.maximum.reduceat(lcs / len_r, table.ref_ptr[:-1])
    b2 = beta ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        score = ((1 + b2) * prec * rec) / (rec + b2 * prec)
    return np.where((prec != 0) & (rec != 0), score, 0.0)
