"""``poserepro pretrain dino RECIPE [--set k=v ...] [--resume]`` and ``poserepro pretrain list``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import App, console, run_dir_for, runs_root
from .train import epoch_progress

app = App(help="Self-supervised pretraining of pose-model backbones (DINO).", no_args_is_help=True)


def published_backbone(recipe_name: str) -> Path:
    """Where the last finished run of a pretraining recipe leaves its teacher backbone, the file the ``-dino``
    fine-tune recipes point at: ``<runs>/pretrain/<recipe>/teacher_backbone.pth``."""
    return runs_root() / "pretrain" / recipe_name / "teacher_backbone.pth"


def _latest(recipe_name: str) -> Path | None:
    cands = sorted((runs_root() / "pretrain" / recipe_name).glob("*/checkpoint.pth"), key=lambda p: p.stat().st_mtime)
    return cands[-1].parent if cands else None


@app.command("dino")
def dino_cmd(
    recipe: Annotated[str, typer.Argument(help="Pretraining recipe stem (`poserepro pretrain list`) or a YAML path.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume the latest run of this recipe (or --run-dir).")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/pretrain/<recipe>/<time>).")]
    = None,
) -> None:
    """DINO-pretrain the backbone of a pose model; checkpoints every epoch, logs JSON lines (loss, teacher entropy,
    KL, k-NN probe), and writes the teacher backbone for `model.init: dino:PATH`."""
    import time

    from ..pretrain.recipe import load_pretrain_recipe
    from ..pretrain.train import pretrain_dino

    rec = load_pretrain_recipe(recipe, set_ or [])
    run_dir = run_dir_for(run_dir, resume, lambda: _latest(rec.name),
                          lambda: runs_root() / "pretrain" / rec.name / time.strftime("%Y%m%d-%H%M%S"),
                          f"{runs_root() / 'pretrain' / rec.name}")
    main = os.environ.get("RANK", "0") == "0"
    if not main:
        pretrain_dino(rec, run_dir, resume=resume)
        return
    console.print(f"[bold]pretrain dino[/] {rec.name} ({rec.model.name} backbone) → {run_dir}")
    with epoch_progress("pretrain", rec.train.epochs, lambda s: f"loss {s['loss']:.4f}  entropy "
                        f"{s['entropy']:.3f}  lr {s['lr']:.2e}  step {s['step']}/{s['steps']}") as cb:
        res = pretrain_dino(rec, run_dir, resume=resume, progress=cb)
    last = res.last
    if "knn" in last:
        console.print(f"k-NN ({rec.probe.label}) {last['knn']:.4f} vs random init {res.knn_init:.4f} "
                      f"(majority class {last['knn_majority']:.4f})")
    if last:
        console.print(f"teacher entropy {last['teacher_entropy']:.3f} (uniform {last['max_entropy']:.3f}), "
                      f"KL teacher-student {last['kl']:.4f}")
    if res.backbone_file is not None:
        pub = published_backbone(rec.name)
        pub.parent.mkdir(parents=True, exist_ok=True)
        tmp = pub.with_name(f".{pub.name}.tmp")
        shutil.copyfile(res.backbone_file, tmp)
        os.replace(tmp, pub)  # atomic: the -dino recipes never see half a file
        console.print(f"done: {res.epochs} epochs, {res.seconds:.0f} s; teacher backbone {res.backbone_file} "
                      f"(also {pub}: `--init dino:{pub}`)")


@app.command("list")
def list_cmd() -> None:
    """The pretraining recipes."""
    from ..pretrain.recipe import list_pretrain_recipes, load_pretrain_recipe

    t = Table(title="pretraining recipes")
    for c in ("recipe", "backbone of", "data", "epochs"):
        t.add_column(c)
    for stem in list_pretrain_recipes():
        r = load_pretrain_recipe(stem)
        t.add_row(stem, r.model.name, r.data.source, str(r.train.epochs))
    console.print(t)


IMAGENET_WHERE = (
    "ImageNet (ILSVRC-2012) has no public download URL: its terms require an account. Register at "
    "https://image-net.org/download.php (or use a copy your institution holds, e.g. the Kaggle "
    "'imagenet-object-localization-challenge' data), then extract the train set so that it reads "
    "ROOT/<wnid>/<image>.JPEG (the ImageFolder layout; DINO ignores the class folders). Point a pretraining "
    "recipe at it with --set data.root=ROOT (default data/imagenet/train). Without ImageNet, pretrain on COCO "
    "person crops (data.source=coco_persons) or the embedded synthetic set (data.source=synthetic).")


def imagenet_cmd(
    root: Annotated[Path, typer.Option("--root", help="Where the ImageNet train folder is (or will be).")]
    = Path("data/imagenet/train"),
) -> None:
    """Where to get ImageNet for DINO pretraining (no public URL), and whether ROOT holds it."""
    from ..pretrain.data import IMAGE_SUFFIXES

    console.print(IMAGENET_WHERE, soft_wrap=True)
    if not root.is_dir():
        console.print(f"{root}: not there yet")
        return
    classes = [d for d in root.iterdir() if d.is_dir()]
    n = sum(1 for d in classes for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    console.print(f"{root}: {len(classes)} class folders, {n} images (ImageNet train: 1000 and 1,281,167)",
                  soft_wrap=True)
