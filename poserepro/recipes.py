"""Recipes: YAML files in ``recipes/`` loaded into frozen dataclasses.

A recipe names the model and every training / evaluation hyper-parameter, and the paper row it reproduces.
``base: other-stem`` inherits (deep merge) from another recipe. ``--set a.b=value`` overrides are parsed with
YAML scalars and checked against the dataclass fields: an unknown key or a value of the wrong type is a
:class:`~poserepro.errors.RecipeError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import RecipeError, UnknownNameError, suggest
from .keypoints import KeypointSpec, load_layout

# The checkout's recipes/ (poserepro/_recipes links to it); an installed wheel carries a copy as package data.
RECIPE_DIR = Path(__file__).parent / "_recipes"


@dataclass(frozen=True)
class Paper:
    """The paper row a recipe reproduces."""

    name: str = ""
    arxiv: str = ""
    table_ref: str = ""
    metric: str = "AP"
    value: float | None = None
    boxes: str = "detected"
    params_m: float | None = None
    gflops: float | None = None
    notes: str = ""


@dataclass(frozen=True)
class ModelCfg:
    """``create_model(name, **args)``."""

    name: str = "transpose_r_a4"
    args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None           # initial weights (same grammar as init; wins over init when both are set)
    init: str | None = None              # starting point: imagenet | detr:r50 | dino:PATH | official:NAME |
    #                                      transfer:PATH | a file (poserepro.weights.init); None = from scratch


@dataclass(frozen=True)
class DataCfg:
    """Dataset, crops, augmentation and target encoding."""

    dataset: Literal["coco", "synthetic", "mpii"] = "coco"
    root: str = "data/coco"
    train_ann: str = "annotations/person_keypoints_train2017.json"
    train_images: str = "train2017"
    val_ann: str = "annotations/person_keypoints_val2017.json"
    val_images: str = "val2017"
    det_file: str | None = "COCO_val2017_detections_AP_H_56_person.json"
    test_info: str = "annotations/image_info_test-dev2017.json"
    test_images: str = "test2017"
    test_det_file: str | None = "COCO_test-dev2017_detections_AP_H_609_person.json"
    synth_images: int = 2000             # synthetic only: train images to generate
    synth_val_images: int = 300
    synth_seed: int = 0
    synth_difficulty: dict[str, float] = field(default_factory=dict)  # SynthConfig knobs: clutter, occlusion, noise
    input_size: tuple[int, int] = (192, 256)      # (w, h)
    heatmap_size: tuple[int, int] = (48, 64)      # (w, h)
    sigma: float = 2.0
    target: Literal["gaussian", "udp"] = "gaussian"
    affine: Literal["hrnet", "dark"] = "hrnet"    # crop geometry: HRNet/PRTR, or DarkPose's (TransPose, BTranspose)
    color_rgb: bool = True
    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rot_factor: float = 45.0
    rot_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    bbox_padding: float = 1.25
    num_joints: int = 17
    keypoints: str = ""                  # layout: "" = the dataset's (coco / mpii), or coco, mpii, a layout .json
    workers: int = 2
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    pipeline: Literal["opencv", "fast"] = "opencv"  # training crops: per-sample OpenCV, or cached + batched on device
    # whole-image models (PRTR's detector, end-to-end PRTR): "fixed" resizes to input_size; "detr" is DETR's
    # multi-scale resize (shorter side one of detr_scales, longer at most detr_max_size) + random crop, padded
    detr_resize: Literal["fixed", "detr"] = "fixed"
    detr_scales: tuple[int, ...] = tuple(range(480, 801, 32))
    detr_max_size: int = 1333
    min_keypoints: int = 0               # whole-image models: drop persons with fewer labelled keypoints

    def keypoint_spec(self) -> KeypointSpec:
        """The keypoint layout (flip pairs, sigmas, skeleton, upper body): ``keypoints`` if set, else the
        dataset's own (COCO for coco and synthetic, MPII for mpii); checked against ``num_joints``."""
        name = self.keypoints or ("mpii" if self.dataset == "mpii" else "coco")
        return load_layout(name, self.num_joints)


@dataclass(frozen=True)
class OptimCfg:
    """Optimiser."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    backbone_lr: float | None = None      # None = same as lr
    lr_mult: dict[str, float] = field(default_factory=dict)  # name substring -> lr multiplier
    clip_grad_norm: float | None = None
    scale_lr_by_batch: int | None = None  # linear scaling rule: lr *= global_batch / this (None = off)


@dataclass(frozen=True)
class ScheduleCfg:
    """Learning-rate schedule (stepped per epoch, as the official code bases do)."""

    name: Literal["cosine", "multistep", "constant"] = "cosine"
    epochs: int = 230
    min_lr: float = 1e-5
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: int = 0


@dataclass(frozen=True)
class TrainCfg:
    """Training loop."""

    batch_size: int = 32
    seed: int = 0
    device: str = "auto"                 # auto (cuda when available, else cpu), cpu, cuda, cuda:N
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    deterministic: bool = True
    log_every: int = 20
    threads: int | None = None
    max_steps_per_epoch: int | None = None
    loss: Literal["mse", "sinkhorn"] = "mse"
    sinkhorn_eps: float = 0.05           # loss=sinkhorn: entropic regularisation ε (BTranspose §4.2: 0.05)
    sinkhorn_iters: int = 3              # loss=sinkhorn: Sinkhorn iterations n (BTranspose §4.2: 3)
    sync_bn: bool = False
    compile: bool = False                # torch.compile the training forward (off: measured slower on CPU, README)


@dataclass(frozen=True)
class EvalCfg:
    """Evaluation / test protocol (TransPose defaults, FACTS §5.3)."""

    batch_size: int = 64
    flip: bool = True
    flip_shift: bool = False
    use_gt_boxes: bool = False
    decode: Literal["dark", "quarter", "argmax", "udp"] = "dark"
    blur_kernel: int = 11
    in_vis_thre: float = 0.2
    oks_thre: float = 0.9
    image_thre: float = 0.0
    nms: bool = True
    backend: Literal["pycocotools", "xtcocotools", "faster-coco-eval"] = "pycocotools"
    every: int = 0                       # validate on the val split every N epochs during training (0 = off)
    fold_batchnorm: bool = True          # evaluate an eval-only copy with BatchNorm folded into its convolutions
    channels_last: bool = True           # ... with channels-last convolutions (whatever layout training used)


@dataclass(frozen=True)
class Recipe:
    """A whole recipe (one YAML file after ``base`` resolution and overrides)."""

    name: str = ""
    description: str = ""
    paper: Paper = field(default_factory=Paper)
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    ci: dict[str, Any] = field(default_factory=dict)   # CI regression settings (reference AP, tolerance)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), suitable for YAML / JSON."""
        return _plain(asdict(self))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def list_recipes(recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """Stems of the recipe YAML files (``transpose-r-a4`` …)."""
    return sorted(p.stem for p in recipe_dir.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise RecipeError(f"recipe {path} is not valid YAML{where}: fix the syntax") from None
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of sections (model:, data:, ...)")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "args":
            out[k] = _deep_merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):  # model.args merge too
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def resolve_recipe_path(name_or_path: str, recipe_dir: Path = RECIPE_DIR) -> Path:
    """A recipe stem (``transpose-r-a4``) or a path to a YAML file → the file's path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise RecipeError(f"recipe file {p} does not exist")
        return p
    stem = name_or_path.replace("_", "-")  # model names use ``_``, recipe stems ``-``; a user file may use either
    for cand in (recipe_dir / f"{name_or_path}.yaml", recipe_dir / f"{stem}.yaml"):
        if cand.is_file():
            return cand
    raise UnknownNameError(
        f"unknown recipe {name_or_path!r}{suggest(stem, list_recipes(recipe_dir))}; see `poserepro list recipes`"
    )


def _base_path(base: str, here: Path, recipe_dir: Path) -> Path:
    """``base:`` names a file relative to the inheriting recipe's folder, a recipe beside it, or a shipped recipe."""
    if Path(base).suffix in (".yaml", ".yml") and not Path(base).is_absolute():
        return resolve_recipe_path(str(here / base), recipe_dir)
    if any((here / f"{n}.yaml").is_file() for n in (base, base.replace("_", "-"))):
        return resolve_recipe_path(base, here)
    return resolve_recipe_path(base, recipe_dir)


def _load_raw(path: Path, recipe_dir: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        chain = " -> ".join(p.stem for p in (*seen, path))
        raise RecipeError(f"recipe inheritance loops: {chain}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = _base_path(str(base), path.parent, recipe_dir)
    return _deep_merge(_load_raw(base_path, recipe_dir, (*seen, path)), data)



def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise RecipeError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except RecipeError as e:
                errors.append(str(e))
        raise RecipeError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise RecipeError(f"{key} must have {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, key) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise RecipeError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise RecipeError(f"{key} must be a string, got {value!r}")
        return str(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise RecipeError(f"{key}: unsupported type {tp}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(f"{prefix or 'recipe'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise RecipeError(f"unknown recipe key {key!r}{suggest(str(k), names)}; valid keys: {', '.join(names)}")
        kwargs[k] = _convert(v, hints[k], key)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=2e-4"`` → ``(["optim", "lr"], 0.0002)`` (values are parsed as YAML scalars/lists)."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like section.key=value (e.g. optim.lr=2e-4)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override {text!r} has an empty key; use section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise RecipeError(f"override {text!r}: cannot parse value {raw!r}") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw recipe dict (checked later against the dataclasses)."""
    out = _deep_merge({}, data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = {}
                node[part] = nxt
            if not isinstance(nxt, dict):
                raise RecipeError(f"override {text!r}: {part!r} is not a section")
            node = nxt
        node[path[-1]] = value
    return out


#: value ranges (key, test, what it must be): a type-correct value outside them is a RecipeError too
_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("train.batch_size", lambda v: v >= 1, "at least 1"),
    ("eval.batch_size", lambda v: v >= 1, "at least 1"),
    ("schedule.epochs", lambda v: v >= 1, "at least 1"),
    ("schedule.warmup_epochs", lambda v: v >= 0, "0 or more"),
    ("schedule.min_lr", lambda v: v >= 0, "0 or more"),
    ("optim.lr", lambda v: v > 0, "positive"),
    ("optim.weight_decay", lambda v: v >= 0, "0 or more"),
    ("optim.clip_grad_norm", lambda v: v is None or v >= 0, "0 (off) or more"),
    ("data.workers", lambda v: v >= 0, "0 or more"),
    ("data.num_joints", lambda v: v >= 1, "at least 1"),
    ("data.input_size", lambda v: len(v) == 2 and min(v) >= 8, "two sizes (w, h) of at least 8 px"),
    ("data.heatmap_size", lambda v: len(v) == 2 and min(v) >= 1, "two positive sizes (w, h)"),
    ("data.sigma", lambda v: v > 0, "positive"),
    ("data.flip_prob", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("data.half_body_prob", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("data.rot_prob", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("data.synth_images", lambda v: v >= 1, "at least 1"),
    ("data.synth_val_images", lambda v: v >= 1, "at least 1"),
    ("train.threads", lambda v: v is None or v >= 1, "at least 1 (or unset)"),
    ("train.max_steps_per_epoch", lambda v: v is None or v >= 1, "at least 1 (or unset)"),
    ("eval.every", lambda v: v >= 0, "0 (off) or more epochs"),
)


def check_ranges(recipe: Any, ranges: tuple[tuple[str, Callable[[Any], bool], str], ...] | None = None) -> None:
    """Raise a one-line :class:`RecipeError` for the first ``section.field`` value of ``recipe`` outside its range
    (``ranges``: ``(key, test, what it must be)``; default the pose recipes' ``_RANGES``)."""
    for key, ok, what in _RANGES if ranges is None else ranges:
        section, field_name = key.split(".")
        value = getattr(getattr(recipe, section), field_name)
        if not ok(value):
            raise RecipeError(f"{key} must be {what}, got {value!r}")


def recipe_from_dict(data: dict[str, Any], name: str = "") -> Recipe:
    """Build a :class:`Recipe` from a raw dict, checking every key, type and value range."""
    data = dict(data)
    data.setdefault("name", name)
    recipe = _build(Recipe, data, "")
    check_ranges(recipe)
    recipe.data.keypoint_spec()  # an unknown or broken keypoint layout fails here, before anything runs
    return recipe


def load_recipe(name_or_path: str, overrides: list[str] | None = None, recipe_dir: Path = RECIPE_DIR) -> Recipe:
    """Load a recipe by stem or path, resolve ``base:`` inheritance and apply ``--set`` overrides."""
    path = resolve_recipe_path(name_or_path, recipe_dir)
    data = _load_raw(path, recipe_dir)
    data = apply_overrides(data, overrides or [])
    return recipe_from_dict(data, name=path.stem)


def replace(recipe: Recipe, **sections: Any) -> Recipe:
    """Return a copy of ``recipe`` with whole sections or fields replaced (``replace(r, train=...)``)."""
    return dataclasses.replace(recipe, **sections)
