"""A sweep's plan: every cell's training and evaluation recipe, the trained model it shares, the commands it amounts
to, and the check of its overrides against the model's constructor (at load time, before anything trains)."""

from __future__ import annotations

import hashlib
import inspect
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path

from ..engine.build import with_device
from ..errors import RecipeError
from ..models.registry import model_entrypoint
from ..recipes import Recipe, load_recipe
from .cells import Sweep, Variant

#: arguments the engine passes itself (``build_model``)
_ENGINE_ARGS = ("input_size", "num_joints")


@dataclass(frozen=True)
class Cell:
    """One planned cell: its recipes (``None`` when skipped), the shared training key and why it is skipped."""

    sweep: str
    variant: Variant
    base: str
    train_overrides: tuple[str, ...]
    eval_overrides: tuple[str, ...]
    train_key: str
    run_dir: Path
    train_recipe: Recipe | None
    eval_recipe: Recipe | None
    skip: str | None = None
    pretrain: tuple[str, tuple[str, ...], Path] | None = None  # (pretraining recipe, its overrides, its run dir)

    @property
    def cell_key(self) -> str:
        """Identifies the cell's result: its trained model and its evaluation overrides."""
        return _digest([self.train_key, *self.eval_overrides])


def _digest(parts: list[str]) -> str:
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:10]


def accepted_args(model_name: str) -> set[str] | None:
    """Keyword arguments the registered builder ``model_name`` accepts: its own parameters and, where it forwards
    ``**kw``, those of the model class it returns; ``None`` when they cannot be known."""
    fn = model_entrypoint(model_name)
    params = inspect.signature(fn).parameters
    names = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return names
    try:
        cls = typing.get_type_hints(fn).get("return")
    except (NameError, TypeError):
        return None
    if not inspect.isclass(cls):
        return None
    inner = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in inner.values()):
        return None
    return names | {n for n in inner if n != "self"}


def check_model_args(sweep: str, cell: str, recipe: Recipe) -> None:
    """One-line RecipeError naming the sweep, the cell and the key when ``model.args`` holds a key the model's
    constructor does not take (the TFPose ``num_decoder_layers`` / ``dec_layers`` crash, caught at load time)."""
    ok = accepted_args(recipe.model.name)
    if ok is None:
        return
    for key in recipe.model.args:
        if key not in ok and key not in _ENGINE_ARGS:
            raise RecipeError(f"ablation {sweep}, cell {cell}: model.args.{key} is not an argument of "
                              f"{recipe.model.name} (it takes {', '.join(sorted(ok))})")


def plan(sweep: Sweep, smoke: bool, extra: list[str], runs_root: Path = Path("runs")) -> list[Cell]:
    """Every cell of ``sweep`` with its recipes (loaded and checked now, so a bad override fails before any
    training); cells that cannot run carry the one-line reason in ``skip``."""
    cells = []
    for v in sweep.variants:
        base = (v.smoke_recipe or sweep.smoke_base) if smoke else (v.recipe or sweep.base)
        own = v.smoke if (smoke and v.smoke is not None) else v.overrides
        ev = v.smoke_eval if (smoke and v.smoke_eval is not None) else v.eval_overrides
        train_over, eval_over = (*own, *extra), tuple(ev)
        pre = _pretrain_plan(v, smoke, own, runs_root)
        if pre is not None:  # fine-tune from the pretraining's teacher backbone
            train_over = (*train_over, f"model.init=dino:{pre[2] / 'teacher_backbone.pth'}")
        key = _digest([base, *train_over])
        # keyed by the training settings only: sweeps that train the same model (pos-embed, resolution) share it
        run_dir = runs_root / "ablate" / f"{'smoke-' if smoke else ''}{key}"
        skip = v.needs or (v.smoke_skip if smoke else None)
        rec_train = rec_eval = None
        if skip is None:
            rec_train = with_device(load_recipe(base, list(train_over)))
            rec_eval = with_device(load_recipe(base, [*train_over, *eval_over]))
            check_model_args(sweep.name, v.name, rec_train)
            check_model_args(sweep.name, v.name, rec_eval)
        cells.append(Cell(sweep.name, v, base, train_over, eval_over, key, run_dir, rec_train, rec_eval, skip, pre))
    return cells


def _pretrain_plan(v: Variant, smoke: bool, own: tuple[str, ...],
                   runs_root: Path) -> tuple[str, tuple[str, ...], Path] | None:
    """A cell's pretraining: its recipe, its overrides (``v.pretrain_overrides``, or the cell's ``model.args``
    overrides: the same backbone) and a run directory keyed by both (cells with the same backbone share one
    pretraining, across sweeps too)."""
    stem = v.smoke_pretrain if smoke else v.pretrain
    if stem is None:
        return None
    over = v.pretrain_overrides if v.pretrain_overrides is not None else \
        tuple(o for o in own if o.startswith("model.args."))
    return stem, over, runs_root / "pretrain" / f"{'smoke-' if smoke else ''}{stem}-{_digest([stem, *over])}"


def commands(cell: Cell) -> list[str]:
    """The ``poserepro`` commands a cell amounts to: train (once per shared model) and evaluate."""
    sets = "".join(f" --set {shlex.quote(o)}" for o in cell.train_overrides)
    evs = "".join(f" --set {shlex.quote(o)}" for o in cell.eval_overrides)
    run = shlex.quote(str(cell.run_dir))
    pre = []
    if cell.pretrain is not None:
        stem, over, pdir = cell.pretrain
        psets = "".join(f" --set {shlex.quote(o)}" for o in over)
        pre = [f"poserepro pretrain dino {stem}{psets} --run-dir {shlex.quote(str(pdir))}"]
    return [*pre, f"poserepro train {cell.base}{sets} --run-dir {run}",
            f"poserepro eval {run}{evs} --no-record"]


def budget(recipe: Recipe) -> str:
    """The training budget of a recipe in one phrase (epochs, images, batch, step cap)."""
    images = recipe.data.synth_images if recipe.data.dataset == "synthetic" else recipe.data.dataset
    cap = f", <= {recipe.train.max_steps_per_epoch} steps/epoch" if recipe.train.max_steps_per_epoch else ""
    return f"{recipe.schedule.epochs} ep x {images} img, bs {recipe.train.batch_size}{cap}"
