"""CLI plumbing shared by the commands: the console, one-line errors, run-directory lookup."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer with click installed
    from click.exceptions import ClickException, UsageError

from ..errors import PoseReproError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
STATE: dict[str, Any] = {"debug": os.environ.get("POSEREPRO_DEBUG", "") not in ("", "0")}
F = TypeVar("F", bound=Callable[..., Any])


def _os_error_line(e: OSError) -> str:
    """One line for a file-system error: what failed on which path, and the fix."""
    what = e.strerror or type(e).__name__
    path = f" {e.filename}" if e.filename else ""
    return f"cannot use{path}: {what}; check the path (an existing folder where a file goes, or the reverse?) " \
           "and its permissions"


def handle_errors(fn: F) -> F:
    """Turn :class:`PoseReproError`, file-system errors (``OSError``) and Ctrl-C into one line on stderr and a
    non-zero exit (unless ``--debug``). :class:`App` applies it to every command."""
    if getattr(fn, "_one_line_errors", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PoseReproError as e:
            if STATE["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:
            if STATE["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(_os_error_line(e))}", soft_wrap=True)
            raise typer.Exit(2) from None
        except FloatingPointError as e:
            if STATE["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: the last completed checkpoint is kept; resume with --resume")
            raise typer.Exit(130) from None

    wrapper._one_line_errors = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class OneLineUsageErrors(TyperGroup):
    """A command group whose usage errors (unknown option, bad choice, missing argument, value out of range)
    print as one ``error:`` line naming the command's ``--help``, like every other error, instead of click's
    boxed usage panel."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # help was printed already (no_args_is_help)
                sys.exit(2)
            hint = f"; see `{e.ctx.command_path} --help`" if e.ctx is not None else ""
            err_console.print(f"[bold red]error:[/] {escape(e.format_message().rstrip('.'))}{hint}", soft_wrap=True)
            sys.exit(e.exit_code)
        except ClickException as e:
            err_console.print(f"[bold red]error:[/] {escape(e.format_message())}", soft_wrap=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            err_console.print("[bold red]aborted[/]")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


class App(typer.Typer):
    """A Typer app whose every command is wrapped in :func:`handle_errors`: one-line errors as a class, for
    sub-apps too (``poserepro data ...``), not command by command; usage errors are one line too
    (:class:`OneLineUsageErrors`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", OneLineUsageErrors)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)
        return lambda fn: register(handle_errors(fn))


def runs_root() -> Path:
    """Where run directories go: ``$POSEREPRO_RUNS`` or ``./runs``."""
    return Path(os.environ.get("POSEREPRO_RUNS", "runs"))


def results_dir() -> Path:
    """Where tidy result tables go: ``$POSEREPRO_RESULTS`` or ``./results`` in the current directory (user
    commands never write into an installed package or a checkout they are not run from; a maintainer refreshes
    the committed tables by running from the checkout's root)."""
    return Path(os.environ.get("POSEREPRO_RESULTS", "results"))


def new_run_dir(recipe_name: str) -> Path:
    """``runs/<recipe>/<YYYYmmdd-HHMMSS>`` (a suffix is added if it exists)."""
    base = runs_root() / recipe_name / time.strftime("%Y%m%d-%H%M%S")
    d, i = base, 1
    while d.exists():
        d = base.with_name(f"{base.name}-{i}")
        i += 1
    return d


def run_dir_for(run_dir: Path | None, resume: bool, latest: Callable[[], Path | None], fresh: Callable[[], Path],
                where: str) -> Path:
    """The run directory of ``train`` / ``pretrain``: ``--run-dir``, or with ``--resume`` the ``latest`` run (which
    must hold a checkpoint), or a ``fresh`` one; checked writable before any work starts."""
    from ..io import check_writable

    if resume and run_dir is None:
        run_dir = latest()
        if run_dir is None:
            raise PoseReproError(f"nothing to resume: no run under {where}; start without --resume")
    if resume and not (run_dir / "checkpoint.pth").is_file():
        raise PoseReproError(f"nothing to resume in {run_dir}: it holds no checkpoint.pth; start without --resume")
    return check_writable(run_dir or fresh(), "--run-dir", folder=True)


def latest_run(recipe_name: str | None = None) -> Path | None:
    """The most recently modified run directory holding a ``checkpoint.pth`` (of ``recipe_name`` if given)."""
    root = runs_root()
    pattern = f"{recipe_name}/*/checkpoint.pth" if recipe_name else "*/*/checkpoint.pth"
    cands = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime)
    return cands[-1].parent if cands else None


def is_tty() -> bool:
    return sys.stdout.isatty()
