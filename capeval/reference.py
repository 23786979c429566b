"""pycocoevalcap called directly, as COCOEvalCap.evaluate() does (less SPICE): reference numbers for parity checks."""

from __future__ import annotations

import contextlib
import io

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer


def tokenize(refs: dict[str, list[str]], cands: dict[str, str]):
    """PTB-tokenise as COCOEvalCap does: {id: [{"caption": ...}]} dicts."""
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": cands[k]}] for k in refs})
    return gts, res


def score_direct(refs: dict[str, list[str]], cands: dict[str, str], meteor: Meteor | None = None):
    """{metric_key: (corpus, [per-sample in refs order])} from pycocoevalcap's scorers."""
    gts, res = tokenize(refs, cands)
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        corpus, per = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        out[f"bleu_{k + 1}"] = (corpus[k], list(per[k]))
    m = meteor or Meteor()
    corpus, per = m.compute_score(gts, res)
    out["meteor"] = (corpus, list(per))
    corpus, per = Rouge().compute_score(gts, res)
    out["rouge_l"] = (corpus, list(per))
    corpus, per = Cider().compute_score(gts, res)
    out["cider"] = (corpus, list(per))
    return out
