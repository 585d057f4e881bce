"""Catalog of the public dataset archives that ``poserepro data download`` knows.

Each :class:`CatalogEntry` is one archive: where it lives (``base`` host + ``rel_path``, so ``--mirror URL``
replaces only the host part), what it should hash to, where it is extracted under ``root/<dataset>/`` and
which paths must exist afterwards.

Checksums: COCO publishes none; the COCO 2017 sizes / md5 / sha256 below are third-party figures (see
FACTS §7). ``image_info_test2017.zip`` has no recorded size and is verified by hash only. MPII publishes
neither sizes nor checksums: the first download records size and sha256 in a manifest
(``root/mpii/.poserepro/manifest.json``) and later downloads are checked against that record.

Detector-box files (HRNet's AP 56 / AP 60.9 person boxes, PRTR's DETR boxes) and the HRNet-style MPII JSON
conversion have no stable public URL; their entries carry a ``where`` message instead of a URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from poserepro.errors import UnknownNameError, suggest

COCO_HOST = "http://images.cocodataset.org"
MPII_HOST = "https://datasets.d2.mpi-inf.mpg.de"


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable archive (or one file without a stable URL when ``where`` is set).

    Attributes:
        dataset: ``"coco"`` or ``"mpii"``.
        part: the name used with ``--parts`` (``train``, ``val``, ``annotations``, ...).
        base: scheme + host of the official server, e.g. ``http://images.cocodataset.org``.
        rel_path: path below ``base``, e.g. ``zips/val2017.zip``; a mirror must keep this layout.
        size: expected size in bytes, ``None`` when unknown.
        md5, sha256: expected lowercase hex digests, ``None`` when unknown.
        extract_to: directory below ``root/<dataset>`` the archive is extracted into (``""`` = that dir).
        produces: paths below ``root/<dataset>`` that must exist once the part is in place.
        description: one line for tables and help.
        where: for files with no stable public URL, where to get them by hand (``base``/``rel_path`` empty).
    """

    dataset: str
    part: str
    base: str
    rel_path: str
    size: int | None
    md5: str | None
    sha256: str | None
    extract_to: str
    produces: tuple[str, ...]
    description: str
    where: str | None = None

    @property
    def filename(self) -> str:
        """File name of the archive (last component of ``rel_path``)."""
        return self.rel_path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str | None:
        """Official URL, or ``None`` for entries that only have a ``where`` message."""
        if self.where is not None or not self.base:
            return None
        return f"{self.base.rstrip('/')}/{self.rel_path}"

    def url_for(self, mirror: str | None = None) -> str | None:
        """URL on ``mirror`` (scheme + host [+ prefix]) when given, else the official URL."""
        if self.url is None:
            return None
        if mirror:
            return f"{mirror.rstrip('/')}/{self.rel_path}"
        return self.url

    @property
    def has_checksum(self) -> bool:
        """Whether a published (or third-party) checksum is known for this archive."""
        return bool(self.sha256 or self.md5)


HRNET_DETS_WHERE = (
    "HRNet's person boxes (COCO_val2017_detections_AP_H_56_person.json, detector AP 56.4; "
    "COCO_test-dev2017_detections_AP_H_609_person.json, AP 60.9) are hosted only on the HRNet authors' "
    "OneDrive / Google Drive, linked from the 'Data preparation' section of "
    "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch; PRTR's DETR boxes "
    "(COCO_val2017_detr_detections.json, COCO_test-dev2017_detr_detections.json) are on the OneDrive linked "
    "from 'Data preparation' in https://github.com/mlpc-ucsd/PRTR/tree/main/two_stage"
)

MPII_JSON_WHERE = (
    "the HRNet-style MPII conversion (annot/train.json, annot/valid.json, annot/gt_valid.mat) is hosted "
    "on the HRNet authors' OneDrive / Google Drive (see 'Data preparation' in "
    "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch) and re-published by mmpose as "
    "mpii_annotations.tar; put the files into ROOT/mpii/annot/"
)

_COCO: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        dataset="coco",
        part="train",
        base=COCO_HOST,
        rel_path="zips/train2017.zip",
        size=19_336_861_798,
        md5="cced6f7f71b7629ddf16f17bbcfab6b2",
        sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
        extract_to="",
        produces=("train2017",),
        description="COCO train2017 images (118,287)",
    ),
    CatalogEntry(
        dataset="coco",
        part="val",
        base=COCO_HOST,
        rel_path="zips/val2017.zip",
        size=815_585_330,
        md5="442b8da7639aecaf257c1dceb8ba8c80",
        sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
        extract_to="",
        produces=("val2017",),
        description="COCO val2017 images (5,000)",
    ),
    CatalogEntry(
        dataset="coco",
        part="test",
        base=COCO_HOST,
        rel_path="zips/test2017.zip",
        size=6_646_970_404,
        md5="77ad2c53ac5d0aea611d422c0938fb35",
        sha256="c7908c3c9f94ba2f3340ebbeec58c25db6be8774f18d68c2f15d0e369d95baba",
        extract_to="",
        produces=("test2017",),
        description="COCO test2017 images (40,670; test-dev is a subset)",
    ),
    CatalogEntry(
        dataset="coco",
        part="annotations",
        base=COCO_HOST,
        rel_path="annotations/annotations_trainval2017.zip",
        size=252_907_541,
        md5="f4bbac642086de4f52a3fdda2de5fa2c",
        sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
        extract_to="",
        produces=("annotations/person_keypoints_train2017.json", "annotations/person_keypoints_val2017.json"),
        description="COCO 2017 train/val annotations (person_keypoints_*.json)",
    ),
    CatalogEntry(
        dataset="coco",
        part="test-info",
        base=COCO_HOST,
        rel_path="annotations/image_info_test2017.zip",
        size=None,  # no recorded size: verified by hash only
        md5="85da7065e5e600ebfee8af1edb634eb5",
        sha256="e52f412dd7195ac8f98d782b44c6dd30ea10241e9f42521f67610fbe055a74f8",
        extract_to="",
        produces=("annotations/image_info_test-dev2017.json",),
        description="COCO test2017 / test-dev2017 image lists (image_info_test-dev2017.json)",
    ),
    CatalogEntry(
        dataset="coco",
        part="dets",
        base="",
        rel_path="person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
        size=None,
        md5=None,
        sha256=None,
        extract_to="person_detection_results",
        produces=(),
        description="person detector boxes (HRNet AP 56 / 60.9, PRTR DETR) - no stable public URL",
        where=HRNET_DETS_WHERE,
    ),
)

_MPII: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        dataset="mpii",
        part="images",
        base=MPII_HOST,
        rel_path="andriluka14cvpr/mpii_human_pose_v1.tar.gz",
        size=None,  # about 12.9 GB; no published size or checksum
        md5=None,
        sha256=None,
        extract_to="",
        produces=("images",),
        description="MPII Human Pose images (12.9 GB)",
    ),
    CatalogEntry(
        dataset="mpii",
        part="annotations",
        base=MPII_HOST,
        rel_path="andriluka14cvpr/mpii_human_pose_v1_u12_2.zip",
        size=None,
        md5=None,
        sha256=None,
        extract_to="annot",
        produces=("annot/mpii_human_pose_v1_u12_2",),
        description="MPII official MATLAB annotations (mpii_human_pose_v1_u12_1.mat)",
    ),
    CatalogEntry(
        dataset="mpii",
        part="json",
        base="",
        rel_path="annot/valid.json",
        size=None,
        md5=None,
        sha256=None,
        extract_to="annot",
        produces=(),
        description="HRNet-style JSON + gt_valid.mat (what TransPose/HRNet/PRTR train on) - no stable URL",
        where=MPII_JSON_WHERE,
    ),
)

#: name -> part -> entry. Read at call time (tests may substitute entries with ``monkeypatch.setitem``).
CATALOG: dict[str, dict[str, CatalogEntry]] = {
    "coco": {e.part: e for e in _COCO},
    "mpii": {e.part: e for e in _MPII},
}

#: Parts fetched when ``--parts`` is not given.
DEFAULT_PARTS: dict[str, tuple[str, ...]] = {
    "coco": ("train", "val", "annotations", "test-info"),
    "mpii": ("images", "annotations"),
}

#: Number of images in each COCO 2017 image folder.
COCO_IMAGE_COUNTS: dict[str, int] = {"train2017": 118_287, "val2017": 5_000, "test2017": 40_670}


def dataset_names() -> list[str]:
    """Names of the datasets in the catalog."""
    return sorted(CATALOG)


def get_entries(name: str) -> dict[str, CatalogEntry]:
    """All catalog entries of dataset ``name`` keyed by part; UnknownNameError for an unknown name."""
    if name not in CATALOG:
        raise UnknownNameError(
            f"unknown dataset {name!r}{suggest(name, dataset_names())}; known: {', '.join(dataset_names())}"
        )
    return CATALOG[name]


def get_entry(name: str, part: str) -> CatalogEntry:
    """The catalog entry for ``name``/``part``; UnknownNameError listing the valid parts otherwise."""
    entries = get_entries(name)
    if part not in entries:
        raise UnknownNameError(
            f"unknown part {part!r} of {name}{suggest(part, list(entries))}; "
            f"valid parts: {', '.join(entries)}"
        )
    return entries[part]


def parse_parts(name: str, parts: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Normalise ``--parts`` (comma-separated string or list; ``None`` = defaults) into checked part names."""
    if parts is None:
        get_entries(name)
        return list(DEFAULT_PARTS[name])
    if isinstance(parts, str):
        parts = [parts]
    out: list[str] = []
    for chunk in parts:
        for p in str(chunk).split(","):
            p = p.strip()
            if p and p not in out:
                get_entry(name, p)
                out.append(p)
    if not out:
        raise UnknownNameError(f"--parts is empty; valid parts of {name}: {', '.join(get_entries(name))}")
    return out
