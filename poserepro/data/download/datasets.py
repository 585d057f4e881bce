"""Put a dataset's catalogued parts under ``root/<name>/``: fetch or find, verify, extract, mark.

:func:`download_dataset` puts the catalog's parts of COCO or MPII under ``root/<name>/`` idempotently, from
the official host, a ``mirror`` with the same layout, or a local folder / archive (``from_dir``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from poserepro.data.datasets_catalog import CatalogEntry, get_entries, parse_parts
from poserepro.data.download.archives import safe_extract
from poserepro.data.download.markers import (
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


# ------------------------------------------------------------------------------------------ from_dir
def _find_local(from_dir: Path, name: str, entry: CatalogEntry) -> tuple[str, Path] | None:
    """Find ``entry`` in a local folder: ``("archive", file)`` or ``("extracted", base_dir)``."""
    for base in (from_dir, from_dir / name):
        for cand in (base / entry.filename, base / entry.rel_path):
            if cand.is_file():
                return "archive", cand
    for base in (from_dir, from_dir / name):
        if entry.produces and all((base / p).exists() for p in entry.produces):
            return "extracted", base
    return None


def _resolve_from(
    from_dir: Path, name: str, entries: dict[str, CatalogEntry], parts: list[str]
) -> dict[str, tuple[str, Path]]:
    if not from_dir.exists():
        raise DownloadError(
            f"--from {from_dir} does not exist: pass a folder holding the archives or one archive"
        )
    if from_dir.is_file():
        if len(parts) == 1:
            return {parts[0]: ("archive", from_dir)}
        matches = [p for p in parts if entries[p].filename == from_dir.name]
        if not matches:
            known = ", ".join(entries[p].filename for p in parts)
            raise DownloadError(
                f"{from_dir.name} is none of the requested {name} archives ({known}): "
                "name its part with --parts"
            )
        return {matches[0]: ("archive", from_dir)}
    found: dict[str, tuple[str, Path]] = {}
    for p in parts:
        hit = _find_local(from_dir, name, entries[p])
        if hit is None:
            e = entries[p]
            looked = e.filename + (f" or an extracted {e.produces[0]}" if e.produces else "")
            raise DownloadError(
                f"part {p!r} not found in {from_dir} (looked for {looked}): "
                "add it there or drop --from to download"
            )
        found[p] = hit
    return found


def _link_extracted(base: Path, ds_root: Path, entry: CatalogEntry) -> list[str]:
    """Symlink an already-extracted part into ``ds_root`` (nothing is copied); return what was linked."""
    linked = []
    for rel in entry.produces:
        src, dst = (base / rel).resolve(), ds_root / rel
        if dst.exists() or dst.is_symlink():
            if dst.resolve() != src:
                linked.append(f"{rel} (kept existing)")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst, target_is_directory=src.is_dir())
        linked.append(rel)
    return linked


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
    for p in wanted:
        e = entries[p]
        if e.where is not None:
            hint = "pass the file with --det-file PATH" if p == "dets" else "place the files as described"
            raise DownloadError(f"{name} part {p!r} has no stable public URL: {e.where}; {hint}")
    root = Path(root)
    ds_root = root / name
    local: dict[str, tuple[str, Path]] | None = None
    if from_dir is not None:
        local = _resolve_from(Path(from_dir), name, entries, wanted)
        wanted = [p for p in wanted if p in local]

    results: dict[str, dict[str, Any]] = {}
    for p in wanted:
        e = entries[p]
        if is_done(ds_root, e):
            marker = read_marker(marker_path(ds_root, e)) or {}
            results[p] = {
                "status": "skipped",
                "path": str(ds_root),
                "archive": marker.get("archive"),
                "sha256": marker.get("sha256"),
                "checksum": marker.get("checksum", "none"),
                "note": "already verified",
            }
            continue
        results[p] = _fetch_part(
            name,
            ds_root,
            e,
            mirror,
            local[p] if local else None,
            progress,
            keep_archives=keep_archives,
            timeout=timeout,
        )
    return results


def _fetch_part(
    name: str,
    ds_root: Path,
    e: CatalogEntry,
    mirror: str | None,
    local: tuple[str, Path] | None,
    progress: ProgressFn | None,
    *,
    keep_archives: bool,
    timeout: float,
) -> dict[str, Any]:
    manifest = load_manifest(ds_root)
    size, sha256, md5, from_manifest = expected_checksums(e, manifest)
    mpath = manifest_path(ds_root)
    marker = marker_path(ds_root, e)

    if local is not None and local[0] == "extracted":
        linked = _link_extracted(local[1], ds_root, e)
        write_json(
            marker,
            {
                "part": e.part,
                "archive": None,
                "sha256": None,
                "checksum": "none",
                "source": str(local[1]),
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
            "note": f"symlinked already-extracted {', '.join(linked) or 'folders'} from {local[1]} (no hash)",
        }

    downloaded = local is None
    if local is not None:
        archive = local[1]
        got = file_digests(archive, progress=progress)
        problem = _mismatch(got, size, sha256, md5)
        if problem is not None:
            where = f" (recorded in {mpath} at first download)" if from_manifest else ""
            raise DownloadError(f"{archive} does not verify: {problem}{where}; replace it or drop --from")
    else:
        url = e.url_for(mirror)
        assert url is not None
        archive = ds_root / "downloads" / e.filename
        got = {}
        try:
            download_file(
                url,
                archive,
                size=size,
                sha256=sha256,
                md5=md5,
                progress=progress,
                timeout=timeout,
                digests=got,
            )
        except ChecksumMismatch as err:
            if from_manifest:
                raise ChecksumMismatch(
                    f"{err} (expected value recorded in {mpath} at first download; "
                    "remove that entry if the server's file legitimately changed)"
                ) from None
            raise

    if e.has_checksum:
        checksum, note = "published", "size and checksum verified"
    elif from_manifest:
        checksum, note = "manifest", f"no published checksum; matches the sha256 recorded in {mpath}"
    else:
        checksum = "recorded"
        note = f"no published checksum; recorded size {got['size']} and sha256 {got['sha256']} in {mpath}"
        manifest[e.filename] = {
            "size": got["size"],
            "sha256": got["sha256"],
            "md5": got["md5"],
            "url": e.url_for(mirror) if downloaded else str(archive),
            "recorded": time.time(),
        }
        write_json(mpath, manifest)

    dest_dir = ds_root / e.extract_to if e.extract_to else ds_root
    safe_extract(archive, dest_dir)
    missing = [p for p in e.produces if not (ds_root / p).exists()]
    if missing:
        raise DownloadError(
            f"{archive.name} did not contain {missing[0]}: is it the right archive for {e.part!r}?"
        )
    write_json(
        marker,
        {
            "part": e.part,
            "archive": e.filename,
            "sha256": got["sha256"],
            "size": got["size"],
            "checksum": checksum,
            "time": time.time(),
        },
    )
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
