"""MM-SeR model on tiny random configurations: tensor shapes, both passes, generation, save/load, swapping parts."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmser_helpers import SMALL, one_thread, tiny_model  # noqa: E402
from transformers import CLIPVisionModel, GPT2Config, OPTConfig, OPTForCausalLM, SiglipVisionConfig  # noqa: E402

from capeval.baselines.mmser.configuration import MMSeRConfig, tiny_config  # noqa: E402
from capeval.baselines.mmser.modeling import MMSeRForCaptioning  # noqa: E402
from capeval.baselines.mmser.processing import IGNORE_INDEX, MMSeRProcessor  # noqa: E402
from capeval.baselines.mmser.train import load_model  # noqa: E402

CAPTIONS = ["a small red circle", "a large blue square to the left of a small green triangle", "a", "two shapes"]
PATCHES = (SMALL["image_size"] // SMALL["patch_size"]) ** 2


_threads = pytest.fixture(scope="module", autouse=True)(one_thread)


def _pixels(n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, SMALL["image_size"], SMALL["image_size"], generator=g)


def _perturb_output_layer(model, seed: int = 3) -> None:
    """Give the zero-initialised SeR output layer random weights (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.ser_connector.out[-1].parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_default_config_is_the_papers_model():
    cfg = MMSeRConfig()
    v, t = cfg.vision_config, cfg.text_config
    assert (v.model_type, v.hidden_size, v.num_hidden_layers, v.image_size, v.patch_size) == (
        "clip_vision_model", 1024, 24, 336, 14)
    assert (t.model_type, t.hidden_size, t.num_hidden_layers, t.vocab_size) == ("opt", 768, 12, 50272)
    assert cfg.vision_feature_layer == -2 and cfg.vision_num_prefix_tokens == 1
    assert cfg.ser_feature_layers == [13, 18, 23]
    assert cfg.connector_layers == 4
    assert (cfg.vision_name_or_path, cfg.text_name_or_path) == ("openai/clip-vit-large-patch14-336",
                                                                "facebook/opt-125m")


def test_config_rejects_missing_layers_and_bad_prompt():
    with pytest.raises(ValueError, match="vision layer 30"):
        MMSeRConfig(ser_feature_layers=(13, 30))
    with pytest.raises(ValueError, match="caption"):
        MMSeRConfig(refine_prompt="no placeholder")


def test_connector_is_four_linear_layers_with_gelu():
    model, _, _ = tiny_model()
    layers = list(model.connector.net)
    assert [type(m).__name__ for m in layers] == ["Linear", "GELU", "Linear", "GELU", "Linear", "GELU", "Linear"]


def test_tensor_shapes_of_every_path():
    model, tok, proc = tiny_model()
    cfg = model.config
    px = _pixels()
    feats = model.encode_images(px)
    assert set(feats) == {cfg.vision_feature_layer, *cfg.ser_feature_layers} == {-2, 1, 2, 3}
    for f in feats.values():  # the class token is dropped: patch tokens only
        assert f.shape == (4, PATCHES, SMALL["vision_width"])
    # The penultimate layer's patches are hidden state -2 of the encoder.
    hidden = model.vision_model(pixel_values=px, output_hidden_states=True).hidden_states
    assert torch.equal(feats[-2], hidden[-2][:, 1:])
    vis = model.initial_visual_tokens(feats)
    assert vis.shape == (4, PATCHES, SMALL["text_width"])
    ids, mask = proc.pad_ids([proc.caption_ids(c) for c in CAPTIONS])
    ref_vis = model.refine_visual_tokens(feats, ids, mask)
    assert ref_vis.shape == (4, PATCHES, SMALL["text_width"])

    batch = proc.initial_batch(CAPTIONS)
    out = model(pixel_values=px, **batch)
    assert out.logits.shape == (4, batch["input_ids"].shape[1], len(tok))
    assert out.visual_tokens.shape == (4, PATCHES, SMALL["text_width"])
    assert torch.isfinite(out.loss)

    rbatch = proc.refine_batch(["a red circle", "a blue square", "", "three shapes"], CAPTIONS)
    rout = model(pixel_values=px, **rbatch)
    assert rout.logits.shape == (4, rbatch["input_ids"].shape[1], len(tok))
    assert rbatch["initial_ids"].shape[0] == 4 and torch.isfinite(rout.loss)


def test_loss_covers_the_caption_and_eos_only():
    _, tok, proc = tiny_model()
    batch = proc.refine_batch(["a red circle"], ["a blue square"])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    prompt = proc.refine_prompt(proc.caption_ids("a red circle"))
    assert ids[: len(prompt)] == prompt
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt):] == proc.caption_ids("a blue square") + [tok.eos_token_id]
    assert tok.decode(prompt[1:]) == "initial caption : a red circle refined caption :"


def test_loss_equals_manual_cross_entropy():
    model, _, proc = tiny_model()
    batch = proc.initial_batch(CAPTIONS[:2])
    out = model(pixel_values=_pixels(2), **batch)
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                               ignore_index=IGNORE_INDEX)
    # The LM also predicts the first text token from the last visual token; that target is the prompt (ignored).
    assert torch.allclose(out.loss, manual, atol=1e-5)


def test_ser_connector_starts_residual_and_reads_the_caption():
    model, _, proc = tiny_model()
    feats = model.encode_images(_pixels(2))
    ids, mask = proc.pad_ids([proc.caption_ids("a red circle"), proc.caption_ids("a blue square")])
    # Zero-initialised output layer: the refinement pass starts from the stage-1 visual tokens.
    assert torch.allclose(model.refine_visual_tokens(feats, ids, mask), model.initial_visual_tokens(feats))
    _perturb_output_layer(model)
    a = model.refine_visual_tokens(feats, ids, mask)
    ids2, mask2 = proc.pad_ids([proc.caption_ids("a green triangle"), proc.caption_ids("a blue square")])
    b = model.refine_visual_tokens(feats, ids2, mask2)
    assert not torch.allclose(a[0], b[0])  # the caption changes the visual tokens of its image
    assert torch.allclose(a[1], b[1], atol=1e-6)  # and only of its image
    # Padding the caption (masked) changes nothing.
    ids3, mask3 = proc.pad_ids([proc.caption_ids("a red circle"), proc.caption_ids("a blue square") + [0, 0]])
    ids3[1, -2:] = proc.pad
    mask3[1, -2:] = 0
    assert torch.allclose(model.refine_visual_tokens(feats, ids3, mask3)[1], a[1], atol=1e-5)


def _manual_greedy(model, visual, prompt, steps, eos):
    embed = model.language_model.get_input_embeddings()
    seq = torch.cat([visual[None], embed(torch.tensor([prompt]))], dim=1)
    out = []
    for _ in range(steps):
        logits = model.language_model(inputs_embeds=seq).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt == eos:
            break
        out.append(nxt)
        seq = torch.cat([seq, embed(torch.tensor([[nxt]]))], dim=1)
    return out


def test_generate_greedy_matches_manual_decoding_and_is_batch_invariant():
    model, _, proc = tiny_model(seed=5)
    feats = model.encode_images(_pixels(3))
    vis = model.initial_visual_tokens(feats)
    batched = model.generate_ids(vis, [proc.initial_prompt()] * 3, max_new_tokens=6)
    for i in range(3):
        assert batched[i] == _manual_greedy(model, vis[i], proc.initial_prompt(), 6, proc.eos)
        assert batched[i] == model.generate_ids(vis[i:i + 1], [proc.initial_prompt()], max_new_tokens=6)[0]
    assert all(len(ids) <= 6 for ids in batched)


def test_refinement_pass_generates_with_prompts_of_different_lengths():
    model, _, proc = tiny_model(seed=7)
    _perturb_output_layer(model)
    feats = model.encode_images(_pixels(3))
    initials = [proc.caption_ids(c) for c in ("a red circle", "a large blue square to the left of a circle", "")]
    ids, mask = proc.pad_ids(initials)
    vis = model.refine_visual_tokens(feats, ids, mask)
    prompts = [proc.refine_prompt(i) for i in initials]
    batched = model.generate_ids(vis, prompts, max_new_tokens=5)
    for i in range(3):  # left padding makes the batch give each image's own result
        single_vis = model.refine_visual_tokens({k: v[i:i + 1] for k, v in feats.items()},
                                                *proc.pad_ids([initials[i]]))
        assert torch.allclose(single_vis, vis[i:i + 1], atol=1e-5)
        assert batched[i] == _manual_greedy(model, vis[i], prompts[i], 5, proc.eos)
    beams = model.generate_ids(vis, prompts, max_new_tokens=5, num_beams=3)
    assert len(beams) == 3 and all(len(b) <= 5 for b in beams)


def test_caption_batch_returns_initial_and_refined_text():
    from capeval.baselines.mmser.inference import caption_batch

    model, _, proc = tiny_model(seed=2)
    rows = caption_batch(model, proc, _pixels(2), refine=True, max_new_tokens=4)
    assert [set(r) for r in rows] == [{"initial", "refined"}] * 2
    assert all(isinstance(r["refined"], str) and len(r["refined"].split()) <= 4 for r in rows)
    single = caption_batch(model, proc, _pixels(2), refine=False, max_new_tokens=4)
    assert [set(r) for r in single] == [{"initial"}] * 2
    assert [r["initial"] for r in single] == [r["initial"] for r in rows]


def test_save_load_round_trip(tmp_path):
    model, tok, proc = tiny_model(seed=4)
    _perturb_output_layer(model)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, tok2 = load_model(tmp_path)
    assert isinstance(loaded, MMSeRForCaptioning)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.config.ser_feature_layers == model.config.ser_feature_layers
    assert loaded.config.refine_prompt == model.config.refine_prompt
    assert tok2("a red circle", add_special_tokens=False)["input_ids"] == proc.caption_ids("a red circle")
    px = _pixels(2)
    batch = proc.refine_batch(["a red circle", "a square"], ["a blue square", "a circle"])
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=px, **batch).logits, loaded.eval()(pixel_values=px, **batch).logits)


def test_from_components_loads_local_pretrained_parts(tmp_path):
    tok_model, tok, _ = tiny_model()
    vision = CLIPVisionModel(tok_model.config.vision_config)
    lm = OPTForCausalLM(OPTConfig(vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                  num_attention_heads=2, max_position_embeddings=128, word_embed_proj_dim=32,
                                  pad_token_id=0, bos_token_id=2, eos_token_id=3))
    vision.save_pretrained(tmp_path / "vision")
    lm.save_pretrained(tmp_path / "lm")
    model = MMSeRForCaptioning.from_components(str(tmp_path / "vision"), str(tmp_path / "lm"),
                                               ser_feature_layers=(1, 2, 3), ser_hidden_size=32, ser_num_heads=2)
    assert model.config.vision_num_prefix_tokens == 1 and model.config.image_size == SMALL["image_size"]
    for k, v in vision.state_dict().items():
        assert torch.equal(model.vision_model.state_dict()[k], v)
    for k, v in lm.state_dict().items():
        assert torch.equal(model.language_model.state_dict()[k], v)


def test_any_vision_encoder_and_causal_lm_by_config():
    """SigLIP (no class token) + GPT-2 instead of CLIP + OPT."""
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                                image_size=32, patch_size=8)
    text = GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=2,
                      eos_token_id=3, pad_token_id=0)
    cfg = MMSeRConfig(vision_config=vision, text_config=text, vision_num_prefix_tokens=0,
                      ser_feature_layers=(1, 2), ser_hidden_size=32, ser_num_heads=2, pad_token_id=0,
                      bos_token_id=2, eos_token_id=3)
    model = MMSeRForCaptioning(cfg)
    assert type(model.vision_model).__name__ == "SiglipVisionModel"
    assert type(model.language_model).__name__ == "GPT2LMHeadModel"
    feats = model.encode_images(_pixels(2))
    assert feats[-2].shape == (2, PATCHES, 32)  # SigLIP has no class token to drop
    ids = torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]])
    out = model(features=feats, input_ids=ids, attention_mask=(ids != 0).long(), labels=ids,
                initial_ids=ids[:, 1:3], initial_attention_mask=torch.ones(2, 2, dtype=torch.long))
    assert out.logits.shape == (2, 4, 40) and torch.isfinite(out.loss)
    assert len(model.generate_ids(out.visual_tokens, [[2], [2, 5]], max_new_tokens=3)) == 2


def test_default_ser_layers_scale_with_the_encoder():
    from capeval.baselines.mmser.configuration import default_ser_layers

    assert default_ser_layers(24) == [13, 18, 23]
    assert default_ser_layers(12) == [6, 9, 11]
    assert default_ser_layers(4) == [2, 3]


def test_tiny_config_reads_three_layers_up_to_the_penultimate():
    cfg = tiny_config(30, vision_layers=4)
    assert cfg.ser_feature_layers == [1, 2, 3] and cfg.vision_feature_layer == -2
    assert isinstance(MMSeRProcessor(tiny_model()[1], cfg).refine_prompt([9]), list)
