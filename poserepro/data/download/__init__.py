"""Resumable, verified downloads and safe archive extraction (standard library only, no UI).

The package has one job per module:

* :mod:`.transfer` -- :func:`download_file` (HTTP(S) with ``Range`` resume, size / sha256 / md5 checks,
  ``.part`` and ``.corrupt`` files) and :func:`file_digests`;
* :mod:`.archives` -- :func:`safe_extract` (zip / tar members checked against path traversal and links
  pointing outside; everything lands in place only once the whole archive extracted);
* :mod:`.markers` -- the ``.verified`` markers and the checksum manifest below ``root/<name>/.poserepro/``;
* :mod:`.local` -- parts found on local disk (``--from``): archives, or already-extracted folders to symlink;
* :mod:`.datasets` -- :func:`download_dataset`, which puts a catalogued dataset's parts under
  ``root/<name>/`` from the official host, a ``mirror`` or a local folder / archive (``from_dir``).

Every name other code used from the former single module is importable from here. Tests that replace a
helper (``_open_url``, ``_write_chunk``) patch it in :mod:`.transfer`, where it is looked up.
"""

from __future__ import annotations

from poserepro.data.download.archives import safe_extract
from poserepro.data.download.datasets import download_dataset
from poserepro.data.download.markers import (
    MANIFEST_NAME,
    META_DIR,
    load_manifest,
    manifest_path,
    marker_path,
    read_marker,
)
from poserepro.data.download.transfer import (
    ChecksumMismatch,
    ProgressFn,
    _open_url,
    _write_chunk,
    download_file,
    file_digests,
)

__all__ = [
    "MANIFEST_NAME",
    "META_DIR",
    "ChecksumMismatch",
    "ProgressFn",
    "_open_url",
    "_write_chunk",
    "download_dataset",
    "download_file",
    "file_digests",
    "load_manifest",
    "manifest_path",
    "marker_path",
    "read_marker",
    "safe_extract",
]
