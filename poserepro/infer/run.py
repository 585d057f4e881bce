"""``poserepro infer`` as a library call: images and videos in, COCO keypoint results (and drawn images / MP4s)
out, with everything that was skipped said.

Outputs in ``out_dir``: ``keypoints.json`` (all images; each result also carries its ``file_name``), one
``<video stem>.keypoints.json`` per video (``image_id`` = frame index, plus ``frame``), and with ``draw`` one PNG
per image (``<stem>.png``, lossless; ``<stem>_<image id>.png`` for a second image of the same name) and one
``<video stem>.mp4`` per video. Images and video frames go through the model in chunks of :data:`CHUNK`; video
frames are written losslessly to a temporary folder so that they take the very same data path as image files.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import torch
from torch import nn

from ..draw import draw_box, draw_results
from ..engine.evaluate import inference_copy
from ..errors import DataError
from ..evaluation.coco import write_results
from ..families import family_of
from ..io import atomic_output, atomic_write_bytes
from ..recipes import Recipe
from .boxes import BoxFile, check_matches
from .predict import WHOLE_IMAGE_PADDING, Frame, detect_boxes, predict_frames, whole_frame_box
from .sources import Skipped, Sources, VideoInput

#: ``progress({"done", "total", "what"})`` after each image / frame
ProgressFn = Callable[[dict[str, Any]], None]
#: images / video frames per forward pass
CHUNK = 16


@dataclass
class InferOptions:
    """How to run: box source, flip test, drawing."""

    boxes: BoxFile | None = None
    whole_image: bool = False
    #: ``(model, recipe)`` of a person detector (a whole-image family returning boxes), and its score threshold
    detector: tuple[nn.Module, Recipe] | None = None
    det_thr: float = 0.5
    flip: bool = False
    draw: bool = False
    kpt_thr: float = 0.3
    kpt_scores: bool = True


@dataclass
class Summary:
    """What one run did: per input ``(name, frames, persons, output)`` rows, the files written, what was skipped."""

    rows: list[tuple[str, int, int, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def persons(self) -> int:
        return sum(r[2] for r in self.rows)


def box_mode(model: nn.Module, opts: InferOptions) -> str:
    """``e2e`` (the model finds persons), ``boxes`` (a box file), ``detector`` or ``whole-image``; a top-down model
    with none of them is a one-line error."""
    if family_of(model).whole_image:
        return "e2e"
    given = [m for m, on in (("boxes", opts.boxes is not None), ("detector", opts.detector is not None),
                             ("whole-image", opts.whole_image)) if on]
    if len(given) > 1:
        raise DataError(f"give one person-box source, not both {' and '.join('--' + g for g in given)}")
    if given:
        return given[0]
    raise DataError("this top-down model needs person boxes: pass --boxes FILE (COCO detection JSON, e.g. from "
                    "`poserepro detect`), --detector RUN (a person detector) or --whole-image (one person "
                    "filling each frame)")


def run_inference(model: nn.Module, recipe: Recipe, sources: Sources, out_dir: Path, opts: InferOptions,
                  device: torch.device, progress: ProgressFn | None = None) -> Summary:
    """Run ``model`` on every input of ``sources``; see the module docstring for what is written."""
    mode = box_mode(model, opts)
    # as evaluation runs them: eval-only copies, BatchNorm folded into the convolutions, channels-last
    model = inference_copy(model, recipe, device)
    if opts.detector is not None:
        det, det_recipe = opts.detector
        opts = dataclasses.replace(opts, detector=(inference_copy(det, det_recipe, device), det_recipe))
    summary = Summary(skipped=list(sources.skipped))
    if not sources.images and not sources.videos:
        raise DataError("no usable input: " + "; ".join(f"{s.path}: {s.reason}" for s in sources.skipped)
                        if sources.skipped else "no input paths given")
    spec = recipe.data.keypoint_spec()
    total = len(sources.images) + sum(max(v.frames, 1) for v in sources.videos)
    state = {"done": 0}

    def tick(what: str, n: int = 1) -> None:
        state["done"] += n
        if progress:
            progress({"done": state["done"], "total": total, "what": what})

    images = list(sources.images)
    if mode == "boxes" and opts.boxes is not None and opts.boxes.ids_by_name is not None:
        images = [_renamed(im, opts.boxes.ids_by_name, summary) for im in images]
        images = [im for im in images if im is not None]
        if sources.images and not images:
            sample = ", ".join(sorted(opts.boxes.ids_by_name)[:3]) or "none"
            raise DataError(f"box file {opts.boxes.path} lists none of the {len(sources.images)} images given by "
                            f"file name (it lists {sample}...): is it for other images?")
        if len(images) < len(sources.images):
            tick("(not in the box file)", len(sources.images) - len(images))
    frames = [Frame(im.path, im.image_id, im.size) for im in images]
    if mode == "boxes" and opts.boxes is not None and frames:
        check_matches(opts.boxes, [f.image_id for f in frames], "images")
    boxes = _boxes_for(mode, opts, frames, device)
    if mode in ("boxes", "detector"):
        for f in frames:
            if f.image_id not in boxes:
                summary.skipped.append(Skipped(str(f.path), _no_box(mode, opts, f.image_id)))
                tick(f.path.name)
        frames = [f for f in frames if f.image_id in boxes]
    results: list[dict] = []
    used: set[str] = set()
    pad = WHOLE_IMAGE_PADDING if mode == "whole-image" else None
    for start in range(0, len(frames), CHUNK):  # a few images per forward pass, memory bounded
        chunk = frames[start:start + CHUNK]
        by_image: dict[int, list[dict]] = {f.image_id: [] for f in chunk}
        for r in predict_frames(model, recipe, chunk, boxes, opts.flip, device, pad):
            by_image[int(r["image_id"])].append(r)
        for frame in chunk:
            res = by_image[frame.image_id]
            for r in res:
                r["file_name"] = frame.path.name
            results += res
            out = _write_drawn(frame, res, boxes.get(frame.image_id, []) if mode in ("boxes", "detector") else [],
                               out_dir, spec, opts, used, summary) if opts.draw else ""
            summary.rows.append((frame.path.name, 1, len(res), out))
            tick(frame.path.name)
    if sources.images:
        dest = out_dir / "keypoints.json"
        write_results(dest, results)
        summary.files.insert(0, dest)
    for video in sources.videos:
        _run_video(model, recipe, video, out_dir, opts, mode, device, summary, tick)
    return summary


def _write_drawn(frame: Frame, res: list[dict], boxes: list[dict], out_dir: Path, spec: Any, opts: InferOptions,
                 used: set[str], summary: Summary) -> str:
    """Draw one image's results into ``<stem>.png`` (``<stem>_<id>.png`` when two folders share a name)."""
    img = cv2.imread(str(frame.path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    _draw(img, res, boxes, spec, opts)
    name = f"{frame.path.stem}.png"
    name = name if name not in used else f"{frame.path.stem}_{frame.image_id}.png"
    used.add(name)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise DataError(f"cannot encode the drawn image for {frame.path}")
    atomic_write_bytes(out_dir / name, buf.tobytes())
    summary.files.append(out_dir / name)
    return name


def _renamed(im: Any, ids_by_name: dict[str, int], summary: Summary) -> Any:
    """The image with the id an annotation-style box file gives its file name (``None`` + skipped if absent)."""
    from dataclasses import replace

    if im.path.name not in ids_by_name:
        summary.skipped.append(Skipped(str(im.path), "not listed in the box file's 'images'"))
        return None
    return replace(im, image_id=ids_by_name[im.path.name])


def _boxes_for(mode: str, opts: InferOptions, frames: list[Frame], device: torch.device) -> dict[int, list[dict]]:
    """Boxes by image id for ``frames`` (frames without a box are absent)."""
    if mode == "detector" and opts.detector is not None:
        return detect_boxes(opts.detector[0], opts.detector[1], frames, device, opts.det_thr)
    if mode == "whole-image":
        return {f.image_id: [whole_frame_box(f.size)] for f in frames}
    if mode != "boxes" or opts.boxes is None:
        return {}
    return {f.image_id: opts.boxes.by_id[f.image_id] for f in frames if opts.boxes.by_id.get(f.image_id)}


def _no_box(mode: str, opts: InferOptions, image_id: int | None) -> str:
    what = f" for image id {image_id}" if image_id is not None else ""
    if mode == "detector":
        return f"the detector found no person{what} scored >= {opts.det_thr} (--det-thr)"
    return f"no person box{what} in {opts.boxes.path.name if opts.boxes else 'the box file'}"


def _draw(img: Any, results: list[dict], boxes: list[dict], spec: Any, opts: InferOptions) -> None:
    for b in boxes:
        draw_box(img, b["bbox"], b.get("score"))
    draw_results(img, results, spec, opts.kpt_thr, opts.kpt_scores, boxes=False)


def _run_video(model: nn.Module, recipe: Recipe, video: VideoInput, out_dir: Path, opts: InferOptions, mode: str,
               device: torch.device, summary: Summary, tick: Callable[..., None]) -> None:
    """Frames in chunks of :data:`CHUNK`: predict, draw into the MP4, collect the results."""
    spec = recipe.data.keypoint_spec()
    if mode == "boxes" and opts.boxes is not None:
        check_matches(opts.boxes, list(range(max(video.frames, 1))), f"frames of {video.path.name}")
    cap = cv2.VideoCapture(str(video.path))
    results: list[dict] = []
    mp4 = out_dir / f"{video.path.stem}.mp4"
    n = 0
    missing_boxes = 0
    with tempfile.TemporaryDirectory(prefix="poserepro-frames-") as tmp, \
            (atomic_output(mp4) if opts.draw else _nothing()) as tmp_mp4:
        writer = None
        if opts.draw:
            writer = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), video.fps, video.size)
            if not writer.isOpened():
                raise DataError(f"OpenCV cannot write an MP4 ({mp4}): its build lacks the mp4v encoder")
        try:
            done = False
            while not done:
                chunk: list[tuple[Frame, Any]] = []
                while len(chunk) < CHUNK:
                    ok, img = cap.read()
                    if not ok or img is None:
                        done = True
                        break
                    path = Path(tmp) / f"{n:08d}.bmp"  # lossless: the crop sees the decoded frame exactly
                    cv2.imwrite(str(path), img)
                    chunk.append((Frame(path, n, (img.shape[1], img.shape[0])), img))
                    n += 1
                if not chunk:
                    break
                frames = [f for f, _ in chunk]
                boxes = _boxes_for(mode, opts, frames, device)
                if mode in ("boxes", "detector"):
                    missing_boxes += sum(1 for f in frames if f.image_id not in boxes)
                res = predict_frames(model, recipe, frames, boxes, opts.flip, device,
                                     WHOLE_IMAGE_PADDING if mode == "whole-image" else None)
                by_frame: dict[int, list[dict]] = {}
                for r in res:
                    r["file_name"], r["frame"] = video.path.name, r["image_id"]
                    by_frame.setdefault(r["image_id"], []).append(r)
                results += res
                for f, img in chunk:
                    if writer is not None:
                        _draw(img, by_frame.get(f.image_id, []), boxes.get(f.image_id, [])
                              if mode in ("boxes", "detector") else [], spec, opts)
                        writer.write(img)
                    f.path.unlink(missing_ok=True)
                tick(f"{video.path.name} frame {chunk[-1][0].image_id}", len(chunk))
        finally:
            cap.release()
            if writer is not None:
                writer.release()
    if missing_boxes:
        summary.skipped.append(Skipped(str(video.path), f"{missing_boxes} of {n} frames: "
                                                        + _no_box(mode, opts, None)))
    dest = out_dir / f"{video.path.stem}.keypoints.json"
    write_results(dest, results)
    summary.files.append(dest)
    if opts.draw:
        summary.files.append(mp4)
    summary.rows.append((video.path.name, n, len(results), mp4.name if opts.draw else ""))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
