"""n-grams as integer ids (orders 1..4) of tokenised captions, laid out as pycocoevalcap's ``precook`` counts them.

:func:`encode` turns candidates and references into one :class:`NgramTable`: every unique sentence is split
once (``str.split()``, as ``precook`` does), its tokens become integer ids, its n-grams become integer ids
(an order-``k`` id is the factorised pair (order ``k-1`` id, next token)), and its distinct n-grams are kept
in the order of a Python ``defaultdict`` filled by ``precook``: by order, then by first position. That order
matters because pycocoevalcap's CIDEr-D sums over those dicts, and floating-point sums depend on order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import pandas as pd

ORDER = 4
_CHUNK_SENTENCES = 50_000  # sentences split per pass: bounds the Python string objects alive at once
_CHUNK_OCCURRENCES = 2_000_000  # n-gram occurrences de-duplicated per pass: bounds the memory it takes


def release_freed_memory() -> None:
    """Hand memory freed by the kernels' temporary arrays back to the OS (glibc ``malloc_trim``; no-op elsewhere).

    glibc raises its mmap threshold after large frees, so later large arrays come from the heap and freed heap
    memory stays in the process: without this, RSS keeps the high-water mark of every temporary.
    """
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def dense_ids(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids ``0..n-1`` of int64 keys (equal keys, equal ids; ids in first-occurrence order) and ``n``, by hashing.

    Example:
        >>> ids, n = dense_ids(np.array([70, 30, 70, 90]))
        >>> ids.tolist(), n
        ([0, 1, 0, 2], 3)
    """
    if not len(keys):
        return np.zeros(0, dtype=np.int64), 0
    ids, uniques = pd.factorize(keys)
    return ids.astype(np.int64, copy=False), len(uniques)


def first_occurrences(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys in order of first occurrence, and how often each occurs (one hashing pass).

    Example:
        >>> uniques, count = first_occurrences(np.array([7, 3, 7, 9, 3]))
        >>> uniques.tolist(), count.tolist()
        ([7, 3, 9], [2, 2, 1])
    """
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(keys)
    return np.asarray(uniques, dtype=np.int64), np.bincount(codes, minlength=len(uniques))


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for each pair, as one int64 array.

    Example:
        >>> ranges(np.array([5, 0]), np.array([2, 3])).tolist()
        [5, 6, 0, 1, 2]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.asarray(starts, dtype=np.int64) - (ends - lengths)
    return np.repeat(shift, lengths) + np.arange(total, dtype=np.int64)


@dataclass
class NgramTable:
    """Candidates and references of ``S`` samples as n-gram entries of their unique sentences.

    Sentence ``s`` has ``lengths[s]`` tokens (``str.split()``), token ids ``tokens[tok_ptr[s]:tok_ptr[s+1]]``
    and, for order ``k`` (0-based), the distinct n-grams ``gram[e]`` with counts ``tf[e]`` for ``e`` in
    ``row_ptr[s*4+k]:row_ptr[s*4+k+1]``, in first-occurrence order. Sample ``i`` is candidate sentence
    ``cand[i]`` against reference sentences ``refs[ref_ptr[i]:ref_ptr[i+1]]``.
    """

    sentences: list[str]
    lengths: np.ndarray
    tokens: np.ndarray
    tok_ptr: np.ndarray
    regular: np.ndarray  # str.split(" ") == str.split() (no other whitespace, not empty)
    vocab: dict[str, int]
    gram: np.ndarray
    tf: np.ndarray
    row_ptr: np.ndarray
    n_grams: int
    cand: np.ndarray
    refs: np.ndarray
    ref_ptr: np.ndarray
    _lookup: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_samples(self) -> int:
        return len(self.cand)

    @property
    def n_refs(self) -> np.ndarray:
        """References per sample."""
        return np.diff(self.ref_ptr)

    def sentence_entries(self, sentence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first entry, number of entries) of each sentence, all orders."""
        first = self.row_ptr[sentence * ORDER]
        return first, self.row_ptr[sentence * ORDER + ORDER] - first

    def reference_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys ``sentence * n_grams + gram`` of reference entries whose n-gram occurs in some candidate,
        and their counts: what :meth:`reference_counts` searches."""
        if self._lookup is None:
            in_cand = np.zeros(self.n_grams, dtype=bool)
            first, count = self.sentence_entries(np.unique(self.cand))
            in_cand[self.gram[ranges(first, count)]] = True
            ref_sentences = np.unique(self.refs)
            first, count = self.sentence_entries(ref_sentences)
            entries = ranges(first, count)
            keep = in_cand[self.gram[entries]]
            entries = entries[keep]
            keys = np.repeat(ref_sentences, count)[keep] * np.int64(self.n_grams) + self.gram[entries]
            order = np.argsort(keys, kind="stable")
            self._lookup = (keys[order], self.tf[entries[order]])
        return self._lookup

    def reference_counts(self, sentence: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """Count of n-gram ``gram[j]`` in reference sentence ``sentence[j]`` (0 when absent), elementwise.

        Only n-grams that occur in some candidate are indexed: the others are never asked for.
        """
        keys, counts = self.reference_lookup()
        query = sentence * np.int64(self.n_grams) + gram
        pos = np.searchsorted(keys, query)
        pos[pos == len(keys)] = 0
        if not len(keys):
            return np.zeros(len(query), dtype=np.int64)
        found = keys[pos] == query
        return np.where(found, counts[pos], 0)


def _tokenize(sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Token ids (flat int64), token counts and the ``regular`` mask of each sentence, and the vocabulary."""
    vocab: dict[str, int] = {}
    n = len(sentences)
    lengths = np.zeros(n, dtype=np.int64)
    regular = np.zeros(n, dtype=bool)
    parts = []
    for start in range(0, n, _CHUNK_SENTENCES):
        chunk = sentences[start:start + _CHUNK_SENTENCES]
        words = [s.split() for s in chunk]
        lengths[start:start + len(chunk)] = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        regular[start:start + len(chunk)] = [bool(s) and s == " ".join(w) for s, w in zip(chunk, words, strict=True)]
        flat = list(chain.from_iterable(words))
        del words
        if not flat:
            continue
        codes, uniques = pd.factorize(np.asarray(flat, dtype=object))
        del flat
        ids = np.fromiter((vocab.setdefault(u, len(vocab)) for u in uniques), dtype=np.int64, count=len(uniques))
        parts.append(ids[codes])
    tokens = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
    return tokens, lengths, regular, vocab


def _ngram_ids(tokens: np.ndarray, lengths: np.ndarray, n_vocab: int, prefixes: list[np.ndarray] | None = None
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """Per order ``k``, the global n-gram id of the order-``k`` n-gram starting at each token position
    (-1 where the sentence ends too soon), and the first id of each order followed by the number of ids.

    With a ``prefixes`` list, appends per order ``k >= 1`` the key of each of its ids, in id order:
    ``prefix * n_vocab + last token``, where ``prefix`` is the id of its first ``k`` tokens within order ``k-1``."""
    n_tok = len(tokens)
    sent_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    remaining = np.repeat(np.cumsum(lengths), lengths) - np.arange(n_tok, dtype=np.int64)  # tokens to the end
    del sent_start
    per_order = [tokens.astype(np.int32)]
    offsets = [0, n_vocab]
    prev = tokens.astype(np.int64)
    positions = np.arange(n_tok, dtype=np.int64)
    for k in range(1, ORDER):
        valid = remaining[positions] > k
        positions = positions[valid]
        keys = prev[valid] * np.int64(max(n_vocab, 1)) + tokens[positions + k]
        if prefixes is None:
            prev, n_ids = dense_ids(keys)
        else:
            codes, uniques = pd.factorize(keys)
            prev, n_ids = codes.astype(np.int64, copy=False), len(uniques)
            prefixes.append(np.asarray(uniques, dtype=np.int64))
        del keys
        ids = np.full(n_tok, -1, dtype=np.int32)
        ids[positions] = prev + offsets[-1]
        per_order.append(ids)
        offsets.append(offsets[-1] + n_ids)
    return per_order, np.asarray(offsets, dtype=np.int64)


def _distinct(ids: list[np.ndarray], lengths: np.ndarray, n_grams: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct n-grams per (sentence, order) in first-occurrence order, their counts and their rows
    ``sentence * ORDER + order``, block of sentences by block (bounded memory)."""
    grams, tfs, rows = [], [], []
    n_sent = len(lengths)
    occ_per_sentence = np.maximum(lengths[:, None] - np.arange(ORDER)[None, :], 0).sum(axis=1)
    bounds = np.concatenate(([0], np.cumsum(occ_per_sentence)))
    tok_ptr = np.concatenate(([0], np.cumsum(lengths)))
    start = 0
    while start < n_sent:
        stop = int(np.searchsorted(bounds, bounds[start] + _CHUNK_OCCURRENCES, side="right")) - 1
        stop = min(max(stop, start + 1), n_sent)
        t0, t1 = int(tok_ptr[start]), int(tok_ptr[stop])
        block_len = lengths[start:stop]
        sent = np.repeat(np.arange(stop - start, dtype=np.int64), block_len)
        local = np.arange(t1 - t0, dtype=np.int64) - (tok_ptr[start:stop] - t0)[sent]
        per_row = np.maximum(block_len[:, None] - np.arange(ORDER)[None, :], 0)
        occ_ptr = np.concatenate(([0], np.cumsum(per_row.ravel())))
        occ = np.empty(int(occ_ptr[-1]), dtype=np.int64)
        for k in range(ORDER):
            g = ids[k][t0:t1]
            ok = g >= 0
            occ[occ_ptr[sent[ok] * ORDER + k] + local[ok]] = g[ok]
        occ_sent = np.repeat(np.arange(stop - start, dtype=np.int64), per_row.sum(axis=1))
        keys = occ_sent * np.int64(n_grams) + occ
        del occ, occ_sent
        uniques, count = first_occurrences(keys)
        del keys
        gram = uniques % n_grams
        grams.append(gram.astype(np.int32))
        tfs.append(count.astype(np.int32))
        rows.append((uniques // n_grams + start) * ORDER)
        start = stop
    gram = np.concatenate(grams) if grams else np.zeros(0, dtype=np.int32)
    tf = np.concatenate(tfs) if tfs else np.zeros(0, dtype=np.int32)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return gram, tf, row


def encode(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> NgramTable:
    """Encode ``S`` samples (tokenised candidate, non-empty list of tokenised references) as an n-gram table.

    Example:
        >>> t = encode(["a cat"], [["a cat sat", "the cat"]])
        >>> t.n_samples, len(t.sentences), t.lengths.tolist()
        (1, 3, [2, 3, 2])
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    n_refs = np.fromiter(map(len, references), dtype=np.int64, count=len(references))
    if len(n_refs) and n_refs.min() == 0:
        raise ValueError(f"sample {int(np.argmin(n_refs))} has no reference")
    all_strings = list(candidates)
    all_strings.extend(chain.from_iterable(references))
    codes, uniques = pd.factorize(np.asarray(all_strings, dtype=object)) if all_strings else (
        np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))
    del all_strings
    sentences = list(uniques)
    tokens, lengths, regular, vocab = _tokenize(sentences)
    ids, offsets = _ngram_ids(tokens, lengths, len(vocab))
    n_grams = int(offsets[-1])
    gram, tf, row = _distinct(ids, lengths, n_grams)
    del ids
    row = row + np.searchsorted(offsets[1:], gram, side="right")  # + the order whose id range holds the gram
    del offsets
    row_ptr = np.zeros(len(sentences) * ORDER + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(sentences) * ORDER), out=row_ptr[1:])
    tok_ptr = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=tok_ptr[1:])
    ref_ptr = np.zeros(len(candidates) + 1, dtype=np.int64)
    np.cumsum(n_refs, out=ref_ptr[1:])
    codes = np.asarray(codes, dtype=np.int64)
    release_freed_memory()
    return NgramTable(
        sentences=sentences, lengths=lengths, tokens=tokens, tok_ptr=tok_ptr, regular=regular, vocab=vocab,
        gram=gram, tf=tf, row_ptr=row_ptr, n_grams=n_grams,
        cand=codes[:len(candidates)], refs=codes[len(candidates):], ref_ptr=ref_ptr,
    )


@dataclass
class Matches:
    """Each candidate n-gram of samples ``lo..hi`` against each of its sample's references.

    ``entry[x]`` is the table entry of the ``x``-th candidate n-gram (sample by sample, in entry order),
    ``sample[x]`` its sample (relative to ``lo``); its counts in the sample's references are
    ``ref_tf[first[x]:first[x] + n_refs[sample[x]]]``, references in order.
    """

    lo: int
    hi: int
    entry: np.ndarray
    sample: np.ndarray
    first: np.ndarray
    ref_tf: np.ndarray


def sample_chunks(table: NgramTable, budget: int = 2_000_000) -> list[tuple[int, int]]:
    """Sample ranges whose (candidate n-gram x reference) pairs number about ``budget`` each."""
    _, count = table.sentence_entries(table.cand)
    work = np.cumsum(count * table.n_refs)
    bounds, lo = [], 0
    while lo < table.n_samples:
        base = work[lo - 1] if lo else 0
        hi = int(np.searchsorted(work, base + budget, side="right"))
        hi = min(max(hi, lo + 1), table.n_samples)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def matches(table: NgramTable, lo: int, hi: int) -> Matches:
    """Reference counts of the candidate n-grams of samples ``lo..hi`` (see :class:`Matches`)."""
    first_e, count_e = table.sentence_entries(table.cand[lo:hi])
    entry = ranges(first_e, count_e)
    sample = np.repeat(np.arange(hi - lo, dtype=np.int64), count_e)
    n_refs = table.n_refs[lo:hi]
    reps = n_refs[sample]
    first = np.cumsum(reps) - reps
    # query x, reference q of its sample: reference sentence refs[ref_ptr[lo + sample] + q]
    ref_slot = ranges(table.ref_ptr[lo:hi][sample], reps)
    ref_tf = table.reference_counts(table.refs[ref_slot], np.repeat(table.gram[entry], reps))
    return Matches(lo=lo, hi=hi, entry=entry, sample=sample, first=first, ref_tf=ref_tf)
