"""The ``poserepro`` command line: a thin Typer layer over the library.

Each command group lives in its own module; errors a user can cause print as one line (``--debug`` for the
traceback).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from . import data as data_cli
from . import pretrain as pretrain_cli
from . import weights as weights_cli
from .ablate import ablate_cmd
from .bench import bench as bench_cmd
from .common import STATE, App, console, handle_errors
from .convert import convert as convert_cmd
from .demo import demo_cmd
from .detect import detect_cmd
from .evaluate import eval_cmd
from .explain import explain_cmd
from .export import export_cmd
from .infer import infer_cmd
from .report import report_cmd
from .synth import synth_cmd
from .train import train_cmd

app = App(
    name="poserepro", help="Reproduction suite for transformer-based 2D human pose estimation.",
    no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=lambda v: _print_version(v))] = False,
) -> None:
    if debug:
        STATE["debug"] = True


def _print_version(show: bool) -> None:
    if show:
        from .._version import __version__

        console.print(f"poserepro {__version__}")
        raise typer.Exit(0)


class ListWhat(str, Enum):
    models = "models"
    recipes = "recipes"


@app.command("list")
@handle_errors
def list_cmd(
    what: Annotated[ListWhat, typer.Argument(help="models or recipes")] = ListWhat.recipes,
    pattern: Annotated[str | None, typer.Argument(help="Shell-style filter, e.g. 'transpose_*'.")] = None,
) -> None:
    """List registered models or recipes (with the paper row each recipe reproduces)."""
    import fnmatch

    from ..models.registry import list_models
    from ..recipes import list_recipes, load_recipe

    if what is ListWhat.models:
        names = list_models(pattern or "*")
        t = Table(title=f"{len(names)} models")
        t.add_column("model")
        for n in names:
            t.add_row(n)
        console.print(t)
        return
    t = Table(title="recipes")
    for c in ("recipe", "model", "paper row", "paper value"):
        t.add_column(c)
    for stem in list_recipes():
        if pattern and not fnmatch.fnmatch(stem, pattern):
            continue
        r = load_recipe(stem)
        value = f"{r.paper.metric} {r.paper.value}" if r.paper.value is not None else ""
        t.add_row(stem, r.model.name, f"{r.paper.name} {r.paper.table_ref}".strip(), value)
    console.print(t)


data_cli.app.command("synth")(synth_cmd)
data_cli.app.command("imagenet")(pretrain_cli.imagenet_cmd)
app.add_typer(data_cli.app, name="data", help="Download, verify and synthesise datasets.")
app.command("train")(train_cmd)
app.command("eval")(eval_cmd)
app.command("detect")(detect_cmd)
app.command("demo")(demo_cmd)
app.command("ablate")(ablate_cmd)
app.command("explain")(explain_cmd)
app.command("infer")(infer_cmd)
app.command("export")(export_cmd)
app.command("report")(report_cmd)
app.command("bench")(bench_cmd)
app.command("convert")(convert_cmd)
app.add_typer(pretrain_cli.app, name="pretrain", help="Self-supervised backbone pretraining (DINO).")
app.add_typer(weights_cli.app, name="weights", help="Starting-point weights: list the catalogue, fetch a file.")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
