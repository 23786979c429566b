"""CIDEr-D document frequencies of a sharded run: n-grams keyed by their words, summed over shards.

The n-gram ids of an :class:`~capeval.metrics.native.ngrams.NgramTable` are local to the table, so shards
of one run can't add their document counts by id. :func:`ngram_keys` gives every n-gram a 128-bit key made
from its words alone (BLAKE2b of each word, two 64-bit lanes; an n-gram's lane is a polynomial in its words'
lanes with a distinct odd multiplier per lane, plus its order), the same in every shard.
:class:`DocCounts` holds per-key document counts as sorted numpy arrays; :meth:`DocCounts.merge` adds the
shards' counts and :meth:`DocCounts.lookup` gives a table's n-grams their whole-run counts, which
:func:`~capeval.metrics.native.cider.cider_d` takes with the whole run's sample count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capeval.metrics.native.ngrams import ORDER, NgramTable, _ngram_ids

_MULTIPLIERS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))  # odd: invertible mod 2**64
_ORDER_MIX = (np.uint64(0x165667B19E3779F9), np.uint64(0x27D4EB2F165667C5))


def word_lanes(words: Sequence[str]) -> np.ndarray:
    """``(len(words), 2)`` uint64: the 128-bit BLAKE2b digest of each word's UTF-8 bytes as two lanes.

    Example:
        >>> lanes = word_lanes(["cat", "dog", "cat"])
        >>> lanes.shape, bool((lanes[0] == lanes[2]).all()), bool((lanes[0] != lanes[1]).any())
        ((3, 2), True, True)
    """
    digests = b"".join(hashlib.blake2b(w.encode("utf-8", "surrogatepass"), digest_size=16).digest() for w in words)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64).reshape(len(words), 2)


def ngram_keys(table: NgramTable) -> np.ndarray:
    """``(n_grams, 2)`` uint64 key of each n-gram id of ``table``, from its words only (equal in every table).

    Example:
        >>> from capeval.metrics.native.ngrams import encode
        >>> a = encode(["a cat"], [["a cat sat"]])
        >>> b = encode(["the dog"], [["a dog", "a cat sat"]])
        >>> def key(t, words):  # the id of the n-gram ``words`` in table ``t``
        ...     sent = t.sentences.index("a cat sat"); first = int(t.row_ptr[sent * 4 + len(words) - 1])
        ...     return ngram_keys(t)[t.gram[first]].tolist()
        >>> key(a, ["a", "cat"]) == key(b, ["a", "cat"]), key(a, ["a"]) == key(a, ["a", "cat"])
        (True, False)
    """
    n_vocab = len(table.vocab)
    keys = np.zeros((table.n_grams, 2), dtype=np.uint64)
    if not table.n_grams:
        return keys
    prefixes: list[np.ndarray] = []
    _, offsets = _ngram_ids(table.tokens, table.lengths, n_vocab, prefixes)
    words = word_lanes(list(table.vocab))  # vocabulary in id order (ids are insertion order)
    keys[:n_vocab] = words
    with np.errstate(over="ignore"):
        for k in range(1, ORDER):
            lo, hi = int(offsets[k]), int(offsets[k + 1])
            parent = prefixes[k - 1] // np.int64(n_vocab) + offsets[k - 1]
            last = prefixes[k - 1] % np.int64(n_vocab)
            for lane in (0, 1):
                keys[lo:hi, lane] = keys[parent, lane] * _MULTIPLIERS[lane] + words[last, lane]
        order = np.repeat(np.arange(1, ORDER + 1, dtype=np.uint64), np.diff(offsets))
        for lane in (0, 1):
            keys[:, lane] += order * _ORDER_MIX[lane]
    return keys


@dataclass
class DocCounts:
    """Per-n-gram document counts keyed by :func:`ngram_keys`, sorted by key, and the number of documents.

    Example:
        >>> from capeval.metrics.native.ngrams import encode
        >>> t1, t2 = encode(["a"], [["a cat"]]), encode(["b"], [["a dog", "a"]])
        >>> total = DocCounts.merge([DocCounts.of_table(t1), DocCounts.of_table(t2)])
        >>> total.n_docs, total.lookup(ngram_keys(t2)[[t2.vocab["a"], t2.vocab["dog"], t2.vocab["b"]]]).tolist()
        (2, [2, 1, 0])
    """

    keys: np.ndarray  # (n, 2) uint64, sorted by lane 0 then lane 1, distinct
    counts: np.ndarray  # (n,) int64
    n_docs: int

    @classmethod
    def of_table(cls, table: NgramTable, keys: np.ndarray | None = None) -> DocCounts:
        """The reference n-grams of ``table`` with the number of samples whose references hold each
        (``keys``: the table's :func:`ngram_keys`, when already computed)."""
        from capeval.metrics.native.cider import document_frequency

        df = document_frequency(table)
        present = np.flatnonzero(df)
        keys = ngram_keys(table) if keys is None else keys
        return cls.merge([cls(keys[present], df[present], table.n_samples)])

    @classmethod
    def merge(cls, parts: Sequence[DocCounts]) -> DocCounts:
        """The counts of several disjoint sets of documents, added per key."""
        keys = np.concatenate([p.keys for p in parts]) if parts else np.zeros((0, 2), dtype=np.uint64)
        counts = np.concatenate([p.counts for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        n_docs = sum(p.n_docs for p in parts)
        if not len(keys):
            return cls(keys, counts.astype(np.int64), n_docs)
        order = np.lexsort((keys[:, 1], keys[:, 0]))
        keys, counts = keys[order], counts[order]
        new = np.concatenate(([True], (keys[1:] != keys[:-1]).any(axis=1)))
        starts = np.flatnonzero(new)
        return cls(np.ascontiguousarray(keys[starts]), np.add.reduceat(counts.astype(np.int64), starts), n_docs)

    def lookup(self, query: np.ndarray) -> np.ndarray:
        """The count of each ``(m, 2)`` query key (0 for a key not held)."""
        out = np.zeros(len(query), dtype=np.int64)
        if not len(self.keys) or not len(query):
            return out
        first, second = self.keys[:, 0], self.keys[:, 1]
        start = np.searchsorted(first, query[:, 0], side="left")
        stop = np.searchsorted(first, query[:, 0], side="right")
        at = np.minimum(start, len(first) - 1)
        one = (stop - start == 1) & (second[at] == query[:, 1])
        out[one] = self.counts[at[one]]
        for q in np.flatnonzero(stop - start > 1):  # lane 0 shared by several keys: about never
            lo, hi = int(start[q]), int(stop[q])
            j = lo + int(np.searchsorted(second[lo:hi], query[q, 1]))
            if j < hi and second[j] == query[q, 1]:
                out[q] = self.counts[j]
        return out
