"""nox sessions: tests, lint, bench (run in the current environment: `bash scripts/install.sh --dev` first)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (what CI runs)."""
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.run("ruff", "check", "capeval", "tests", "bench", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the reference tools (not part of the tests); prints time ratios and max |diff|."""
    import glob

    for script in sorted(glob.glob("bench/bench_*.py")):
        session.run("python", script, *session.posargs)
