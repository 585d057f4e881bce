"""Put a dataset's catalogued parts under ``root/<name>/``: fetch or find, verify, extract, mark.

:func:`download_dataset` puts the catalog's parts of COCO or MPII under ``root/<name>/`` idempotently, from
the official host, a ``mirror`` with the same layout, or a local folder / archive (``from_dir``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from poserepro.data.datasets_catalog import CatalogEntry, get_entries, parse_parts
from poserepro.data.download.archives import safe_extract
from poserepro.data.download.local import link_extracted, resolve_from
from poserepro.data.download.markers import (
    Expected,
    expected_checksums,
    is_done,
    load_manifest,
    manifest_path,
    marker_path,
    read_marker,
    write_json,
)
from poserepro.data.download.transfer import ChecksumMismatch, ProgressFn, _mismatch, download_file, file_digests
from poserepro.errors import DownloadError


# -------------------------------------------------------------------------------------------- dataset
def download_dataset(
    name: str,
    root: Path,
    parts: Iterable[str] | str | None = None,
    mirror: str | None = None,
    from_dir: Path | None = None,
    progress: ProgressFn | None = None,
    *,
    keep_archives: bool = False,
    timeout: float = 30,
) -> dict[str, dict[str, Any]]:
    """Fetch, verify and extract the requested ``parts`` of dataset ``name`` into ``root/<name>/``.

    Final layout: ``root/coco/{train2017,val2017,test2017,annotations}/`` and ``root/mpii/{images,annot}/``.
    Idempotent: a part whose ``.verified`` marker (holding the archive hash, in ``root/<name>/.poserepro/``)
    exists and whose extracted paths are present is skipped. Archives without published checksums (MPII)
    get their size / sha256 recorded in ``root/<name>/.poserepro/manifest.json`` on first download; later
    downloads must match that record.

    Args:
        name: ``"coco"`` or ``"mpii"``.
        root: data root (the CLI's ``--root``, default ``./data``).
        parts: part names (list or comma-separated string); ``None`` = the catalog's defaults.
        mirror: replaces the scheme + host of the official URLs (the mirror keeps the relative paths).
        from_dir: a local folder holding the archives (or already-extracted folders, which are symlinked
            into ``root``), or a single archive; nothing is downloaded.
        progress: optional ``progress(label, done, total)`` callback.
        keep_archives: keep downloaded archives in ``root/<name>/downloads/`` after extraction.
        timeout: socket timeout in seconds.

    Returns:
        ``{part: {"status": "downloaded" | "local" | "linked" | "skipped", "path", "archive", "sha256",
        "checksum": "published" | "manifest" | "recorded" | "none", "note"}}``.
    """
    entries = get_entries(name)
    wanted = parse_parts(name, list(parts) if parts is not None and not isinstance(parts, str) else parts)
    _refuse_parts_without_url(name, entries, wanted)
    ds_root = Path(root) / name
    local: dict[str, tuple[str, Path]] | None = None
    if from_dir is not None:
        local = resolve_from(Path(from_dir), name, entries, wanted)
        wanted = [p for p in wanted if p in local]

    results: dict[str, dict[str, Any]] = {}
    for p in wanted:
        e = entries[p]
        if is_done(ds_root, e):
            results[p] = _skipped(ds_root, e)
            continue
        results[p] = _fetch_part(
            ds_root, e, mirror, local[p] if local else None, progress, keep_archives=keep_archives, timeout=timeout
        )
    return results


def _refuse_parts_without_url(name: str, entries: dict[str, CatalogEntry], wanted: list[str]) -> None:
    """Raise :class:`DownloadError` for the first requested part that has no stable public URL."""
    for p in wanted:
        e = entries[p]
        if e.where is not None:
            hint = "pass the file with --det-file PATH" if p == "dets" else "place the files as described"
            raise DownloadError(f"{name} part {p!r} has no stable public URL: {e.where}; {hint}")


def _skipped(ds_root: Path, e: CatalogEntry) -> dict[str, Any]:
    """Result of a part whose marker and extracted paths are already in place."""
    marker = read_marker(marker_path(ds_root, e)) or {}
    return {
        "status": "skipped",
        "path": str(ds_root),
        "archive": marker.get("archive"),
        "sha256": marker.get("sha256"),
        "checksum": marker.get("checksum", "none"),
        "note": "already verified",
    }


def _fetch_part(
    ds_root: Path,
    e: CatalogEntry,
    mirror: str | None,
    local: tuple[str, Path] | None,
    progress: ProgressFn | None,
    *,
    keep_archives: bool,
    timeout: float,
) -> dict[str, Any]:
    """Link, or verify + extract + mark, one part; its result row."""
    if local is not None and local[0] == "extracted":
        return _link_part(ds_root, e, local[1])
    manifest = load_manifest(ds_root)
    expected = expected_checksums(e, manifest)
    downloaded = local is None
    if local is not None:
        archive, got = local[1], _verify_local(local[1], expected, manifest_path(ds_root), progress)
    else:
        archive = ds_root / "downloads" / e.filename
        got = _download_archive(e.url_for(mirror), archive, expected, manifest_path(ds_root), progress, timeout)
    source = e.url_for(mirror) if downloaded else str(archive)
    checksum, note = _checksum_status(ds_root, e, expected[3], got)
    try:
        dest_dir = _extract_and_mark(ds_root, e, archive, got, checksum)
    except DownloadError:
        if downloaded:  # a refused download is not kept: a re-run would reuse it as a complete file
            with contextlib.suppress(OSError):
                archive.unlink()
        raise
    if checksum == "recorded":  # trusted only once it extracted cleanly: a refused archive is not recorded
        _record(ds_root, e, got, manifest, source)
    if downloaded and not keep_archives:
        with contextlib.suppress(OSError):
            archive.unlink()
    return {
        "status": "downloaded" if downloaded else "local",
        "path": str(dest_dir),
        "archive": str(archive),
        "sha256": got["sha256"],
        "checksum": checksum,
        "note": note,
    }


def _link_part(ds_root: Path, e: CatalogEntry, source: Path) -> dict[str, Any]:
    """Symlink an already-extracted part from ``source`` and write its (hash-less) marker."""
    linked = link_extracted(source, ds_root, e)
    write_json(
        marker_path(ds_root, e),
        {
            "part": e.part,
            "archive": None,
            "sha256": None,
            "checksum": "none",
            "source": str(source),
            "linked": linked,
            "time": time.time(),
        },
    )
    return {
        "status": "linked",
        "path": str(ds_root),
        "archive": None,
        "sha256": None,
        "checksum": "none",
        "note": f"symlinked already-extracted {', '.join(linked) or 'folders'} from {source} (no hash)",
    }


def _verify_local(archive: Path, expected: Expected, mpath: Path, progress: ProgressFn | None) -> dict[str, Any]:
    """Digests of a local archive (``--from``); one that does not match ``expected`` raises."""
    size, sha256, md5, from_manifest = expected
    got = file_digests(archive, progress=progress)
    problem = _mismatch(got, size, sha256, md5)
    if problem is not None:
        where = f" (recorded in {mpath} at first download)" if from_manifest else ""
        raise DownloadError(f"{archive} does not verify: {problem}{where}; replace it or drop --from")
    return got


def _download_archive(
    url: str | None, archive: Path, expected: Expected, mpath: Path, progress: ProgressFn | None, timeout: float
) -> dict[str, Any]:
    """Download and verify a part's archive; its digests. A mismatch with a manifest record says so."""
    size, sha256, md5, from_manifest = expected
    assert url is not None
    got: dict[str, Any] = {}
    try:
        download_file(
            url, archive, size=size, sha256=sha256, md5=md5, progress=progress, timeout=timeout, digests=got
        )
    except ChecksumMismatch as err:
        if from_manifest:
            raise ChecksumMismatch(
                f"{err} (expected value recorded in {mpath} at first download; "
                "remove that entry if the server's file legitimately changed)"
            ) from None
        raise
    return got


def _checksum_status(ds_root: Path, e: CatalogEntry, from_manifest: bool, got: dict[str, Any]) -> tuple[str, str]:
    """``(checksum, note)`` of a verified archive: ``published``, ``manifest`` or ``recorded`` (a first download
    without a published checksum, recorded by :func:`_record` once it has extracted)."""
    mpath = manifest_path(ds_root)
    if e.has_checksum:
        return "published", "size and checksum verified"
    if from_manifest:
        return "manifest", f"no published checksum; matches the sha256 recorded in {mpath}"
    return "recorded", f"no published checksum; recorded size {got['size']} and sha256 {got['sha256']} in {mpath}"


def _record(ds_root: Path, e: CatalogEntry, got: dict[str, Any], manifest: dict[str, Any], source: str) -> None:
    """Record a first download's size and digests in the manifest (with ``source``, its URL or local path)."""
    manifest[e.filename] = {
        "size": got["size"],
        "sha256": got["sha256"],
        "md5": got["md5"],
        "url": source,
        "recorded": time.time(),
    }
    write_json(manifest_path(ds_root), manifest)


def _extract_and_mark(ds_root: Path, e: CatalogEntry, archive: Path, got: dict[str, Any], checksum: str) -> Path:
    """Extract ``archive``, check it produced the part's paths, write the marker; the extraction folder."""
    dest_dir = ds_root / e.extract_to if e.extract_to else ds_root
    safe_extract(archive, dest_dir)
    missing = [p for p in e.produces if not (ds_root / p).exists()]
    if missing:
        raise DownloadError(
            f"{archive.name} did not contain {missing[0]}: is it the right archive for {e.part!r}?"
        )
    write_json(
        marker_path(ds_root, e),
        {
            "part": e.part,
            "archive": e.filename,
            "sha256": got["sha256"],
            "size": got["size"],
            "checksum": checksum,
            "time": time.time(),
        },
    )
    return dest_dir
