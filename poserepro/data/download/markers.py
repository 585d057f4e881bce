"""Per-dataset bookkeeping below ``root/<name>/.poserepro/``: ``.verified`` markers and the checksum manifest.

A marker records which archive (and its sha256) produced a part's extracted folders; the manifest records
size / sha256 / md5 of archives without published checksums (MPII) at first download, so that later downloads
must match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poserepro.data.datasets_catalog import CatalogEntry
from poserepro.errors import DataError
from poserepro.io import atomic_write_bytes, read_json

#: Per-dataset folder (below ``root/<name>/``) holding verified markers and the checksum manifest.
META_DIR = ".poserepro"
MANIFEST_NAME = "manifest.json"

#: What a part's archive is checked against: ``(size, sha256, md5, from_manifest)``.
Expected = tuple[int | None, str | None, str | None, bool]


def marker_path(ds_root: Path, entry: CatalogEntry) -> Path:
    """Path of the ``.verified`` marker of ``entry`` below ``root/<dataset>``."""
    return Path(ds_root) / META_DIR / f"{entry.filename}.verified"


def read_marker(path: Path) -> dict[str, Any] | None:
    """Content of a verified marker, or ``None`` when absent or unreadable."""
    try:
        data = read_json(path, what="marker")
    except (DataError, OSError):  # absent, unreadable or malformed: treated as "not verified"
        return None
    return data if isinstance(data, dict) else None


def manifest_path(ds_root: Path) -> Path:
    """Path of the checksum manifest (sizes / sha256 recorded for archives without published checksums)."""
    return Path(ds_root) / META_DIR / MANIFEST_NAME


def load_manifest(ds_root: Path) -> dict[str, Any]:
    """The manifest as ``{filename: {"size", "sha256", "md5", "url", "recorded"}}`` (empty if none)."""
    data = read_marker(manifest_path(ds_root))
    return data or {}


def write_json(path: Path, data: Any) -> None:
    """Write a marker or the manifest atomically (sorted keys, two-space indent, trailing newline)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def expected_checksums(entry: CatalogEntry, manifest: dict[str, Any]) -> Expected:
    """(size, sha256, md5, from_manifest) to check ``entry`` against."""
    if entry.has_checksum:
        return entry.size, entry.sha256, entry.md5, False
    rec = manifest.get(entry.filename)
    if isinstance(rec, dict) and rec.get("sha256"):
        return rec.get("size"), rec["sha256"], rec.get("md5"), True
    return entry.size, None, None, False


def is_done(ds_root: Path, entry: CatalogEntry) -> bool:
    """Whether ``entry``'s marker exists, matches its published sha256 and its extracted paths are present."""
    marker = read_marker(marker_path(ds_root, entry))
    if marker is None or not entry.produces:
        return False
    if entry.sha256 and marker.get("sha256") not in (None, entry.sha256):
        return False  # stale marker from another file
    return all((ds_root / p).exists() for p in entry.produces)
