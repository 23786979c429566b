"""CIDEr-D (Vedantam et al., 2015) recomputed on bootstrap resamples, vectorised with sparse n-gram matrices.

pycocoevalcap's CIDEr-D takes document frequencies (DF) and the log corpus size from the references of the
images it scores, so a resample that draws an image twice counts its references twice. Here a resample is a
row of image multiplicities ``w``: ``DF = w @ incidence`` (images x n-grams), ``N = sum(w)``,
``idf = log N - log max(1, DF)``. Because ``idf >= 0``, every quantity of the per-pair cosine is linear in
``idf**2``: ``sum_g min(tf_c, tf_r) * tf_r * idf_g**2`` over the norms ``sqrt(sum_g tf**2 * idf_g**2)``, so
all resamples are sparse-matrix products with an ``(n-grams x resamples)`` matrix of ``idf**2``.
Arithmetic follows ``pycocoevalcap.cider.cider_scorer`` exactly, including its length term (the number of
bigrams, ``max(len - 1, 0)``) in the Gaussian penalty with sigma 6 and the final factor 10.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse

ORDER = 4
SIGMA = 6.0


def ngram_counts(sentence: str, n: int = ORDER) -> Counter[str]:
    """n-gram counts (orders 1..n) of a tokenised sentence, n-grams as space-joined strings."""
    words = sentence.split()
    return Counter(" ".join(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def _resize(matrix: sparse.csr_matrix, columns: int) -> sparse.csr_matrix:
    """The same matrix with ``columns`` columns (the vocabulary grew after it was built)."""
    matrix = matrix.tocsr()
    return sparse.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], columns))


def _length(sentence: str) -> int:
    # pycocoevalcap's "length" is the number of bigrams (its counts2vec sums term frequencies where n == 1).
    return max(len(sentence.split()) - 1, 0)


class CiderResampler:
    """CIDEr-D of several captioners on the same images, for any image multiplicities.

    Args:
        references: tokenised references per image (``references[i]`` is image ``i``'s list).
        candidates: ``{captioner: [tokenised caption per image]}``.

    Example:
        >>> c = CiderResampler([["a cat on a mat", "a cat"], ["a dog runs"]], {"s": ["a cat on a mat", "a dog"]})
        >>> round(float(c.corpus(np.ones((1, 2)))["s"][0]), 6) == round(float(c.per_image()["s"].mean()), 6)
        True
    """

    def __init__(self, references: Sequence[Sequence[str]], candidates: Mapping[str, Sequence[str]],
                 sigma: float = SIGMA) -> None:
        self.n_images = len(references)
        self.sigma = sigma
        self.vocab: dict[str, int] = {}
        # pairs (image, reference) are rows p; the order-split matrices have rows p * ORDER + order.
        self.pair_image = np.repeat(np.arange(self.n_images), [len(r) for r in references]).astype(np.int64)
        n_pairs = len(self.pair_image)
        flat_refs = [r for refs in references for r in refs]
        ref_tf = self._tf_matrix(flat_refs)  # (P*ORDER, G) term frequencies
        cand_tfs = {}
        for name, cands in candidates.items():
            if len(cands) != self.n_images:
                raise ValueError(f"{name}: {len(cands)} candidates for {self.n_images} images")
            cand_tfs[name] = self._tf_matrix(cands)
        g_count = len(self.vocab)
        self.vocab_size = g_count
        ref_tf = _resize(ref_tf, g_count)
        # document frequency incidence: image i contains n-gram g in any of its references
        image_of_row = sparse.csr_matrix(
            (np.ones(n_pairs * ORDER), (np.repeat(self.pair_image, ORDER), np.arange(n_pairs * ORDER))),
            shape=(self.n_images, n_pairs * ORDER))
        self.incidence = (image_of_row @ ref_tf).sign().tocsr()
        self.ref_sq = ref_tf.power(2).tocsr()
        # score_i = 10 / (ORDER * nrefs_i) * sum over its pairs and orders of the penalised cosines.
        nrefs = np.bincount(self.pair_image, minlength=self.n_images).astype(np.float64)
        self.aggregate = image_of_row.multiply((10.0 / (ORDER * np.maximum(nrefs, 1.0)))[:, None]).tocsr()
        # row (p, order) of a pair-level matrix takes row (image(p), order) of an image-level one
        pair_rows = (self.pair_image[:, None] * ORDER + np.arange(ORDER)[None, :]).ravel()
        self._expand = sparse.csr_matrix((np.ones(n_pairs * ORDER), (np.arange(n_pairs * ORDER), pair_rows)),
                                         shape=(n_pairs * ORDER, self.n_images * ORDER))
        ref_len = np.array([_length(r) for r in flat_refs], dtype=np.float64)
        self.captioners = list(candidates)
        self._cand: dict[str, tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]] = {}
        for name, cands in candidates.items():
            tf = _resize(cand_tfs[name], g_count)
            tf_pairs = (self._expand @ tf).tocsr()
            # min(tf_c, tf_r) * tf_r: the clipped numerator of pycocoevalcap's sim(), per n-gram
            numer = tf_pairs.minimum(ref_tf).multiply(ref_tf).tocsr()
            lengths = np.array([_length(c) for c in cands], dtype=np.float64)
            delta = lengths[self.pair_image] - ref_len
            penalty = np.exp(-(delta ** 2) / (2 * self.sigma ** 2))
            self._cand[name] = (tf.power(2).tocsr(), numer, penalty)

    def _tf_matrix(self, sentences: Sequence[str]) -> sparse.csr_matrix:
        """``(len(sentences) * ORDER, |vocab|)`` n-gram counts, row ``k * ORDER + order``; grows the vocabulary."""
        rows, cols, vals = [], [], []
        vocab = self.vocab
        for k, sentence in enumerate(sentences):
            for g, tf in ngram_counts(sentence).items():
                j = vocab.get(g)
                if j is None:
                    j = vocab[g] = len(vocab)
                rows.append(k * ORDER + g.count(" "))
                cols.append(j)
                vals.append(float(tf))
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(sentences) * ORDER, len(vocab)))

    def _idf_sq(self, weights: np.ndarray) -> np.ndarray:
        """``(n-grams, B)`` squared idf for each resample row of ``weights``."""
        df = np.asarray(self.incidence.T @ weights.T)  # (G, B)
        log_n = np.log(weights.sum(axis=1))  # (B,)
        idf = log_n[None, :] - np.log(np.maximum(df, 1.0))
        return idf * idf

    def _scores(self, idf_sq: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image scores ``(n_images, B)`` per captioner for a block of squared idfs."""
        ref_norm = np.sqrt(np.asarray(self.ref_sq @ idf_sq))  # (P*ORDER, B)
        out = {}
        for name, (cand_sq, numer, penalty) in self._cand.items():
            cand_norm = np.asarray(self._expand @ np.sqrt(np.asarray(cand_sq @ idf_sq)))  # per pair-order row
            num = np.asarray(numer @ idf_sq)
            denom = cand_norm * ref_norm
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.where(denom != 0, num / np.where(denom != 0, denom, 1.0), num)
            cos *= np.repeat(penalty, ORDER)[:, None]
            out[name] = np.asarray(self.aggregate @ cos)
        return out

    def per_image(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-image CIDEr-D for one set of multiplicities (default: every image once)."""
        w = np.ones((1, self.n_images)) if weights is None else np.asarray(weights, dtype=np.float64)[None, :]
        return {k: v[:, 0] for k, v in self._scores(self._idf_sq(w)).items()}

    def corpus(self, weights: np.ndarray, block: int | None = None) -> dict[str, np.ndarray]:
        """Corpus CIDEr-D ``(B,)`` per captioner: the multiplicity-weighted mean of per-image scores, with
        document frequencies from the resampled images' references."""
        weights = np.asarray(weights, dtype=np.float64)
        n_boot = weights.shape[0]
        if block is None:  # keep each dense (n-grams or pair-orders x block) matrix around 16 MB
            block = int(max(1, min(n_boot, 2_000_000 // max(1, self.vocab_size, self.ref_sq.shape[0]))))
        out = {name: np.empty(n_boot) for name in self._cand}
        for start in range(0, n_boot, block):
            w = weights[start:start + block]
            scores = self._scores(self._idf_sq(w))
            totals = w.sum(axis=1)
            for name, s in scores.items():
                out[name][start:start + block] = np.einsum("bi,ib->b", w, s) / totals
        return out
