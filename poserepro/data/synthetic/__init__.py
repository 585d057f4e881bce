"""Embedded procedural synthetic multi-person 2-D pose benchmark, written in real COCO keypoint format.

:func:`synthesize` renders ``num_train + num_val`` images of articulated "stick-and-capsule" people and
writes::

    out_dir/images/{train,val}/%012d.jpg
    out_dir/annotations/person_keypoints_{train,val}.json   # COCO keypoints (17 joints, COCO order)
    out_dir/detections/person_detections_val.json           # HRNet-style person detections for top-down eval
    out_dir/synth_config.json                               # the config; written last (= completion marker)

How a person is made
    A 3-D skeleton with human proportions (units of stature) is posed with joint angles drawn from one of a
    few pose families (standing, walking, arms raised, sitting, crouching) inside anatomical limits (elbows
    and knees bend one way only), turned about the vertical axis (mostly facing the camera, sometimes side or
    back views), projected orthographically, rolled in the image plane (mostly upright, sometimes up to
    +-60 degrees or lying), scaled and placed (possibly truncated by the image border).

    Parts are drawn far-to-near as shaded, tapered capsules (limbs), a projected box (torso) and a head disc
    with hair, face, eyes, nose and ears that are drawn only where they face the camera.  The person's *left*
    limbs always use a warm hue (red/orange/yellow) and the *right* limbs a cool hue (cyan/blue), with
    per-person random shades, so left and right are distinguishable (flip augmentation / flip test matter);
    the nose and feet also point in the facing direction.

Labels
    Each part is drawn into a layer-id map as well as into the image.  A keypoint whose pixel ends up covered
    by a part that does not own it (another person in front, its own torso in a side view, an occluder blob)
    is labelled ``v=1`` with its true coordinates, as are face points turned away from the camera; keypoints
    outside the image are ``v=0, x=y=0``; everything else is ``v=2``.  ``bbox`` and ``area`` come from the
    person's *visible* silhouette pixels (COCO uses the segmentation area as the OKS scale).  Persons with no
    visible pixel at all are not annotated; persons with pixels but no labelled keypoint are kept with
    ``num_keypoints == 0`` (COCO convention; training loaders skip them).

Difficulty knobs (all in :class:`SynthConfig`)
    ``clutter`` (background shapes, texture and limb-like distractor strokes in the limb hues),
    ``occlusion`` (how often people are placed overlapping each other, number of occluder blobs),
    ``noise`` (Gaussian noise, blur, brightness/contrast and lighting variation),
    ``pose`` (how often people are seen from the side or back, rolled in the image plane or lying),
    ``min_person_height`` / ``max_person_height`` (scale range), ``persons_per_image`` and ``jpeg_quality``.

Determinism
    Every image uses its own ``numpy.random.default_rng`` seeded from ``(seed, split, index)``, so the output
    (JSON and JPEG bytes) depends only on the config, never on ``workers``.  All files are written with
    :func:`poserepro.io.atomic_write_bytes` (temporary file, fsync, :func:`os.replace`).

Modules
    :mod:`.config` constants, :class:`SynthConfig` and its checks; :mod:`.skeleton` the 3-D body model;
    :mod:`.draw` drawing primitives; :mod:`.render` one image and its labels; :mod:`.detections` the simulated
    detector; :mod:`.writer` the files; :mod:`.pool` the worker processes; this module the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from ...errors import DataError
from .config import (
    FLIP_PAIRS,
    GENERATOR_VERSION,
    KEYPOINT_NAMES,
    PERSON_CATEGORY,
    SKELETON,
    SPLITS,
    VAL_ID_OFFSET,
    SynthConfig,
    SynthSummary,
    check_config,
)
from .detections import make_detections
from .pool import run_workers as _run_workers
from .render import Task, render_to_file
from .writer import (
    image_records,
    prepare_dirs,
    remove_marker,
    write_annotations,
    write_config,
    write_detections,
)

__all__ = [
    "FLIP_PAIRS",
    "GENERATOR_VERSION",
    "KEYPOINT_NAMES",
    "PERSON_CATEGORY",
    "SKELETON",
    "VAL_ID_OFFSET",
    "SynthConfig",
    "SynthSummary",
    "synthesize",
]

#: Fewest images per worker process worth its start-up cost (a fresh interpreter importing numpy and cv2).
_IMAGES_PER_WORKER = 8


def _check_arguments(out_dir: str | Path, workers: int, progress: Callable[[int, int], None] | None) -> None:
    """Raise :class:`DataError` for a bad ``workers``, ``progress`` or an empty ``out_dir``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"workers must be a positive integer, got {workers!r}")
    if progress is not None and not callable(progress):
        raise DataError("progress must be a callable progress(done, total) or None")
    if isinstance(out_dir, str) and not out_dir.strip():
        raise DataError("out_dir is empty; give a directory for the synthetic dataset")


def _render_all(
    tasks: list[Task], workers: int, progress: Callable[[int, int], None] | None
) -> list[list[dict[str, Any]]]:
    """Render every task (in this process, or in worker processes for bigger jobs); annotations in task order."""
    nproc = min(workers, len(tasks) // _IMAGES_PER_WORKER)
    results: list[list[dict[str, Any]] | None] = [None] * len(tasks)
    stream: Generator[tuple[int, list[dict[str, Any]]], None, None]
    stream = _run_workers(tasks, nproc) if nproc > 1 else ((i, render_to_file(t)) for i, t in enumerate(tasks))
    try:
        for done, (pos, anns) in enumerate(stream, start=1):
            results[pos] = anns
            if progress is not None:
                progress(done, len(tasks))
    finally:
        stream.close()  # stops worker processes early if anything above raised
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def synthesize(
    out_dir: str | Path,
    config: SynthConfig = SynthConfig(),
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Generate the synthetic benchmark under ``out_dir`` and return where everything went.

    Args:
        out_dir: dataset root (created if missing; existing files of the same names are replaced).
        config: what to generate (see :class:`SynthConfig`).
        workers: worker processes for rendering; the output is identical for any value.
        progress: called as ``progress(done, total)`` in this process after each image.

    Raises:
        DataError: a bad config value, ``workers < 1`` or an unwritable ``out_dir``.
    """
    check_config(config)
    _check_arguments(out_dir, workers, progress)
    root = Path(out_dir).expanduser()
    dirs = prepare_dirs(root)
    marker = remove_marker(root)  # the config file marks a complete dataset: none until this run has finished

    counts = {"train": int(config.num_train), "val": int(config.num_val)}
    w, h = int(config.image_size[0]), int(config.image_size[1])
    images = {s: image_records(s, counts[s], w, h) for s in SPLITS}
    tasks: list[Task] = [
        (config, split, index, str(dirs[split] / im["file_name"]))
        for split in SPLITS
        for index, im in enumerate(images[split])
    ]
    results = _render_all(tasks, workers, progress)
    per_split = {"train": results[: counts["train"]], "val": results[counts["train"] :]}

    ann_files = {s: dirs["ann"] / f"person_keypoints_{s}.json" for s in SPLITS}
    num_persons = {
        s: write_annotations(ann_files[s], s, config.seed, images[s], per_split[s]) for s in SPLITS
    }
    det_file = dirs["det"] / "person_detections_val.json"
    write_detections(det_file, make_detections(config, images["val"], per_split["val"]))
    write_config(marker, config)
    return SynthSummary(
        root=root,
        num_images=dict(counts),
        num_persons=num_persons,
        ann_files=ann_files,
        det_file=det_file,
        image_dirs={s: dirs[s] for s in SPLITS},
    )
