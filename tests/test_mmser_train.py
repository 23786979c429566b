"""MM-SeR training on tiny random configurations: the loss falls, all phases run, a killed run resumes exactly."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmser_helpers import SMALL, one_thread, tiny_model  # noqa: E402

from capeval.baselines.mmser.data import PixelCache, load_captioned_images  # noqa: E402
from capeval.baselines.mmser.train import PhaseSchedule, TrainOptions, load_model, train  # noqa: E402
from capeval.baselines.shapes import generate_shapes  # noqa: E402
from capeval.errors import CapevalError, InputError  # noqa: E402

_threads = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    images_dir, refs = generate_shapes(root, 8, seed=0, split="train", size=32)
    return images_dir, refs


def _options(shapes, out, **kw) -> TrainOptions:
    images_dir, refs = shapes
    tiny = {k: v for k, v in SMALL.items()}
    base = dict(images=str(images_dir), captions=str(refs), output_dir=str(out), stage="all", tiny=True,
                tiny_overrides=tiny, pretrain=PhaseSchedule(1, 1e-3, 3), finetune=PhaseSchedule(1, 1e-3, 4),
                refine=PhaseSchedule(1, 1e-3, 4), batch_size=8, save_every=2, log_every=1, threads=1,
                train_vision=True)
    base.update(kw)
    return TrainOptions(**base)


def test_a_few_steps_lower_both_losses(shapes):
    images_dir, refs = shapes
    model, _, proc = tiny_model(seed=0)
    data = load_captioned_images(images_dir, refs)
    pixels = PixelCache(model.config.image_size, model.config.image_mean, model.config.image_std)
    px = pixels.batch(data.paths)
    targets = [caps[0] for caps in data.captions]
    initials = [caps[1] for caps in data.captions]
    init_batch = proc.initial_batch(targets)
    ref_batch = proc.refine_batch(initials, targets)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        feats = model.encode_images(px)
        loss = model(features=feats, **init_batch).loss + model(features=feats, **ref_batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    model.eval()
    with torch.no_grad():
        feats = model.encode_images(px)
        final_init = model(features=feats, **init_batch).loss.item()
        final_ref = model(features=feats, **ref_batch).loss.item()
    assert final_init + final_ref < 0.5 * first, (first, final_init, final_ref)


def test_all_phases_write_models_logs_and_checkpoints(shapes, tmp_path):
    logs = []
    final = train(_options(shapes, tmp_path / "run"), on_log=logs.append)
    assert final == tmp_path / "run" / "stage2-refine" / "final"
    assert [r["phase"] for r in logs] == ["stage1-pretrain"] * 3 + ["stage1-finetune"] * 4 + ["stage2-refine"] * 4
    assert all({"refine_loss", "initial_loss"} <= set(r) for r in logs if r["phase"] == "stage2-refine")
    for phase in ("stage1-pretrain", "stage1-finetune", "stage2-refine"):
        assert (tmp_path / "run" / phase / "final" / "config.json").is_file()
        assert (tmp_path / "run" / phase / "final" / "tokenizer.json").is_file()
        assert (tmp_path / "run" / phase / "checkpoint-2" / "trainer_state.pt").is_file()
        assert len((tmp_path / "run" / phase / "log.jsonl").read_text().splitlines()) >= 3
    opts = json.loads((tmp_path / "run" / "train_options.json").read_text())
    assert opts["stage"] == "all" and opts["tiny"] is True
    # Stage 1 pretraining touches only the connector (and the vision encoder with --train-vision); the LM
    # changes in the fine-tuning phase; stage 2 leaves the connector and the vision encoder alone.
    pre, _ = load_model(tmp_path / "run" / "stage1-pretrain" / "final")
    fin, _ = load_model(tmp_path / "run" / "stage1-finetune" / "final")
    ref, _ = load_model(tmp_path / "run" / "stage2-refine" / "final")

    def same(a, b, part):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        return all(torch.equal(sa[k], sb[k]) for k in sa)

    assert not same(pre, fin, "language_model") and same(pre, fin, "ser_connector")
    assert same(fin, ref, "connector") and same(fin, ref, "vision_model")
    assert not same(fin, ref, "ser_connector") and not same(fin, ref, "language_model")


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_weights(shapes, tmp_path):
    full = train(_options(shapes, tmp_path / "full", stage="1"))

    def kill(row):
        if row["phase"] == "stage1-finetune" and row["step"] == 3:
            raise _Killed

    with pytest.raises(_Killed):
        train(_options(shapes, tmp_path / "killed", stage="1"), on_log=kill)
    assert (tmp_path / "killed" / "stage1-finetune" / "checkpoint-2").is_dir()
    assert not (tmp_path / "killed" / "stage1-finetune" / "final").exists()
    resumed_logs = []
    # The resumed half loads images in a DataLoader worker process: the same data, in the same order.
    resumed = train(_options(shapes, tmp_path / "killed", stage="1", resume=True, num_workers=1),
                    on_log=resumed_logs.append)
    assert [r["step"] for r in resumed_logs] == [3, 4]  # pretraining was done; fine-tuning went on from step 2
    a, _ = load_model(full)
    b, _ = load_model(resumed)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_stage2_needs_a_stage1_model(shapes, tmp_path):
    with pytest.raises(CapevalError, match="--init"):
        train(_options(shapes, tmp_path / "s2", stage="2"))


def test_missing_image_is_named(tmp_path):
    (tmp_path / "imgs").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"a": ["a cat"], "b": ["a dog"]}))
    with pytest.raises(InputError, match="'b'.*no image"):
        load_captioned_images(tmp_path / "imgs", refs)


def test_cli_train_then_caption(shapes, tmp_path, capsys):
    from capeval.cli import main
    from capeval.io.readers import read_candidates

    images_dir, refs = shapes
    tiny = [f"--tiny-option={k}={v}" for k, v in SMALL.items()]
    main(["baseline", "train", "--images", str(images_dir), "--captions", str(refs), "--out",
          str(tmp_path / "m"), "--tiny", *tiny, "--max-steps", "2", "--batch-size", "8", "--threads", "1",
          "--finetune-lr", "1e-3", "--train-vision", "--quiet"])
    ckpt = tmp_path / "m" / "stage2-refine" / "final"
    assert f"model: {ckpt}" in capsys.readouterr().out
    out, init = tmp_path / "refined.json", tmp_path / "single.json"
    main(["caption", "--model", "mmser", "--checkpoint", str(ckpt), "--images", str(images_dir), "-o", str(out),
          "--initial-out", str(init), "--batch-size", "3", "--num-beams", "2", "--max-new-tokens", "6", "-q"])
    rows = json.loads(out.read_text())
    assert len(rows) == 8 and {"image_id", "caption", "initial_caption"} <= set(rows[0])
    assert [r["initial_caption"] for r in rows] == [r["caption"] for r in json.loads(init.read_text())]
    assert set(read_candidates(out)[None].captions) == {f"train_{i:05d}" for i in range(8)}
    main(["caption", "--checkpoint", str(ckpt), "--images", str(images_dir), "-o", str(out), "--no-refine", "-q"])
    assert all("refined_caption" not in r for r in json.loads(out.read_text()))
    main(["caption", "--model", "oneshape", "--images", str(images_dir), "-o", str(out)])
    assert all(len(r["caption"].split()) == 3 for r in json.loads(out.read_text()))
    with pytest.raises(SystemExit) as exc:
        main(["caption", "--checkpoint", str(tmp_path / "nope"), "--images", str(images_dir), "-o", str(out)])
    assert exc.value.code == 2 and "not an MM-SeR checkpoint" in capsys.readouterr().err


def test_stage2_with_the_llm_perturber(shapes, tmp_path):
    pytest.importorskip("aiohttp")
    from capeval.judges.faultserver import FaultServer

    stage1 = train(_options(shapes, tmp_path / "s1", stage="1", pretrain=PhaseSchedule(1, 1e-3, 1),
                            finetune=PhaseSchedule(1, 1e-3, 1)))

    def swap(payload):
        caption = payload["messages"][-1]["content"].split("Caption: ", 1)[1].split("\n", 1)[0]
        return caption.replace("small", "large", 1) if "small" in caption else "no"

    with FaultServer(responder=swap) as server:
        judge = {"judge_model": "stub", "judge_base_url": server.base_url, "cache_dir": str(tmp_path)}
        train(_options(shapes, tmp_path / "s2", stage="2", init=str(stage1), perturber="llm",
                       judge_options=judge, refine=PhaseSchedule(1, 1e-3, 2)))
        asked = server.state.requests
    made = json.loads((tmp_path / "s2" / "stage2-refine" / "llm_perturbations.json").read_text())
    refs = {c for caps in load_captioned_images(*shapes).captions for c in caps}
    assert asked == len(refs)
    assert made["edits"] and all(v == k.replace("small", "large", 1) for k, v in made["edits"].items())
    assert made["failures"] == sum("small" not in c for c in refs)


def test_bf16_and_gradient_accumulation(shapes, tmp_path):
    logs = []
    train(_options(shapes, tmp_path / "acc", stage="1", pretrain=PhaseSchedule(1, 1e-3, 1),
                   finetune=PhaseSchedule(1, 1e-3, None), batch_size=4, grad_accum=2, precision="bf16"),
          on_log=logs.append)
    fine = [r for r in logs if r["phase"] == "stage1-finetune"]
    # 40 captions / batch 4 = 10 micro-batches per epoch = 5 optimizer steps with 2 accumulated each.
    assert [r["step"] for r in fine] == [1, 2, 3, 4, 5] and fine[-1]["total_steps"] == 5
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in fine)


def test_pretrained_parts_from_local_folders(shapes, tmp_path):
    """The user path (no --tiny): a vision encoder and a causal LM with its tokenizer, from folders."""
    from transformers import CLIPVisionModel, OPTConfig, OPTForCausalLM

    model, tok, _ = tiny_model()
    CLIPVisionModel(model.config.vision_config).save_pretrained(tmp_path / "vision")
    lm = OPTForCausalLM(OPTConfig(vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                  num_attention_heads=2, max_position_embeddings=128, word_embed_proj_dim=32,
                                  pad_token_id=0, bos_token_id=2, eos_token_id=3))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    final = train(_options(shapes, tmp_path / "run", stage="1", tiny=False, vision=str(tmp_path / "vision"),
                           text=str(tmp_path / "lm"), pretrain=PhaseSchedule(1, 1e-3, 1),
                           finetune=PhaseSchedule(1, 1e-3, 1)))
    loaded, _ = load_model(final)
    assert loaded.config.vision_name_or_path == str(tmp_path / "vision")
    assert loaded.config.ser_feature_layers == [2, 3]  # 13, 18, 23 of 24 scaled to a 4-layer encoder


def test_hub_ids_fail_fast_offline(shapes, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CapevalError, match="hub is unreachable"):
        train(_options(shapes, tmp_path / "hub", stage="1", tiny=False, vision="someone/not-cached-vision"))
