"""Parts of a dataset found on local disk (``--from``): archives to verify, or folders already extracted."""

from __future__ import annotations

import os
from pathlib import Path

from poserepro.data.datasets_catalog import CatalogEntry
from poserepro.errors import DownloadError


def _find_part(from_dir: Path, name: str, entry: CatalogEntry) -> tuple[str, Path] | None:
    """Find ``entry`` in a local folder: ``("archive", file)`` or ``("extracted", base_dir)``."""
    for base in (from_dir, from_dir / name):
        for cand in (base / entry.filename, base / entry.rel_path):
            if cand.is_file():
                return "archive", cand
    for base in (from_dir, from_dir / name):
        if entry.produces and all((base / p).exists() for p in entry.produces):
            return "extracted", base
    return None


def resolve_from(
    from_dir: Path, name: str, entries: dict[str, CatalogEntry], parts: list[str]
) -> dict[str, tuple[str, Path]]:
    """Where each of ``parts`` is in ``from_dir`` (a folder, or one archive): ``{part: (kind, path)}`` with kind
    ``"archive"`` (an archive file) or ``"extracted"`` (a folder holding the part's extracted paths)."""
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
        hit = _find_part(from_dir, name, entries[p])
        if hit is None:
            e = entries[p]
            looked = e.filename + (f" or an extracted {e.produces[0]}" if e.produces else "")
            raise DownloadError(
                f"part {p!r} not found in {from_dir} (looked for {looked}): "
                "add it there or drop --from to download"
            )
        found[p] = hit
    return found


def link_extracted(base: Path, ds_root: Path, entry: CatalogEntry) -> list[str]:
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
