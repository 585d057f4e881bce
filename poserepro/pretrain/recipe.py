"""Pretraining recipes: YAML in ``recipes/pretrain/`` loaded into frozen dataclasses, checked ``--set`` overrides.

The same grammar as the pose recipes (:mod:`poserepro.recipes`: ``base:`` inheritance, YAML-scalar overrides,
unknown key or wrong type = one-line :class:`~poserepro.errors.RecipeError`), over :class:`PretrainRecipe`.
The dataclass defaults are facebookresearch/dino's ``main_dino.py`` defaults (FACTS §2); the BTranspose
recipes override what its released fork changed (FACTS §1.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import RecipeError, UnknownNameError, suggest
from ..recipes import RECIPE_DIR, _build, _deep_merge, _plain, _read_yaml, apply_overrides, check_ranges

PRETRAIN_DIR = RECIPE_DIR / "pretrain"


@dataclass(frozen=True)
class DinoModelCfg:
    """Student = teacher architecture: the backbone of a registered pose model + a :class:`DINOHead`."""

    name: str = "btranspose_c3a1_4h"     # a registered heatmap model; its backbone is the trunk
    args: dict[str, Any] = field(default_factory=dict)
    trunk: Literal["backbone", "encoder"] = "backbone"  # encoder: the pose model up to its encoder (the fork's)
    pool: Literal["avg", "flatten", "grid"] = "avg"
    grid: tuple[int, int] = (2, 2)       # pool=grid: (gw, gh) cells of the last feature map, flattened
    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    nlayers: int = 3
    use_bn_in_head: bool = False
    norm_last_layer: bool = True


@dataclass(frozen=True)
class DinoDataCfg:
    """Images and the multi-crop augmentation (sizes ``(w, h)``)."""

    source: Literal["folder", "coco_persons", "synthetic"] = "folder"
    root: str = "data/imagenet/train"    # folder: every image below it (ImageFolder layout; labels ignored)
    ann_file: str = "annotations/person_keypoints_train2017.json"   # coco_persons: under root
    images: str = "train2017"                                        # coco_persons: under root
    synth_images: int = 2000             # synthetic: the benchmark at root (generated on demand)
    synth_val_images: int = 300
    synth_seed: int = 0
    bbox_padding: float = 1.25           # person crops: box enlarged as for the pose model
    max_samples: int | None = None
    global_size: tuple[int, int] = (224, 224)
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_crops: int = 8
    local_size: tuple[int, int] = (96, 96)
    local_scale: tuple[float, float] = (0.05, 0.4)
    workers: int = 10


@dataclass(frozen=True)
class DinoLossCfg:
    """Loss, centering and teacher EMA."""

    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0  # the code's default (its help text says 30)
    student_temp: float = 0.1
    center_momentum: float = 0.9
    momentum_teacher: float = 0.996      # cosine to 1 over the run, per iteration


@dataclass(frozen=True)
class DinoOptimCfg:
    """Optimiser and its per-iteration schedules."""

    name: Literal["adamw", "sgd", "lars"] = "adamw"
    lr: float = 5e-4                     # at batch 256: peak = lr · global batch / 256
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0               # per parameter tensor; 0 = off
    freeze_last_layer: int = 1


@dataclass(frozen=True)
class DinoTrainCfg:
    """Loop."""

    epochs: int = 100
    batch_size: int = 64                 # per process
    seed: int = 0
    device: str = "auto"
    amp: Literal["off", "bf16", "fp16"] = "fp16"   # the reference's use_fp16 default
    threads: int | None = None
    max_steps_per_epoch: int | None = None
    deterministic: bool = True
    channels_last: bool = False


@dataclass(frozen=True)
class ProbeCfg:
    """Weighted k-NN probe (DINO ``eval_knn``) on the synthetic benchmark's per-person labels: train-split person
    crops are the memory bank, val-split ones the queries."""

    every: int = 0                       # every N epochs and after the last (0 = after the last only)
    enabled: bool = True
    label: Literal["pose_class", "view"] = "pose_class"
    k: int = 20
    temperature: float = 0.07
    root: str = "data/synthetic"
    synth_images: int = 600
    synth_val_images: int = 100
    synth_seed: int = 0
    size: tuple[int, int] = (0, 0)       # (w, h) of the probe view; (0, 0) = data.global_size
    max_bank: int | None = None
    max_queries: int | None = None
    bn_batches: int = 10                 # knn_init: BatchNorm statistics of the random-init backbone re-estimated
    #                                      on this many batches of global crops (0 = its default statistics)


@dataclass(frozen=True)
class PretrainRecipe:
    """A whole pretraining recipe."""

    name: str = ""
    description: str = ""
    notes: str = ""
    model: DinoModelCfg = field(default_factory=DinoModelCfg)
    data: DinoDataCfg = field(default_factory=DinoDataCfg)
    loss: DinoLossCfg = field(default_factory=DinoLossCfg)
    optim: DinoOptimCfg = field(default_factory=DinoOptimCfg)
    train: DinoTrainCfg = field(default_factory=DinoTrainCfg)
    probe: ProbeCfg = field(default_factory=ProbeCfg)
    ci: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @property
    def ncrops(self) -> int:
        return 2 + self.data.local_crops


_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("train.epochs", lambda v: v >= 1, "at least 1"),
    ("train.batch_size", lambda v: v >= 1, "at least 1"),
    ("optim.lr", lambda v: v > 0, "positive"),
    ("optim.warmup_epochs", lambda v: v >= 0, "0 or more"),
    ("optim.clip_grad", lambda v: v >= 0, "0 (off) or more"),
    ("loss.center_momentum", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("loss.momentum_teacher", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("loss.teacher_temp", lambda v: v > 0, "positive"),
    ("loss.warmup_teacher_temp", lambda v: v > 0, "positive"),
    ("data.local_crops", lambda v: v >= 0, "0 or more"),
    ("data.workers", lambda v: v >= 0, "0 or more"),
    ("model.out_dim", lambda v: v >= 2, "at least 2"),
    ("model.grid", lambda v: min(v) >= 1, "two cell counts (gw, gh), each at least 1"),
    ("probe.k", lambda v: v >= 1, "at least 1"),
    ("probe.bn_batches", lambda v: v >= 0, "0 or more"),
)


def check(recipe: PretrainRecipe) -> None:
    """Range checks, and the combinations that cannot run."""
    check_ranges(recipe, _RANGES)
    if recipe.model.pool == "flatten" and recipe.data.local_crops:
        raise RecipeError("model.pool=flatten needs one crop size: set data.local_crops=0 (as BTranspose's fork)")
    if recipe.model.trunk == "encoder" and recipe.data.local_crops:
        raise RecipeError("model.trunk=encoder runs the encoder, whose position embedding has the global crop's "
                          "size: set data.local_crops=0 (as BTranspose's fork)")
    if recipe.optim.warmup_epochs > recipe.train.epochs:
        raise RecipeError(f"optim.warmup_epochs ({recipe.optim.warmup_epochs}) exceeds train.epochs")
    if recipe.loss.warmup_teacher_temp_epochs > recipe.train.epochs:
        raise RecipeError("loss.warmup_teacher_temp_epochs exceeds train.epochs")


def list_pretrain_recipes(recipe_dir: Path = PRETRAIN_DIR) -> list[str]:
    return sorted(p.stem for p in recipe_dir.glob("*.yaml"))


def _path(name_or_path: str, recipe_dir: Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise RecipeError(f"pretraining recipe file {p} does not exist")
        return p
    cand = recipe_dir / f"{name_or_path}.yaml"
    if not cand.is_file():
        raise UnknownNameError(f"unknown pretraining recipe {name_or_path!r}"
                               f"{suggest(name_or_path, list_pretrain_recipes(recipe_dir))}; "
                               "see `poserepro pretrain list`")
    return cand


def _raw(path: Path, recipe_dir: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise RecipeError("pretraining recipe inheritance loops: " + " -> ".join(p.stem for p in (*seen, path)))
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    return _deep_merge(_raw(_path(str(base), recipe_dir), recipe_dir, (*seen, path)), data)


def load_pretrain_recipe(name_or_path: str, overrides: list[str] | None = None,
                         recipe_dir: Path = PRETRAIN_DIR) -> PretrainRecipe:
    """Load a pretraining recipe by stem or path, resolve ``base:``, apply ``--set`` overrides, check it."""
    path = _path(name_or_path, recipe_dir)
    data = apply_overrides(_raw(path, recipe_dir), overrides or [])
    data.setdefault("name", path.stem)
    recipe = _build(PretrainRecipe, data, "")
    check(recipe)
    return recipe


def recipe_from_dict(data: dict[str, Any]) -> PretrainRecipe:
    """A :class:`PretrainRecipe` from a plain dict (e.g. the copy a checkpoint holds), checked."""
    recipe = _build(PretrainRecipe, dict(data), "")
    check(recipe)
    return recipe
