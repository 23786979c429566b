"""Shared tiny MM-SeR fixtures for the tests (random init, a few hundred thousand parameters)."""

from __future__ import annotations

import torch

from capeval.baselines.mmser.configuration import tiny_config
from capeval.baselines.mmser.modeling import MMSeRForCaptioning
from capeval.baselines.mmser.processing import MMSeRProcessor
from capeval.baselines.mmser.tokenizer import build_word_tokenizer
from capeval.baselines.shapes import vocabulary

SMALL = {"image_size": 32, "patch_size": 8, "vision_width": 32, "vision_layers": 4, "text_width": 32,
         "text_layers": 2, "ser_width": 32, "ser_layers": 1}


def tiny_tokenizer():
    """The word-level tokenizer over the shapes vocabulary and the refinement prompt."""
    return build_word_tokenizer([" ".join(vocabulary()), "initial caption : refined caption :"])


def tiny_model(seed: int = 0, **overrides):
    """``(model, tokenizer, processor)`` for a small random MM-SeR."""
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = tiny_config(len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, **{**SMALL, **overrides})
    model = MMSeRForCaptioning(cfg).eval()
    return model, tok, MMSeRProcessor(tok, cfg)


def one_thread():
    """Generator for a module fixture: torch on one thread (tiny models run slower on more under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
