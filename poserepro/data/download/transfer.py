"""One verified, resumable HTTP(S) download (standard library only, no UI).

:func:`download_file` fetches one URL into ``dest`` through ``dest.part``; a re-run resumes with an HTTP
``Range`` request (a server that ignores it answers 200 and the file restarts from zero), then checks size,
sha256 and md5. A wrong checksum moves the file aside to ``dest.corrupt``. :func:`file_digests` hashes a local
file the same way. Mirrors are resolved by the caller (:meth:`CatalogEntry.url_for`); this module only sees URLs.

Progress goes through an optional callback ``progress(label, done_bytes, total_bytes_or_None)`` so that the
library stays UI-free (the CLI renders it with rich).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from poserepro.errors import DownloadError

#: ``progress(label, done_bytes, total_bytes)``; ``total_bytes`` is ``None`` when unknown.
ProgressFn = Callable[[str, int, "int | None"], None]

_USER_AGENT = "poserepro-download/0.1 (+urllib)"


class ChecksumMismatch(DownloadError):
    """The downloaded (or announced) file does not match the expected size or checksum."""


# ----------------------------------------------------------------------------------------------- hashing
class _Hashes:
    """sha256 + md5 computed together in one pass."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        """Feed ``data`` to both hashes."""
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)

    def result(self) -> dict[str, Any]:
        """``{"size", "sha256", "md5"}`` of the bytes fed so far."""
        return {"size": self.size, "sha256": self.sha256.hexdigest(), "md5": self.md5.hexdigest()}


def _hash_into(
    path: Path, hashes: _Hashes, chunk: int, progress: ProgressFn | None, label: str, total: int | None
) -> None:
    """Feed the bytes of ``path`` to ``hashes``, reporting progress after each chunk."""
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            hashes.update(data)
            if progress is not None:
                progress(label, hashes.size, total)


def file_digests(path: Path, *, progress: ProgressFn | None = None, chunk: int = 1 << 20) -> dict[str, Any]:
    """Size, sha256 and md5 (lowercase hex) of a local file: ``{"size", "sha256", "md5"}``."""
    path = Path(path)
    hashes = _Hashes()
    _hash_into(path, hashes, chunk, progress, f"verify {path.name}", path.stat().st_size)
    return hashes.result()


def _mismatch(got: dict[str, Any], size: int | None, sha256: str | None, md5: str | None,
              sha256_prefix: str | None = None) -> str | None:
    """Human description of the first difference between ``got`` and the expectations, else ``None``.

    ``sha256_prefix``: the leading hex digits of the sha256 when only those are published (torch.hub-style file
    names such as ``resnet50-19c8e357.pth``).
    """
    if size is not None and got["size"] != size:
        return f"expected {size} bytes, got {got['size']}"
    if sha256 and got["sha256"] != sha256.lower():
        return f"expected sha256 {sha256.lower()}, got {got['sha256']}"
    if sha256_prefix and not got["sha256"].startswith(sha256_prefix.lower()):
        return f"expected a sha256 starting {sha256_prefix.lower()}, got {got['sha256']}"
    if md5 and got["md5"] != md5.lower():
        return f"expected md5 {md5.lower()}, got {got['md5']}"
    return None


# --------------------------------------------------------------------------------------------- download
def _write_chunk(fh: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a separate function so tests can inject OSError)."""
    view = memoryview(data)
    while view:
        n = fh.write(view)
        if n is None:  # pragma: no cover - non-blocking files only
            continue
        view = view[n:]


def _part_path(dest: Path) -> Path:
    """``dest.part``: the bytes received so far."""
    return dest.with_name(dest.name + ".part")


def _corrupt_path(dest: Path) -> Path:
    """``dest.corrupt``: where a file that failed verification is moved."""
    return dest.with_name(dest.name + ".corrupt")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSAT = re.compile(r"bytes\s+\*/(\d+)")


def _open_url(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """GET ``url`` (from byte ``offset`` with a ``Range`` header when positive); raises what urllib raises."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _reason(err: BaseException) -> str:
    """A one-line reason for a network / OS / archive error."""
    reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(reason).replace("\n", " ")


@dataclass(frozen=True)
class _Job:
    """One transfer: where the bytes come from and go, what the file should measure, how to report."""

    url: str
    part: Path
    label: str
    size: int | None
    chunk: int
    progress: ProgressFn | None
    timeout: float
    sha256_prefix: str | None = None


def download_file(
    url: str,
    dest: Path,
    *,
    size: int | None,
    sha256: str | None,
    md5: str | None,
    progress: ProgressFn | None = None,
    chunk: int = 1 << 20,
    timeout: float = 30,
    digests: dict[str, Any] | None = None,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` resumably and verify it; return ``dest``.

    Bytes go to ``dest.part``. If that file exists the request carries ``Range: bytes=N-``: a 206 answer is
    appended, a 200 answer (server ignores ranges) restarts from zero. After the transfer the size and the
    given checksums are checked; a mismatch moves the file to ``dest.corrupt`` and raises
    :class:`DownloadError` naming the expected and actual values. A network failure or a write error
    (e.g. ENOSPC) keeps ``dest.part`` so that a re-run resumes. An existing ``dest`` that verifies is
    returned without network access (one that does not is moved aside and downloaded again).

    Args:
        url: ``http://`` or ``https://`` URL.
        dest: final path; its parent is created.
        size, sha256, md5: expectations, each ``None`` when unknown.
        progress: optional ``progress(label, done, total)`` callback.
        chunk: read size in bytes.
        timeout: socket timeout in seconds for connect and each read.
        digests: if given, filled with ``{"size", "sha256", "md5"}`` of the final file.
        sha256_prefix: leading hex digits the sha256 must start with (when only a prefix is published).
    """
    dest = Path(dest)
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError(
            f"cannot download {url!r}: only http(s) URLs are supported; use --from for local files"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    corrupt = _corrupt_path(dest)
    job = _Job(url, _part_path(dest), dest.name, size, chunk, progress, timeout, sha256_prefix)

    got = _existing_digests(dest, corrupt, job, sha256, md5) if dest.exists() else None
    if got is None:
        got = _verify_part(job, _fetch_into_part(job), corrupt, sha256, md5)
        os.replace(job.part, dest)
    if digests is not None:
        digests.update(got)
    return dest


def _existing_digests(
    dest: Path, corrupt: Path, job: _Job, sha256: str | None, md5: str | None
) -> dict[str, Any] | None:
    """Digests of an existing ``dest`` that verifies; one that does not is moved to ``corrupt`` (``None``)."""
    got = file_digests(dest, progress=job.progress, chunk=job.chunk)
    if _mismatch(got, job.size, sha256, md5, job.sha256_prefix) is None:
        return got
    os.replace(dest, corrupt)
    return None


def _fetch_into_part(job: _Job) -> _Hashes | None:
    """Bring ``job.part`` up to the whole file (resuming); the hashes of its bytes when they were all streamed.

    ``None`` means the bytes (or some of them) were already on disk before this call, so the caller hashes
    the file again.
    """
    part = job.part
    offset = part.stat().st_size if part.exists() else 0
    if job.size is not None and offset > job.size:
        part.unlink()
        offset = 0
    for _attempt in range(3):
        if job.size is not None and 0 < offset == job.size:
            return None  # a previous run got every byte but stopped before verification
        try:
            resp = _open_url(job.url, offset, job.timeout)
        except urllib.error.HTTPError as err:
            if _part_already_complete(err, offset, job.url):
                return None
            part.unlink()
            offset = 0
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise DownloadError(
                f"cannot reach {job.url} ({_reason(err)}): check the network or --mirror and re-run"
                + (f"; the download resumes from {offset} bytes" if offset else "")
            ) from None
        with resp:
            hashes = _receive(resp, job, offset)
        if hashes is not None:
            return hashes
        part.unlink()  # inconsistent partial answer: restart without Range
        offset = 0
    raise DownloadError(f"{job.url} answers Range requests inconsistently; delete {part} and re-run")


def _part_already_complete(err: urllib.error.HTTPError, offset: int, url: str) -> bool:
    """For an HTTP error answer: ``True`` when a 416 says the ``.part`` file already holds the whole file,
    ``False`` when the range is stale (restart from zero); any other error raises :class:`DownloadError`."""
    content_range = err.headers.get("Content-Range", "") if err.headers else ""
    err.close()
    if err.code == 416 and offset > 0:
        m = _CONTENT_RANGE_UNSAT.search(content_range)
        return bool(m and int(m.group(1)) == offset)
    raise DownloadError(f"HTTP {err.code} ({err.reason}) for {url}: check the URL / --mirror") from None


def _receive(resp: http.client.HTTPResponse, job: _Job, offset: int) -> _Hashes | None:
    """Append (206) or write (200) the answer's body to ``job.part``; its hashes, or ``None`` for a 206 whose
    ``Content-Range`` does not start at ``offset`` (nothing written)."""
    length_hdr = resp.headers.get("Content-Length")
    length = int(length_hdr) if length_hdr and length_hdr.isdigit() else None
    if offset > 0 and resp.status == 206:
        m = _CONTENT_RANGE.search(resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            return None
        total: int | None = int(m.group(3)) if m.group(3) != "*" else None
        mode = "ab"
    else:
        offset, mode, total = 0, "wb", length  # 200: the server sent the whole file
    if total is None and length is not None:
        total = offset + length
    if job.size is not None and total is not None and total != job.size:
        raise ChecksumMismatch(
            f"{job.url} is {total} bytes but {job.label} should be {job.size}: wrong file or --mirror?"
        )
    hashes = _Hashes()
    if mode == "ab":
        _hash_into(job.part, hashes, job.chunk, job.progress, job.label, total)
    received = _stream(resp, job, mode, hashes, total)
    if length is not None and received < length:
        done = job.part.stat().st_size
        raise DownloadError(
            f"download of {job.url} was interrupted after {done} of {total} bytes (connection closed); "
            f"re-run to resume from {done} bytes"
        )
    return hashes


def _verify_part(
    job: _Job, hashes: _Hashes | None, corrupt: Path, sha256: str | None, md5: str | None
) -> dict[str, Any]:
    """Digests of the complete ``job.part``; a mismatch moves it to ``corrupt`` and raises."""
    if hashes is None or hashes.size != job.part.stat().st_size:
        hashes = _Hashes()
        _hash_into(job.part, hashes, job.chunk, job.progress, job.label, job.size)
    got = hashes.result()
    problem = _mismatch(got, job.size, sha256, md5, job.sha256_prefix)
    if problem is not None:
        os.replace(job.part, corrupt)
        raise ChecksumMismatch(
            f"checksum mismatch for {job.label} from {job.url}: {problem}; the file was moved aside to {corrupt} "
            "(nothing extracted): check the URL / --mirror and re-run"
        )
    return got


def _stream(resp: http.client.HTTPResponse, job: _Job, mode: str, hashes: _Hashes, total: int | None) -> int:
    """Copy the response body into ``job.part``; return the number of body bytes received."""
    part, received = job.part, 0
    fh = open(part, mode, buffering=0)  # unbuffered: what write() accepted is on disk, close cannot fail
    try:
        while True:
            try:
                data = resp.read(job.chunk)
            except (OSError, http.client.HTTPException) as err:
                fh.close()
                done = part.stat().st_size
                raise DownloadError(
                    f"download of {job.url} was interrupted after {done} bytes ({_reason(err)}); "
                    f"re-run to resume from {done} bytes"
                ) from None
            if not data:
                break
            try:
                _write_chunk(fh, data)
            except OSError as err:
                fh.close()
                done = part.stat().st_size
                raise DownloadError(
                    f"writing {part} failed ({_reason(err)}): disk full? free space and re-run: "
                    f"the download resumes from {done} bytes"
                ) from None
            hashes.update(data)
            received += len(data)
            if job.progress is not None:
                job.progress(job.label, hashes.size, total)
    finally:
        fh.close()
    return received
