"""One entry point for every explain figure: :func:`draw` takes a :class:`Subject` (a model, its run label, its
keypoint layout and the crops of a split), draws the chosen figure as a PNG with a caption line naming the run,
the image, the layer(s) and the keypoint(s), and with ``json_out`` writes the numbers behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from ..errors import PoseReproError
from .common import crop_rgb, iterate_crops, joint_name, write_numbers
from .dependency import dependency_areas, dependency_numbers, render_dependency_grid
from .position import position_numbers, position_similarity, render_position_similarity
from .prtr import (
    query_class_numbers,
    query_classes,
    refinement,
    refinement_numbers,
    render_query_classes,
    render_query_locations,
    render_refinement,
    require_prtr,
)
from .tfpose import (
    q2q_attention,
    q2q_numbers,
    render_q2q,
    render_sampling_points,
    require_tfpose,
    sampling_numbers,
    sampling_points,
)

#: figure → (what it shows, the paper figure)
FIGURES: dict[str, str] = {
    "dependency": "attention dependency (or affected) areas per layer; BTranspose: MHSA blocks too "
                  "(TransPose Fig. 4-6, BTranspose Fig. 3-5)",
    "position": "cosine similarity of the position embedding (TransPose v1 App. A, Fig. 9)",
    "q2q": "keypoint query-to-query attention averaged over the split (TFPose Fig. 6)",
    "sampling": "deformable sampling points of the joint queries (TFPose Fig. 7)",
    "refinement": "keypoints after each decoder layer + query heat map (PRTR Fig. 4)",
    "queries": "distribution of predicted classes per query over the split (PRTR Fig. 7)",
    "query-locations": "where each query predicts each keypoint class over the split (PRTR Fig. 5)",
}


@dataclass
class Subject:
    """What a figure explains: ``model`` (eval mode is set by the figure), ``label`` (the run, for captions),
    the keypoint layout, the crops of a split (``dataset`` items are :class:`~poserepro.data.coco.TopDownDataset`
    dicts), the image file of each crop and the crop ``index`` the single-crop figures use."""

    model: nn.Module
    label: str
    joint_names: tuple[str, ...]
    dataset: Dataset
    image_paths: Sequence[str]
    index: int = 0
    skeleton: tuple[tuple[int, int], ...] = field(default=())

    def image_caption(self) -> str:
        return f"image {Path(self.image_paths[self.index]).name} (person {self.index})"


def default_figure(model: nn.Module) -> str:
    """The first figure of the model's family: dependency (TransPose, BTranspose), sampling (TFPose),
    refinement (two-stage PRTR)."""
    if hasattr(model, "forward_with_attention"):
        return "dependency"
    if hasattr(model, "init_coords"):
        return "sampling"
    if hasattr(model, "kpt_embed") and not hasattr(model, "detect"):
        return "refinement"
    raise PoseReproError(f"no explain figure for {type(model).__name__}: explain covers TransPose, BTranspose, "
                         "TFPose and two-stage PRTR")


def _positions(layers: Sequence[int] | None, n: int, what: str) -> list[int]:
    """1-based positions (negative from the end) → 0-based indices; ``None`` = all."""
    if not layers:
        return list(range(n))
    out = []
    for p in layers:
        i = p - 1 if p > 0 else n + p
        if p == 0 or not 0 <= i < n:
            raise PoseReproError(f"--layer {p} is out of range: there are {n} {what} (1..{n}, or -1 for the last)")
        out.append(i)
    return out


def _names(joint_names: Sequence[str], joints: Sequence[int]) -> str:
    if len(joints) <= 6:
        return ", ".join(joint_name(joint_names, j) for j in joints)
    return f"{len(joints)} ({joint_name(joint_names, joints[0])} ... {joint_name(joint_names, joints[-1])})"


def draw(
    figure: str, subject: Subject, out: str | Path, json_out: str | Path | None = None, *,
    compare: Subject | None = None, kind: str = "dependency", threshold: float = 0.0, mhsa: bool | None = None,
    joints: Sequence[int] | None = None, layers: Sequence[int] | None = None, level: int = 0,
    max_persons: int | None = None, batch_size: int = 16, queries: int = 16, position_step: int = 2, dpi: int = 100,
) -> tuple[Path, str]:
    """Draw ``figure`` (a key of :data:`FIGURES`) to ``out``; returns ``(path, one-line summary)``."""
    if figure not in FIGURES:
        raise PoseReproError(f"unknown figure {figure!r}: choose one of {', '.join(FIGURES)}")
    if compare is not None and figure != "dependency":
        raise PoseReproError("--compare draws two runs side by side for --figure dependency only")
    m, names = subject.model, subject.joint_names
    k = len(names) or int(getattr(m, "num_joints", 17))
    sel = list(joints) if joints else list(range(k))
    if figure == "dependency":
        if kind not in ("dependency", "affected"):
            raise PoseReproError(f"--kind must be dependency or affected, got {kind!r}")
        runs = []
        for s in [subject] + ([compare] if compare is not None else []):
            use_mhsa = hasattr(getattr(s.model, "backbone", None), "mhsa_modules") if mhsa is None else mhsa
            maps = dependency_areas(s.model, s.dataset[s.index]["image"], threshold, include_mhsa=use_mhsa)
            maps = maps.select(_positions(layers, len(maps.layers), "attention layers"))
            runs.append((s.label, maps))
        shown = ", ".join(runs[0][1].layers) if len(runs) == 1 else \
            " / ".join(f"{lab}: {', '.join(mp.layers)}" for lab, mp in runs)
        cap = (f"run {' vs '.join(r[0] for r in runs)} · {subject.image_caption()} · layers {shown} · "
               f"keypoints {_names(names, sel)}")
        path = render_dependency_grid(crop_rgb(subject.dataset[subject.index]["image"]), runs, names, out, sel,
                                      kind, cap, subject.skeleton, dpi)
        numbers = dependency_numbers(runs, sel, names)
        summary = f"{kind} areas of {len(sel)} keypoints over {sum(len(r[1].layers) for r in runs)} layer rows"
    elif figure == "position":
        sim = position_similarity(m)
        cap = (f"run {subject.label} · no image (the {sim.kind} table itself) · layer: position embedding "
               f"{sim.grid[0]}x{sim.grid[1]} · all locations, every {position_step}th shown")
        path = render_position_similarity(sim, out, position_step, cap, dpi)
        numbers = position_numbers(sim, position_step)
        summary = f"cosine similarity of the {sim.grid[0]}x{sim.grid[1]} {sim.kind} position embedding"
    elif figure == "q2q":
        qa = q2q_attention(m, iterate_crops(subject.dataset, batch_size, max_persons))
        li = _positions(layers, qa.attention.shape[0], "decoder layers")
        cap = (f"run {subject.label} · mean over {qa.count} crops of the split · decoder layers "
               f"{', '.join(str(i + 1) for i in li)} · all {k} keypoint queries")
        path = render_q2q(qa, names, out, li, cap, dpi)
        numbers = q2q_numbers(qa, names)
        summary = f"q2q attention of {qa.attention.shape[0]} decoder layers over {qa.count} crops"
    elif figure == "sampling":
        require_tfpose(m)
        n_dec = len(m.transformer.decoder)
        li = _positions(layers, n_dec, "decoder layers")[-1] if layers else -1
        item = subject.dataset[subject.index]
        sp = sampling_points(m, item["image"], li, level)
        gt = item["joints"].numpy()[:, :2] if "joints" in item else None
        if gt is not None and "joints_vis" in item:
            gt = np.where(item["joints_vis"].numpy()[:, None] > 0, gt, np.nan)
        cap = (f"run {subject.label} · {subject.image_caption()} · decoder layer {sp.layer + 1}, level {sp.level} "
               f"(stride {sp.stride}) · keypoint queries {_names(names, sel)}")
        path = render_sampling_points(crop_rgb(item["image"]), sp, names, out, sel, gt, cap, dpi)
        numbers = sampling_numbers(sp, sel, names, gt)
        inside = sp.inside[sel]
        summary = f"{inside.size} sampling points of {len(sel)} queries, {int(inside.sum())} inside the crop"
    elif figure == "refinement":
        item = subject.dataset[subject.index]
        ref = refinement(m, item["image"])
        joint = sel[0] if joints else 0
        gt = item["joints"].numpy()[:, :2] if "joints" in item else None
        if gt is not None and "joints_vis" in item:
            gt = gt[item["joints_vis"].numpy() > 0]
        cap = (f"run {subject.label} · {subject.image_caption()} · decoder layers 1-{ref.keypoints.shape[0]} · "
               f"all keypoints (heat map: {joint_name(names, joint)})")
        path = render_refinement(crop_rgb(item["image"]), ref, names, out, joint, subject.skeleton, gt, cap,
                                 dpi)
        numbers = refinement_numbers(ref, names, joint)
        summary = f"read-out after each of {ref.keypoints.shape[0]} decoder layers"
    else:  # queries, query-locations
        require_prtr(m)
        n_dec = len(m.transformer.decoder.layers)
        li = _positions(layers, n_dec, "decoder layers")[-1] if layers else n_dec - 1
        qc = query_classes(m, iterate_crops(subject.dataset, batch_size, max_persons), li)
        shown = qc.most_specialised(min(queries, qc.distribution.shape[0]))
        if figure == "queries":
            cap = (f"run {subject.label} · {qc.count} crops of the split · decoder layer {li + 1} · "
                   f"{len(shown)} of {qc.distribution.shape[0]} queries (most often a keypoint) x all classes")
            path = render_query_classes(qc, names, out, shown, cap, dpi)
        else:
            cap = (f"run {subject.label} · {qc.count} crops of the split · decoder layer {li + 1} · "
                   f"all {qc.distribution.shape[0]} queries x all keypoint classes")
            path = render_query_locations(qc, names, out, tuple(m.input_size), cap, dpi)
        numbers = query_class_numbers(qc, names, shown)
        summary = f"class distribution of {qc.distribution.shape[0]} queries over {qc.count} crops"
    if json_out is not None:
        numbers["caption"] = cap
        write_numbers(json_out, numbers)
    return Path(path), summary
