"""A word-level tokenizer built offline with the HF ``tokenizers`` library, for tiny MM-SeR models.

Lower-cases, splits on whitespace and punctuation, and maps each word of the training captions (plus the
refinement prompt and the perturber's words) to an id; unknown words map to ``<unk>``. Wrapped as a
``PreTrainedTokenizerFast`` so it saves and loads with the model checkpoint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def build_word_tokenizer(texts: Iterable[str], min_count: int = 1, max_size: int | None = None
                         ) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is every word seen ``min_count`` times (most frequent first).

    Ids: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3, then words by decreasing count (ties alphabetical).
    """
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre = pre_tokenizers.Whitespace()
    counts: Counter[str] = Counter()
    for text in texts:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] += 1
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIAL_TOKENS))]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for w in words:
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.normalizer = normalizer
    core.pre_tokenizer = pre
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, model_max_length=512, **SPECIAL_TOKENS)
