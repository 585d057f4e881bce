"""nox sessions: tests, lint, demo. Each installs the package with scripts/install.sh into nox's venv."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session) -> None:
    session.run("bash", "scripts/install.sh", session.virtualenv.location, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (the same command CI runs)."""
    _install(session)
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and scripts."""
    session.install("ruff==0.17.5")
    session.run("ruff", "check", "poserepro", "tests", "scripts", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: synthesise, train the smoke TransPose-R, evaluate."""
    _install(session)
    session.run("poserepro", "demo", *session.posargs)
