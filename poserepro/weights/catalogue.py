"""Every known starting-point file: ImageNet classifiers, DETR detectors and the released pose checkpoints.

Each :class:`CatalogueEntry` says where the file is (a URL, or for files without a stable public URL where to get
it by hand) and what the publisher states about it (the sha256 prefix that torch.hub-style file names carry; a
size only where the publisher gives one). Which recipes start from it is computed from the recipes' ``model.init``
(:func:`poserepro.weights.init.used_by`). :func:`fetch_entry` downloads through
:func:`poserepro.data.download.download_file` (resume, size / sha256-prefix check, ``.corrupt`` on mismatch) into
the weights cache, from the official host or a mirror (``$POSEREPRO_WEIGHTS_MIRROR`` / ``--mirror``: scheme +
host [+ prefix] replacing the official one, paths kept).

The released TransPose checkpoints are :data:`poserepro.weights.official.OFFICIAL_WEIGHTS`, listed here as
``kind="official"`` entries rather than copied.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import CheckpointError, UnknownNameError, suggest
from .official import OFFICIAL_WEIGHTS, weights_cache_dir

Kind = Literal["imagenet", "detr", "official"]

#: Environment variable naming a mirror (scheme + host [+ prefix]) that keeps the official URL paths.
MIRROR_ENV = "POSEREPRO_WEIGHTS_MIRROR"

_TORCHVISION = "https://download.pytorch.org/models/"
_DETR = "https://dl.fbaipublicfiles.com/detr/"
_HRNET_WHERE = "by hand: HRNet/HRNet-Image-Classification README model zoo (OneDrive / Baidu)"


@dataclass(frozen=True)
class CatalogueEntry:
    """One starting-point file.

    Attributes:
        name: catalogue name (``resnet50``, ``hrnet_w32``, ``detr_r50``, ``tp_r_256x192_enc4_d256_h1024_mh8``).
        kind: ``imagenet`` (backbone classifier), ``detr`` (COCO detector) or ``official`` (released pose model).
        filename: the file's name, also its name in the weights cache.
        url: official download URL, ``None`` when there is no stable public one (see ``where``).
        where: for files without a URL, where to get them by hand.
        sha256_prefix: leading sha256 hex digits published in the file name, else ``None`` (never a guess).
        size: size in bytes as published, else ``None``.
        arch: what the file holds (``resnet50``, ``hrnet_w32_cls``, ``detr_r50``, or the registered pose model).
        note: one line for the table.
    """

    name: str
    kind: Kind
    filename: str
    url: str | None
    arch: str
    where: str = ""
    sha256_prefix: str | None = None
    size: int | None = None
    note: str = ""

    @property
    def source(self) -> str:
        """The URL, or where to get the file."""
        return self.url or self.where

    def url_for(self, mirror: str | None = None) -> str | None:
        """The URL on ``mirror`` (scheme + host [+ prefix] replacing the official scheme + host; the path kept)."""
        if self.url is None or not mirror:
            return self.url
        path = re.sub(r"^[a-z]+://[^/]+", "", self.url)
        return mirror.rstrip("/") + path


def _hub_prefix(filename: str) -> str | None:
    """The sha256 prefix a torch.hub-style name carries: ``resnet50-19c8e357.pth`` → ``19c8e357``."""
    m = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return m.group(1) if m else None


def _torchvision(depth: int, filename: str) -> CatalogueEntry:
    return CatalogueEntry(
        f"resnet{depth}", "imagenet", filename, _TORCHVISION + filename, f"resnet{depth}",
        sha256_prefix=_hub_prefix(filename), note=f"torchvision ImageNet V1 ResNet-{depth}",
    )


def _hrnet(width: int) -> CatalogueEntry:
    filename = f"hrnetv2_w{width}_imagenet_pretrained.pth"
    return CatalogueEntry(
        f"hrnet_w{width}", "imagenet", filename, None, f"hrnet_w{width}_cls",
        where=_HRNET_WHERE,
        note=f"HRNet-W{width}-C ImageNet classifier (TransPose's configs call it hrnet_w{width}-*.pth)",
    )


def _detr(depth: int, filename: str) -> CatalogueEntry:
    return CatalogueEntry(
        f"detr_r{depth}", "detr", filename, _DETR + filename, f"detr_r{depth}", sha256_prefix=_hub_prefix(filename),
        note=f"DETR-R{depth} COCO detector (91 classes + no-object)",
    )


def _official() -> dict[str, CatalogueEntry]:
    out = {}
    for name, w in OFFICIAL_WEIGHTS.items():
        out[name] = CatalogueEntry(name, "official", w.url.rsplit("/", 1)[-1], w.url, w.model, size=w.size,
                                   note=f"released {w.model} ({w.note})" if w.note else f"released {w.model}")
    return out


#: Every starting-point file by name.
CATALOGUE: dict[str, CatalogueEntry] = {
    e.name: e for e in (
        _torchvision(18, "resnet18-5c106cde.pth"), _torchvision(50, "resnet50-19c8e357.pth"),
        _torchvision(101, "resnet101-5d3b4d8f.pth"), _torchvision(152, "resnet152-b121ed2d.pth"),
        _hrnet(32), _hrnet(48),
        _detr(50, "detr-r50-e632da11.pth"), _detr(101, "detr-r101-2c7b67e5.pth"),
    )
} | _official()


def get_entry(name: str) -> CatalogueEntry:
    """The catalogue entry ``name`` (``resnet50``, ``detr_r50``, an official checkpoint name, ...)."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    raise UnknownNameError(f"no starting-point file named {name!r}{suggest(name, list(CATALOGUE))}; "
                           "see `poserepro weights list`")


def fetch_entry(entry: CatalogueEntry, cache_dir: Path | None = None, mirror: str | None = None) -> Path:
    """A verified local copy of ``entry``: downloaded into the weights cache (resumable) if it has a URL, else
    looked up there by file name. ``mirror`` defaults to ``$POSEREPRO_WEIGHTS_MIRROR``."""
    cache = cache_dir or weights_cache_dir()
    dest = cache / entry.filename
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if mirror is not None and not re.match(r"^https?://[^/]+", mirror):
        raise CheckpointError(f"weights mirror {mirror!r} (--mirror / ${MIRROR_ENV}) must be an http(s) URL "
                              f"(scheme + host [+ prefix]); a local copy goes into {cache} ($POSEREPRO_WEIGHTS)")
    url = entry.url_for(mirror)
    if url is None:
        if dest.is_file():
            return dest
        raise CheckpointError(f"{entry.name} has no stable public URL: get {entry.filename} {entry.where} and put it "
                              f"in {cache} ($POSEREPRO_WEIGHTS), or pass imagenet:PATH")
    stamp = (str(dest), entry.sha256_prefix)
    if dest.is_file() and _VERIFIED.get(stamp) == _file_stamp(dest):
        return dest  # verified earlier in this process and unchanged since: not hashed again
    from ..data.download import download_file
    from ..io import check_writable

    if not dest.is_file():  # a read-only cache that holds the file is fine: it is only verified
        check_writable(cache, "$POSEREPRO_WEIGHTS (the weights cache)", folder=True)
    download_file(url, dest, size=entry.size, sha256=None, md5=None, sha256_prefix=entry.sha256_prefix)
    _VERIFIED[stamp] = _file_stamp(dest)
    return dest


_VERIFIED: dict[tuple[str, str | None], tuple[int, int]] = {}


def _file_stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns
