"""Training MM-SeR (Song et al.): stage 1 (connector pretraining, then connector + LM) and stage 2 (refinement).

Phases, each in its own folder under the output directory:

* ``stage1-pretrain``: the MLP connector alone (vision encoder and LM frozen), image -> caption.
* ``stage1-finetune``: connector + LM, image -> caption.
* ``stage2-refine``: SeR-Connector + LM on pseudo-initial captions (references with one entity, attribute or
  relation changed by :class:`~capeval.baselines.perturb.RulePerturber`) -> the reference; the initial-pass loss
  is added with weight ``initial_loss_weight`` so the shared LM keeps writing good first captions.

``train_vision`` also trains the vision encoder in stage 1 (needed when it starts random, as in the tiny shapes
model; the paper keeps a pretrained CLIP frozen). Every phase writes ``checkpoint-STEP/`` folders (model,
tokenizer, optimizer, scheduler, RNG states) and ``final/``; ``resume`` continues from the newest checkpoint and
skips finished phases. bf16 autocast, gradient accumulation and DataLoader workers for GPUs; plain fp32 on CPU.
Preprocessed images stay in memory when they fit in ``cache_images_mb``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from capeval.baselines.mmser.configuration import tiny_config
from capeval.baselines.mmser.data import CaptionedImages, PixelCache, load_captioned_images
from capeval.baselines.mmser.modeling import MMSeRForCaptioning
from capeval.baselines.mmser.processing import MMSeRProcessor
from capeval.baselines.mmser.tokenizer import build_word_tokenizer
from capeval.baselines.perturb import ATTRIBUTE_GROUPS, ENTITY_GROUPS, RELATION_GROUPS, RulePerturber
from capeval.errors import CapevalError

log = logging.getLogger("capeval")

PHASES = {
    "stage1-pretrain": ("connector",),
    "stage1-finetune": ("connector", "lm"),
    "stage2-refine": ("ser", "lm"),
}
STAGES = {"1": ("stage1-pretrain", "stage1-finetune"), "2": ("stage2-refine",),
          "all": ("stage1-pretrain", "stage1-finetune", "stage2-refine")}
STATE_FILE = "trainer_state.pt"


@dataclass
class PhaseSchedule:
    """How long a phase runs and how fast it learns."""

    epochs: float = 1.0
    lr: float = 1e-3
    max_steps: int | None = None


@dataclass
class TrainOptions:
    """Everything one ``capeval baseline train`` run needs; saved as ``train_options.json``."""

    images: str
    captions: str
    output_dir: str
    stage: str = "all"
    init: str | None = None
    vision: str = "openai/clip-vit-large-patch14-336"
    text: str = "facebook/opt-125m"
    tiny: bool = False
    tiny_overrides: dict = field(default_factory=dict)
    pretrain: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(epochs=1.0, lr=1e-3))
    finetune: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(epochs=1.0, lr=2e-5))
    refine: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(epochs=1.0, lr=2e-5))
    batch_size: int = 32
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    precision: str = "auto"
    device: str = "auto"
    train_vision: bool = False
    initial_loss_weight: float = 0.5
    perturber: str = "rule"
    judge_options: dict = field(default_factory=dict)
    perturb_keep: float = 0.15
    max_caption_tokens: int = 64
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 20
    seed: int = 0
    threads: int | None = None
    num_workers: int = 0
    cache_images_mb: int = 2048
    resume: bool = False


def _schedule(opts: TrainOptions, phase: str) -> PhaseSchedule:
    return {"stage1-pretrain": opts.pretrain, "stage1-finetune": opts.finetune, "stage2-refine": opts.refine}[phase]


def _device(opts: TrainOptions) -> torch.device:
    if opts.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(opts.device)


def _autocast_dtype(opts: TrainOptions, device: torch.device) -> torch.dtype | None:
    if opts.precision == "fp32":
        return None
    if opts.precision == "bf16":
        return torch.bfloat16
    if opts.precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    raise CapevalError(f"--precision must be auto, fp32 or bf16, got {opts.precision!r}")


def _tokenizer_texts(data: CaptionedImages, refine_prompt: str) -> list[str]:
    texts = [c for caps in data.captions for c in caps]
    texts.append(refine_prompt.replace("{caption}", " "))
    for groups in (ENTITY_GROUPS, ATTRIBUTE_GROUPS, RELATION_GROUPS):
        texts.extend(" ".join(g) for g in groups)
    return texts


def new_model(opts: TrainOptions, data: CaptionedImages):
    """A fresh model and tokenizer: the tiny random configuration, or pretrained vision + LM parts."""
    if opts.tiny:
        from capeval.baselines.mmser.configuration import DEFAULT_REFINE_PROMPT

        tokenizer = build_word_tokenizer(_tokenizer_texts(data, DEFAULT_REFINE_PROMPT))
        config = tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             **opts.tiny_overrides)
        return MMSeRForCaptioning(config), tokenizer
    from transformers import AutoTokenizer

    from capeval.models.offline import hub_model_available, hub_offline, hub_reachable

    for name in (opts.vision, opts.text):  # decide within seconds, never sit through hub retries
        if not hub_model_available(name):
            raise CapevalError(f"cannot load {name!r}: not a local folder, not in the Hugging Face cache, and "
                               "the hub is unreachable; give local folders with --vision/--text, or use --tiny")
    try:
        with hub_offline(not hub_reachable()):
            model = MMSeRForCaptioning.from_components(opts.vision, opts.text)
            tokenizer = AutoTokenizer.from_pretrained(opts.text)
    except OSError as exc:
        raise CapevalError(f"cannot load the pretrained parts {opts.vision!r} / {opts.text!r} ({exc}); "
                           "without network use local folders, or --tiny") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model(path: str | Path, device: torch.device | str = "cpu"):
    """Model and tokenizer from a folder written by ``save_pretrained`` (a phase's ``final/`` or checkpoint)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CapevalError(f"{path}: not an MM-SeR checkpoint (no config.json)")
    hf_logging.disable_progress_bar()
    model = MMSeRForCaptioning.from_pretrained(path).to(device)
    tok_config = path / "tokenizer_config.json"
    tok_class = None
    if tok_config.is_file():
        tok_class = json.loads(tok_config.read_text(encoding="utf-8")).get("tokenizer_class")
    if tok_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        # A word-level tokenizer saved by transformers 5 ("TokenizersBackend") also loads on 4.x this way.
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def _checkpoints(phase_dir: Path) -> list[Path]:
    found = [p for p in phase_dir.glob("checkpoint-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _PairPixels(torch.utils.data.Dataset):
    """Pixels of the image of each (image, caption) pair, with the pair's index."""

    def __init__(self, pairs: list[tuple[int, str]], paths: list[Path], pixels: PixelCache) -> None:
        self.pairs, self.paths, self.pixels = pairs, paths, pixels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.pixels(self.paths[self.pairs[i][0]]), i


class PhaseTrainer:
    """Runs one phase: data order, optimisation, logging, checkpoints, resume."""

    def __init__(self, opts: TrainOptions, phase: str, model, tokenizer, data: CaptionedImages,
                 pixels: PixelCache, device: torch.device, on_log: Callable[[dict], None] | None = None) -> None:
        self.opts, self.phase, self.model, self.tokenizer, self.data = opts, phase, model, tokenizer, data
        self.pixels, self.device, self.on_log = pixels, device, on_log
        self.dir = Path(opts.output_dir) / phase
        self.proc = MMSeRProcessor(tokenizer, model.config)
        self.perturber = RulePerturber(seed=opts.seed, keep=opts.perturb_keep)
        self.pairs = data.pairs()
        if phase == "stage2-refine" and opts.perturber == "llm":
            self.perturber = self._llm_perturber()
        elif opts.perturber not in ("rule", "llm"):
            raise CapevalError(f"--perturber must be rule or llm, got {opts.perturber!r}")
        sched = _schedule(opts, phase)
        per_epoch = math.ceil(len(self.pairs) / opts.batch_size)
        micro_total = int(math.ceil(per_epoch * sched.epochs))
        self.total_steps = max(1, micro_total // opts.grad_accum)
        if sched.max_steps is not None:
            self.total_steps = min(self.total_steps, sched.max_steps)
        self.per_epoch = per_epoch
        parts = list(PHASES[phase])
        if opts.train_vision and phase.startswith("stage1"):
            parts.append("vision")
        model.set_trainable(parts)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=sched.lr, weight_decay=opts.weight_decay)
        warmup = max(1, int(opts.warmup_ratio * self.total_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(self.total_steps, warmup))
        self.autocast = _autocast_dtype(opts, device)
        self.vision_frozen = "vision" not in parts
        self.step = 0

    def _llm_perturber(self):
        """LLM edits of every reference, made once and kept in ``llm_perturbations.json`` for resumes."""
        from capeval.baselines.llm_perturb import MappedPerturber, llm_perturb

        path = self.dir / "llm_perturbations.json"
        if path.is_file():
            edits = json.loads(path.read_text(encoding="utf-8"))["edits"]
        else:
            if not self.opts.judge_options.get("judge_model"):
                raise CapevalError("--perturber llm needs --judge-model (and --judge-base-url for a local server)")
            made = llm_perturb([c for _, c in self.pairs], self.opts.judge_options, seed=self.opts.seed)
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"edits": made.edits, "failures": made.failures, "usage": made.usage},
                                       indent=1) + "\n", encoding="utf-8")
            edits = made.edits
        log.info("%s: %d LLM-made pseudo-initial captions", self.phase, len(edits))
        return MappedPerturber(edits, self.perturber)

    # -------------------------------------------------------------- data
    def _order(self, epoch: int) -> list[int]:
        rng = np.random.default_rng([self.opts.seed, list(PHASES).index(self.phase), epoch])
        return rng.permutation(len(self.pairs)).tolist()

    def _micro_batches(self, start_micro: int):
        """``(epoch, pairs, keys, pixel_values)`` from global micro-batch ``start_micro`` on (seeded order).

        Pixels come through a DataLoader (``num_workers`` processes when set) that follows the same order.
        """
        bs = self.opts.batch_size

        def index_lists():
            micro = start_micro
            while True:
                epoch, offset = divmod(micro, self.per_epoch)
                yield self._order(epoch)[offset * bs:(offset + 1) * bs]
                micro += 1

        loader = torch.utils.data.DataLoader(
            _PairPixels(self.pairs, self.data.paths, self.pixels), batch_sampler=index_lists(),
            num_workers=self.opts.num_workers, pin_memory=self.device.type == "cuda",
        )
        micro = start_micro
        for pixel_values, idx in loader:
            epoch = micro // self.per_epoch
            idx = idx.tolist()
            yield epoch, [self.pairs[i] for i in idx], [f"{epoch}:{i}" for i in idx], pixel_values
            micro += 1

    # -------------------------------------------------------------- loss
    def _loss(self, pairs: list[tuple[int, str]], keys: list[str], pixel_values: torch.Tensor
              ) -> tuple[torch.Tensor, dict]:
        targets = [c for _, c in pairs]
        pixel_values = pixel_values.to(self.device, non_blocking=True)
        maxlen = self.opts.max_caption_tokens
        if self.vision_frozen:
            with torch.no_grad():
                features = self.model.encode_images(pixel_values)
        else:
            features = self.model.encode_images(pixel_values)
        init_batch = {k: v.to(self.device) for k, v in self.proc.initial_batch(targets, maxlen).items()}
        if self.phase != "stage2-refine":
            loss = self.model(features=features, **init_batch).loss
            return loss, {"loss": loss.item()}
        initials = [self.perturber(t, key) for t, key in zip(targets, keys, strict=True)]
        ref_batch = {k: v.to(self.device) for k, v in self.proc.refine_batch(initials, targets, maxlen).items()}
        refine = self.model(features=features, **ref_batch).loss
        w = self.opts.initial_loss_weight
        if w > 0:
            initial = self.model(features=features, **init_batch).loss
            loss = refine + w * initial
            return loss, {"loss": loss.item(), "refine_loss": refine.item(), "initial_loss": initial.item()}
        return refine, {"loss": refine.item(), "refine_loss": refine.item()}

    # -------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-STEP/`` and drop the oldest ones beyond ``keep_checkpoints``."""
        path = self.dir / f"checkpoint-{self.step}"
        tmp = self.dir / f".tmp-checkpoint-{self.step}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "rng": _rng_state(),
                    "total_steps": self.total_steps}, tmp / STATE_FILE)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        for old in _checkpoints(self.dir)[: -max(1, self.opts.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Restore model weights, optimizer, scheduler, RNG and step from ``path``."""
        loaded = MMSeRForCaptioning.from_pretrained(path)
        self.model.load_state_dict(loaded.state_dict())
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])

    # -------------------------------------------------------------- loop
    def run(self) -> Path:
        """Train to ``total_steps``, save ``final/`` and return its path."""
        opts = self.opts
        self.dir.mkdir(parents=True, exist_ok=True)
        if opts.resume:
            ckpts = _checkpoints(self.dir)
            if ckpts:
                self.load_checkpoint(ckpts[-1])
                log.info("%s: resumed from %s", self.phase, ckpts[-1])
        self.model.to(self.device).train()
        batches = self._micro_batches(self.step * opts.grad_accum)
        log_path = self.dir / "log.jsonl"
        started = time.time()
        start_step = self.step
        window: list[dict] = []
        while self.step < self.total_steps:
            self.optimizer.zero_grad(set_to_none=True)
            stats: dict[str, float] = {}
            epoch = 0
            for _ in range(opts.grad_accum):
                epoch, pairs, keys, pixel_values = next(batches)
                ctx = (torch.autocast(self.device.type, dtype=self.autocast) if self.autocast
                       else torch.autocast(self.device.type, enabled=False))
                with ctx:
                    loss, parts = self._loss(pairs, keys, pixel_values)
                (loss / opts.grad_accum).backward()
                for k, v in parts.items():
                    stats[k] = stats.get(k, 0.0) + v / opts.grad_accum
            if opts.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], opts.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            window.append(stats)
            if self.step % opts.log_every == 0 or self.step == self.total_steps:
                row = {k: round(sum(w[k] for w in window) / len(window), 5) for k in window[0]}
                elapsed = time.time() - started
                rate = (self.step - start_step) / max(elapsed, 1e-9)
                row.update({"phase": self.phase, "step": self.step, "total_steps": self.total_steps,
                            "epoch": epoch, "lr": self.scheduler.get_last_lr()[0], "elapsed_s": round(elapsed, 1),
                            "eta_s": round((self.total_steps - self.step) / max(rate, 1e-9), 1)})
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                if self.on_log:
                    self.on_log(row)
                window = []
            if opts.save_every and self.step % opts.save_every == 0 and self.step < self.total_steps:
                self.save_checkpoint()
        final = self.dir / "final"
        shutil.rmtree(final, ignore_errors=True)
        self.model.save_pretrained(final)
        self.tokenizer.save_pretrained(final)
        return final


def train(opts: TrainOptions, on_log: Callable[[dict], None] | None = None) -> Path:
    """Run the phases of ``opts.stage`` in order; returns the folder of the final model."""
    if opts.stage not in STAGES:
        raise CapevalError(f"--stage must be one of {', '.join(STAGES)}, got {opts.stage!r}")
    if opts.batch_size < 1 or opts.grad_accum < 1:
        raise CapevalError("--batch-size and --grad-accum must be at least 1")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    out = Path(opts.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_options.json").write_text(json.dumps(asdict(opts), indent=2) + "\n", encoding="utf-8")
    data = load_captioned_images(opts.images, opts.captions)
    device = _device(opts)
    phases = STAGES[opts.stage]
    prev_final: Path | None = None
    model = tokenizer = None
    caches: dict[tuple, PixelCache] = {}
    for phase in phases:
        final = out / phase / "final"
        if opts.resume and (final / "config.json").is_file():
            log.info("%s: already finished (%s)", phase, final)
            prev_final, model = final, None
            continue
        if model is None:
            if prev_final is not None:
                model, tokenizer = load_model(prev_final)
            elif opts.init:
                model, tokenizer = load_model(opts.init)
            elif phase == "stage2-refine":
                raise CapevalError("stage 2 starts from a stage-1 model: pass --init PATH (a stage-1 final/ folder)")
            else:
                torch.manual_seed(opts.seed)
                model, tokenizer = new_model(opts, data)
        cfg = model.config
        key = (cfg.image_size, tuple(cfg.image_mean), tuple(cfg.image_std))
        keep = len(data.paths) * 3 * cfg.image_size**2 * 4 <= opts.cache_images_mb * 2**20
        pixels = caches.setdefault(key, PixelCache(*key, keep=keep))
        trainer = PhaseTrainer(opts, phase, model, tokenizer, data, pixels, device, on_log)
        prev_final = trainer.run()
    assert prev_final is not None
    return prev_final
