"""What ``poserepro infer`` runs on: image files, folders of images and videos, each checked up front.

Every path that cannot be used is kept with the reason (:class:`Skipped`), never dropped silently: an image
OpenCV cannot decode, a video it cannot open, a folder without images, a path that does not exist.

Image ids (the ``image_id`` of the COCO results): the number in the file name when every image's name is a
distinct number (COCO's ``000000000785.jpg`` → 785, so COCO detection files match), else the image's position
1..N in the order given (folders sorted by name). A box file that is a COCO annotation file renames them by its
own ``images`` list (:mod:`poserepro.infer.boxes`). Video frames are numbered 0, 1, 2 ... in their own results
file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


@dataclass(frozen=True)
class ImageInput:
    """One decodable image: its path, results id and size ``(width, height)``."""

    path: Path
    image_id: int
    size: tuple[int, int]


@dataclass(frozen=True)
class VideoInput:
    """One video OpenCV opens: path, frame rate, size ``(width, height)`` and frame count (0 when unknown)."""

    path: Path
    fps: float
    size: tuple[int, int]
    frames: int


@dataclass(frozen=True)
class Skipped:
    """An input that is not used, and why (one line)."""

    path: str
    reason: str


@dataclass
class Sources:
    """The usable images and videos of the given paths, and what was skipped."""

    images: list[ImageInput]
    videos: list[VideoInput]
    skipped: list[Skipped]


def _image_size(path: Path) -> tuple[int, int] | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if img is None else (int(img.shape[1]), int(img.shape[0]))


def open_video(path: Path) -> VideoInput | None:
    """The video's properties, or ``None`` when OpenCV cannot open it or read a first frame."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return VideoInput(path, fps if fps > 0 else 25.0, (int(frame.shape[1]), int(frame.shape[0])), max(n, 0))
    finally:
        cap.release()


def discover(paths: list[str | Path]) -> Sources:
    """Expand ``paths`` (image files, videos, folders of images and videos, not recursive) into checked inputs."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            known = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            inside = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in known)
            if not inside:
                skipped.append(Skipped(str(p), "folder holds no images or videos (by file suffix)"))
            files += inside
        elif p.is_file():
            files.append(p)
        else:
            skipped.append(Skipped(str(p), "no such file or folder"))
    images: list[tuple[Path, tuple[int, int]]] = []
    videos: list[VideoInput] = []
    seen: set[Path] = set()
    for f in files:
        if f.resolve() in seen:  # the same file named twice (or via its folder): run once, say so
            skipped.append(Skipped(str(f), "given more than once: used once"))
            continue
        seen.add(f.resolve())
        if f.suffix.lower() in VIDEO_SUFFIXES:
            v = open_video(f)
            if v is None:
                skipped.append(Skipped(str(f), "OpenCV cannot open this video (or read its first frame)"))
            else:
                videos.append(v)
            continue
        size = _image_size(f)
        if size is None:
            skipped.append(Skipped(str(f), "OpenCV cannot decode this image (corrupt or not an image)"))
        else:
            images.append((f, size))
    stems = [f.stem for f, _ in images]
    numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    ids = [int(s) for s in stems] if numeric else list(range(1, len(images) + 1))
    return Sources([ImageInput(f, i, size) for (f, size), i in zip(images, ids)], videos, skipped)
