"""``capeval baseline`` (shapes data, MM-SeR training) and ``capeval caption`` (captioning a folder of images)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capeval.cli import app
from capeval.errors import CapevalError

baseline_app = typer.Typer(help="The built-in MM-SeR baseline: synthetic shapes data and training.",
                           no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")

CAPTION_MODELS = ("mmser", "oneshape")


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CapevalError(f"--tiny-option must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            raise CapevalError(f"--tiny-option {key} must be an integer, got {value!r}") from None
    return out


@baseline_app.command("shapes")
def shapes_command(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write <split>/images and <split>/references.json."),
    n: int = typer.Option(500, "--n", help="Number of images."),
    split: str = typer.Option("test", "--split", help="Split name (train, val, test, ...)."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed."),
    size: int = typer.Option(64, "--size", help="Image side in pixels."),
) -> None:
    """Generate the synthetic shapes captioning dataset (deterministic for a given seed and split).

    Example:
        capeval baseline shapes --out data/shapes --split train --n 3000
        capeval baseline shapes --out data/shapes --split test --n 500
    """
    from capeval.baselines.shapes import generate_shapes

    images_dir, refs = generate_shapes(out, n, seed=seed, split=split, size=size)
    typer.echo(f"images: {images_dir}\nreferences: {refs}")


@baseline_app.command("train")
def train_command(
    images: Path = typer.Option(..., "--images", help="Folder of training images."),
    captions: Path = typer.Option(..., "--captions", help="Captions: COCO annotations, JSON map, JSONL or CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (one subfolder per phase)."),
    stage: str = typer.Option("all", "--stage", help="1 (pretrain + finetune), 2 (refinement) or all."),
    init: str | None = typer.Option(None, "--init", help="Start from this MM-SeR checkpoint folder."),
    vision: str = typer.Option("openai/clip-vit-large-patch14-336", "--vision", help="Vision encoder (hub id/path)."),
    text: str = typer.Option("facebook/opt-125m", "--text", help="Causal LM (hub id or path)."),
    tiny: bool = typer.Option(False, "--tiny", help="A tiny random-init model with a word-level tokenizer."),
    tiny_option: list[str] = typer.Option([], "--tiny-option", help="tiny_config override KEY=INT (repeatable)."),
    pretrain_epochs: float = typer.Option(1.0, "--pretrain-epochs", help="Stage 1 connector pretraining epochs."),
    pretrain_lr: float = typer.Option(1e-3, "--pretrain-lr"),
    finetune_epochs: float = typer.Option(1.0, "--finetune-epochs", help="Stage 1 connector + LM epochs."),
    finetune_lr: float = typer.Option(2e-5, "--finetune-lr"),
    refine_epochs: float = typer.Option(1.0, "--refine-epochs", help="Stage 2 refinement epochs."),
    refine_lr: float = typer.Option(2e-5, "--refine-lr"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Cap every phase at this many steps."),
    batch_size: int = typer.Option(32, "--batch-size"),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on a GPU that has it), fp32, bf16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    train_vision: bool = typer.Option(False, "--train-vision", help="Also train the vision encoder in stage 1."),
    initial_loss_weight: float = typer.Option(0.5, "--initial-loss-weight",
                                              help="Stage 2: weight of the initial-pass loss."),
    perturb_keep: float = typer.Option(0.15, "--perturb-keep", help="Stage 2: share of unperturbed initials."),
    perturber: str = typer.Option("rule", "--perturber", help="Stage 2 pseudo-initial captions: rule or llm."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="--perturber llm: model name."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="--perturber llm: endpoint URL."),
    save_every: int = typer.Option(500, "--save-every", help="Checkpoint every N steps (0: only final)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoints in --out."),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes for image loading."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Train MM-SeR: stage 1 (connector, then connector + LM) and stage 2 (self-refinement).

    Example:
        capeval baseline train --images data/shapes/train/images --captions data/shapes/train/references.json \\
            --out runs/mmser-tiny --tiny --train-vision --finetune-lr 1e-3 --refine-lr 5e-4 --threads 2
        capeval baseline train --images coco/train2017 --captions captions_train2017.json --out runs/mmser \\
            --batch-size 16 --grad-accum 8 --precision bf16
    """
    from capeval.baselines.mmser.train import PhaseSchedule, TrainOptions, train

    opts = TrainOptions(
        images=str(images), captions=str(captions), output_dir=str(out), stage=stage, init=init,
        vision=vision, text=text, tiny=tiny, tiny_overrides=_parse_overrides(tiny_option),
        pretrain=PhaseSchedule(pretrain_epochs, pretrain_lr, max_steps),
        finetune=PhaseSchedule(finetune_epochs, finetune_lr, max_steps),
        refine=PhaseSchedule(refine_epochs, refine_lr, max_steps),
        batch_size=batch_size, grad_accum=grad_accum, precision=precision, device=device,
        train_vision=train_vision, initial_loss_weight=initial_loss_weight, perturb_keep=perturb_keep,
        perturber=perturber,
        judge_options={k: v for k, v in {"judge_model": judge_model, "judge_base_url": judge_base_url}.items() if v},
        save_every=save_every, resume=resume, seed=seed, threads=threads, num_workers=workers,
    )

    def show(row: dict) -> None:
        losses = " ".join(f"{k}={row[k]:.4f}" for k in row if k.endswith("loss"))
        typer.echo(f"[{row['phase']}] step {row['step']}/{row['total_steps']} {losses} "
                   f"lr={row['lr']:.2e} elapsed={row['elapsed_s']:.0f}s eta={row['eta_s']:.0f}s", err=True)

    final = train(opts, on_log=None if quiet else show)
    typer.echo(f"model: {final}")


@app.command("caption")
def caption_command(
    images: Path = typer.Option(..., "--images", help="Folder of images to caption (id = file stem)."),
    out: Path = typer.Option(..., "--out", "-o", help="COCO results file to write ([{image_id, caption}])."),
    model: str = typer.Option("mmser", "--model", help=f"Captioner: {', '.join(CAPTION_MODELS)}."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="MM-SeR folder (default: bundled tiny)."),
    refine: bool = typer.Option(True, "--refine/--no-refine", help="Run the self-refinement pass."),
    keep_initial: bool = typer.Option(True, "--keep-initial/--no-keep-initial",
                                      help="Also store the initial caption as initial_caption."),
    initial_out: Path | None = typer.Option(None, "--initial-out",
                                            help="Also write the initial captions as their own results file."),
    batch_size: int = typer.Option(16, "--batch-size"),
    num_beams: int = typer.Option(1, "--num-beams", help="1 = greedy; more = beam search."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens"),
    device: str = typer.Option("auto", "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Caption a folder of images and write a COCO results file (refined captions unless --no-refine).

    Example:
        capeval caption --model mmser --images data/shapes/test/images -o refined.json --initial-out single.json
        capeval caption --model mmser --checkpoint runs/mmser/stage2-refine/final --images imgs -o caps.json
        capeval caption --model oneshape --images data/shapes/test/images -o weak.json
    """
    if model not in CAPTION_MODELS:
        raise CapevalError(f"unknown --model {model!r}; choose one of {', '.join(CAPTION_MODELS)}")
    if model == "oneshape":
        from capeval.baselines.oneshape import caption_images_oneshape

        caps = caption_images_oneshape(images)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([{"image_id": k, "caption": v} for k, v in caps.items()], indent=1) + "\n",
                       encoding="utf-8")
        typer.echo(f"wrote {len(caps)} captions to {out}")
        return
    from rich.progress import Progress

    from capeval.baselines.mmser.inference import caption_images, write_coco_results

    with Progress(disable=quiet, transient=True) as progress:
        task = progress.add_task("captioning", total=None)
        captions = caption_images(
            images, checkpoint=checkpoint, refine=refine, batch_size=batch_size, num_beams=num_beams,
            max_new_tokens=max_new_tokens, device=device,
            on_batch=lambda done, total: progress.update(task, completed=done, total=total),
        )
    write_coco_results(captions, out, which="refined" if refine else "initial", keep_both=keep_initial)
    if initial_out is not None:
        write_coco_results(captions, initial_out, which="initial", keep_both=False)
    typer.echo(f"wrote {len(captions)} captions to {out}" + (f" and {initial_out}" if initial_out else ""))
