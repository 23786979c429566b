"""n-gram keys made from words (capeval.metrics.native.ngram_keys): the same n-gram has the same key in every
table, different n-grams differ, and document counts summed over shards equal the whole table's."""

from __future__ import annotations

import random

import numpy as np
import pytest

from capeval.metrics.native import cider_d, encode
from capeval.metrics.native.cider import document_frequency
from capeval.metrics.native.ngram_keys import DocCounts, ngram_keys

WORDS = ["a", "cat", "dog", "sat", "on", "the", "mat", "red", "blue", "big", "small", "runs", ".", ",", "é", "猫"]


def _corpus(seed: int, n: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))

    return [sentence() for _ in range(n)], [[sentence() for _ in range(rng.randint(1, 5))] for _ in range(n)]


def _grams(table) -> list[tuple[str, ...]]:
    """The words of every n-gram id, recovered from the sentences (an independent path to the same n-grams)."""
    words: dict[int, tuple[str, ...]] = {}
    for s, text in enumerate(table.sentences):
        toks = text.split()
        for k in range(4):
            lo, hi = table.row_ptr[s * 4 + k], table.row_ptr[s * 4 + k + 1]
            seen = list(dict.fromkeys(tuple(toks[p:p + k + 1]) for p in range(len(toks) - k)))
            for g, w in zip(table.gram[lo:hi].tolist(), seen, strict=True):
                words[g] = w
    return [words[g] for g in range(table.n_grams)]


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_ngrams_have_equal_keys_across_tables_and_distinct_ones_differ(seed):
    a, b = encode(*_corpus(seed, 200)), encode(*_corpus(seed + 10, 150))
    key_of: dict[tuple[str, ...], tuple[int, int]] = {}
    for table in (a, b):
        for words, key in zip(_grams(table), map(tuple, ngram_keys(table).tolist()), strict=True):
            assert key_of.setdefault(words, key) == key, words
    assert len(set(key_of.values())) == len(key_of)


@pytest.mark.parametrize("cuts", [(0, 300), (0, 1, 120, 299, 300), (0, 50, 100, 150, 200, 250, 300)])
def test_shard_counts_summed_equal_the_whole_tables_and_give_its_cider(cuts):
    cands, refs = _corpus(3, 300)
    whole = encode(cands, refs)
    tables = [encode(cands[lo:hi], refs[lo:hi]) for lo, hi in zip(cuts, cuts[1:], strict=False)]
    keys = [ngram_keys(t) for t in tables]
    total = DocCounts.merge([DocCounts.of_table(t, k) for t, k in zip(tables, keys, strict=True)])
    assert total.n_docs == 300
    assert np.array_equal(total.lookup(ngram_keys(whole)), document_frequency(whole))
    got = np.concatenate([cider_d(t, df=total.lookup(k), n_docs=total.n_docs)
                          for t, k in zip(tables, keys, strict=True)])
    assert np.array_equal(got, cider_d(whole))


def test_lookup_when_keys_share_their_first_lane():
    keys = np.array([[5, 9], [5, 2], [7, 1], [5, 4]], dtype=np.uint64)
    counts = DocCounts.merge([DocCounts(keys, np.array([1, 2, 3, 4]), 3), DocCounts(keys[:1], np.array([10]), 1)])
    query = np.array([[5, 4], [5, 9], [7, 1], [5, 3], [6, 1], [8, 8]], dtype=np.uint64)
    assert counts.lookup(query).tolist() == [4, 11, 3, 0, 0, 0]
    assert counts.n_docs == 4


def test_cider_d_needs_both_df_and_n_docs():
    table = encode(["a cat"], [["a cat sat"]])
    with pytest.raises(ValueError, match="both"):
        cider_d(table, df=document_frequency(table))
    with pytest.raises(ValueError, match="entries"):
        cider_d(table, df=np.zeros(1, dtype=np.int64), n_docs=1)
