"""The ``capeval`` command line: thin commands over the library (sqlite-utils style)."""

from __future__ import annotations

import logging
import sys

import typer

from capeval.errors import CapevalError

app = typer.Typer(
    name="capeval",
    help="Caption evaluation and benchmarking. Run `capeval COMMAND --help` for examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _version(value: bool) -> None:
    if value:
        from capeval.version import __version__

        typer.echo(f"capeval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Caption evaluation and benchmarking."""


# Each command module registers itself on `app` when imported. One line per module.
COMMAND_MODULES = [
    "capeval.cli.demo_cmd",
    "capeval.cli.score_cmd",
    "capeval.cli.metrics_cmd",
    "capeval.cli.report_cmd",
    "capeval.cli.check_cmd",
    "capeval.cli.table_cmd",
    "capeval.cli.stats_cmd",
    "capeval.cli.judge_cmd",
    "capeval.cli.proxyqa_cmd",
    "capeval.cli.baseline_cmd",
    "capeval.cli.metaeval_cmd",
    "capeval.cli.evaluate_cmd",
    "capeval.cli.board_cmd",
    "capeval.cli.annotate_cmd",
]


def _register_commands() -> None:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)


_register_commands()

EXIT_USAGE = 2


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("capeval: %(levelname)s: %(message)s"))
    root = logging.getLogger("capeval")
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``capeval`` console script."""
    _configure_logging()
    try:
        rc = app(args=argv, prog_name="capeval", standalone_mode=False)
        # With standalone_mode=False click returns typer.Exit(n)'s code instead of raising it.
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except CapevalError as exc:
        print(f"capeval: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except (typer.Abort, KeyboardInterrupt):
        print("capeval: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
