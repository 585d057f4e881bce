"""Downloads, resume, checksums, safe extraction, dataset layout and the `data download` CLI.

Everything runs against a ThreadingHTTPServer on 127.0.0.1 (port 0) serving archives built in the test; the
official catalog entries are replaced by entries with the test archives' checksums.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poserepro.cli.data import app
from poserepro.data import datasets_catalog as catalog
from poserepro.data import download as dl
from poserepro.data.download import transfer
from poserepro.errors import DownloadError, UnknownNameError


# ----------------------------------------------------------------------------------------- server
class _LocalServer:
    """Serves ``files`` (path -> bytes) with Range support, a Range-ignoring mode and a one-shot drop."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honor_range = True
        self.drop_after: int | None = None  # one-shot: send only this many body bytes, then close
        self.requests: list[dict[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                rng = self.headers.get("Range")
                owner.requests.append({"path": self.path, "range": rng})
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                if rng and owner.honor_range:
                    m = re.fullmatch(r"bytes=(\d+)-", rng)
                    assert m is not None
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if owner.drop_after is not None:
                    n, owner.drop_after = owner.drop_after, None
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture()
def server() -> Iterator[_LocalServer]:
    srv = _LocalServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


# ---------------------------------------------------------------------------------------- helpers
def _payload(n: int = 10_000) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def _coco_archives() -> dict[str, bytes]:
    images = {f"val2017/{i:012d}.jpg": _payload(300 + i) for i in range(1, 4)}
    ann = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(1, 4)],
        "annotations": [],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}],
    }
    annotations = {
        "annotations/person_keypoints_val2017.json": json.dumps(ann).encode(),
        "annotations/person_keypoints_train2017.json": json.dumps({**ann, "images": []}).encode(),
    }
    return {"val": _zip_bytes(images), "annotations": _zip_bytes(annotations)}


def _fake_catalog(
    monkeypatch: pytest.MonkeyPatch, name: str, archives: dict[str, bytes], checksums: bool = True
) -> dict[str, catalog.CatalogEntry]:
    """Replace ``name``'s catalog entries by copies carrying the test archives' size / hashes."""
    entries = dict(catalog.CATALOG[name])
    for part, data in archives.items():
        entries[part] = dataclasses.replace(
            entries[part],
            size=len(data) if checksums else None,
            sha256=_sha(data) if checksums else None,
            md5=_md5(data) if checksums else None,
        )
    monkeypatch.setitem(catalog.CATALOG, name, entries)
    return entries


def _serve(
    server: _LocalServer, entries: dict[str, catalog.CatalogEntry], archives: dict[str, bytes]
) -> None:
    for part, data in archives.items():
        server.files["/" + entries[part].rel_path] = data


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------- download_file
def test_interrupted_download_resumes_with_range(server: _LocalServer, tmp_path: Path) -> None:
    data = _payload(10_000)
    server.files["/f.bin"] = data
    server.drop_after = 3000
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="interrupted after 3000 .*re-run to resume"):
        dl.download_file(f"{server.url}/f.bin", dest, size=len(data), sha256=_sha(data), md5=None, chunk=1024)
    assert (tmp_path / "f.bin.part").stat().st_size == 3000
    assert not dest.exists()

    seen: list[tuple[str, int, int | None]] = []
    out = dl.download_file(
        f"{server.url}/f.bin",
        dest,
        size=len(data),
        sha256=_sha(data),
        md5=_md5(data),
        chunk=1024,
        progress=lambda label, done, total: seen.append((label, done, total)),
    )
    assert out == dest and dest.read_bytes() == data
    assert not (tmp_path / "f.bin.part").exists()
    assert server.requests[0]["range"] is None
    assert server.requests[1]["range"] == "bytes=3000-"
    assert seen[-1] == ("f.bin", len(data), len(data))


def test_server_ignoring_range_restarts_from_zero(server: _LocalServer, tmp_path: Path) -> None:
    data = _payload(5000)
    server.files["/f.bin"] = data
    server.honor_range = False
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 1200)  # stale bytes the 200 answer must overwrite
    dl.download_file(f"{server.url}/f.bin", dest, size=len(data), sha256=_sha(data), md5=None, chunk=512)
    assert server.requests[-1]["range"] == "bytes=1200-"
    assert dest.read_bytes() == data


def test_complete_part_file_answered_416(server: _LocalServer, tmp_path: Path) -> None:
    data = _payload(2000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=None, sha256=_sha(data), md5=None)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [r["range"] for r in server.requests] == ["bytes=2000-"]


def test_wrong_checksum_moves_file_aside(server: _LocalServer, tmp_path: Path) -> None:
    data = _payload(4000)
    server.files["/f.bin"] = data
    dest = tmp_path / "f.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        dl.download_file(f"{server.url}/f.bin", dest, size=None, sha256=wrong, md5=None)
    msg = str(info.value)
    assert wrong in msg and _sha(data) in msg and "\n" not in msg
    assert (tmp_path / "f.bin.corrupt").read_bytes() == data
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_write_error_keeps_resumable_part(
    server: _LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _payload(8000)
    server.files["/f.bin"] = data
    dest = tmp_path / "f.bin"
    real_write = dl._write_chunk
    written = {"n": 0}

    def full_disk(fh, chunk: bytes) -> None:  # type: ignore[no-untyped-def]
        if written["n"] >= 2048:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fh, chunk)
        written["n"] += len(chunk)

    monkeypatch.setattr(transfer, "_write_chunk", full_disk)
    with pytest.raises(
        DownloadError, match=r"disk full\? free space and re-run: the download resumes from 2048 bytes"
    ):
        dl.download_file(f"{server.url}/f.bin", dest, size=len(data), sha256=_sha(data), md5=None, chunk=1024)
    assert (tmp_path / "f.bin.part").read_bytes() == data[:2048]

    monkeypatch.setattr(transfer, "_write_chunk", real_write)
    dl.download_file(f"{server.url}/f.bin", dest, size=len(data), sha256=_sha(data), md5=None, chunk=1024)
    assert dest.read_bytes() == data
    assert server.requests[-1]["range"] == "bytes=2048-"


def test_http_error_and_unreachable_are_download_errors(server: _LocalServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        dl.download_file(f"{server.url}/nope.bin", tmp_path / "x", size=None, sha256=None, md5=None)
    with pytest.raises(DownloadError, match="only http"):
        dl.download_file("ftp://127.0.0.1/x", tmp_path / "x", size=None, sha256=None, md5=None)


# ----------------------------------------------------------------------------------- safe_extract
def _symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("kind", "members", "bad"),
    [
        ("zip", {"ok/a.txt": b"a", "../evil.txt": b"x"}, "../evil.txt"),
        ("zip", {"ok/a.txt": b"a", "/abs/evil.txt": b"x"}, "/abs/evil.txt"),
        ("tar", [("ok/a.txt", b"a"), ("ok/../../evil.txt", b"x")], "ok/../../evil.txt"),
        ("tar", [("ok/a.txt", b"a"), _symlink("ok/link", "../../outside")], "ok/link"),
        ("tar", [("ok/a.txt", b"a"), _symlink("ok/abs", "/etc/passwd")], "ok/abs"),
        ("tar", [("ok/a.txt", b"a"), _symlink("ok/hard", "../x", tarfile.LNKTYPE)], "ok/hard"),
    ],
)
def test_safe_extract_refuses_escapes(tmp_path: Path, kind: str, members, bad: str) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "work"
    work.mkdir()
    archive = tmp_path / ("a.zip" if kind == "zip" else "a.tar.gz")
    archive.write_bytes(_zip_bytes(members) if kind == "zip" else _tar_bytes(members))
    with pytest.raises(DownloadError, match=re.escape(repr(bad))):
        dl.safe_extract(archive, work / "dest")
    assert _leftovers(work) == []  # no dest, no temporary directory
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


def test_safe_extract_zip_and_tar_merge_into_existing(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "annotations").mkdir(parents=True)
    (dest / "annotations" / "keep.json").write_text("{}")
    z = tmp_path / "a.zip"
    z.write_bytes(_zip_bytes({"annotations/new.json": b"[]", "val/x.jpg": b"x"}))
    assert dl.safe_extract(z, dest) == dest
    t = tmp_path / "b.tar"
    t.write_bytes(_tar_bytes([("images/1.jpg", b"1"), _symlink("images/alias.jpg", "1.jpg")], mode="w"))
    dl.safe_extract(t, dest)
    assert sorted(p.name for p in (dest / "annotations").iterdir()) == ["keep.json", "new.json"]
    assert (dest / "val" / "x.jpg").read_bytes() == b"x"
    assert (dest / "images" / "alias.jpg").is_symlink() and (
        dest / "images" / "alias.jpg"
    ).read_bytes() == b"1"
    assert _leftovers(tmp_path) == ["a.zip", "b.tar", "dest"]


def test_safe_extract_damaged_archive(tmp_path: Path) -> None:
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        dl.safe_extract(bad, tmp_path / "d")


# ------------------------------------------------------------------------------- download_dataset
def test_dataset_download_layout_and_idempotent_rerun(
    server: _LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = _coco_archives()
    entries = _fake_catalog(monkeypatch, "coco", archives)
    _serve(server, entries, archives)
    root = tmp_path / "data"
    res = dl.download_dataset("coco", root, ["val", "annotations"], mirror=server.url)
    assert {p: r["status"] for p, r in res.items()} == {"val": "downloaded", "annotations": "downloaded"}
    assert res["val"]["sha256"] == _sha(archives["val"]) and res["val"]["checksum"] == "published"
    assert len(list((root / "coco" / "val2017").glob("*.jpg"))) == 3
    assert (root / "coco" / "annotations" / "person_keypoints_val2017.json").is_file()
    marker = json.loads((root / "coco" / ".poserepro" / "val2017.zip.verified").read_text())
    assert marker["sha256"] == _sha(archives["val"])
    assert not (root / "coco" / "downloads" / "val2017.zip").exists()  # archives removed by default
    assert sorted(r["path"] for r in server.requests) == [
        "/annotations/annotations_trainval2017.zip",
        "/zips/val2017.zip",
    ]
    n = len(server.requests)
    again = dl.download_dataset("coco", root, "val,annotations", mirror=server.url)
    assert {r["status"] for r in again.values()} == {"skipped"}
    assert len(server.requests) == n  # no network on the second run


def test_dataset_wrong_checksum_extracts_nothing(
    server: _LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = _coco_archives()
    entries = _fake_catalog(monkeypatch, "coco", archives)
    entries["val"] = dataclasses.replace(entries["val"], sha256="f" * 64)
    _serve(server, entries, archives)
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        dl.download_dataset("coco", root, ["val"], mirror=server.url)
    assert (root / "coco" / "downloads" / "val2017.zip.corrupt").is_file()
    assert not (root / "coco" / "val2017").exists()
    assert not (root / "coco" / ".poserepro" / "val2017.zip.verified").exists()


def test_mirror_replaces_only_the_host() -> None:
    val = catalog.get_entry("coco", "val")
    assert val.url == "http://images.cocodataset.org/zips/val2017.zip"
    assert (
        val.url_for("http://127.0.0.1:8000/coco-mirror/")
        == "http://127.0.0.1:8000/coco-mirror/zips/val2017.zip"
    )
    ann = catalog.get_entry("coco", "annotations")
    assert ann.url_for("https://m.example") == "https://m.example/annotations/annotations_trainval2017.zip"
    assert catalog.get_entry("coco", "test-info").size is None  # hash-only verification
    mpii = catalog.get_entry("mpii", "images")
    assert mpii.url == "https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1.tar.gz"
    assert not mpii.has_checksum


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access during a --from run")

    monkeypatch.setattr(transfer, "_open_url", refuse)


def test_from_dir_archives_single_archive_and_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_network(monkeypatch)
    archives = _coco_archives()
    _fake_catalog(monkeypatch, "coco", archives)
    src = tmp_path / "src"
    (src / "zips").mkdir(parents=True)
    (src / "zips" / "val2017.zip").write_bytes(archives["val"])  # mirror layout
    (src / "annotations_trainval2017.zip").write_bytes(archives["annotations"])  # flat layout
    res = dl.download_dataset("coco", tmp_path / "d1", ["val", "annotations"], from_dir=src)
    assert {r["status"] for r in res.values()} == {"local"}
    assert (tmp_path / "d1" / "coco" / "val2017").is_dir()
    assert (src / "zips" / "val2017.zip").exists()  # user's archives are never removed

    single = dl.download_dataset(
        "coco", tmp_path / "d2", ["val", "annotations"], from_dir=src / "zips" / "val2017.zip"
    )
    assert list(single) == ["val"]

    extracted = tmp_path / "d1" / "coco"
    linked = dl.download_dataset("coco", tmp_path / "d3", ["val"], from_dir=extracted)
    assert linked["val"]["status"] == "linked"
    assert (tmp_path / "d3" / "coco" / "val2017").is_symlink()

    with pytest.raises(DownloadError, match="not found in"):
        dl.download_dataset("coco", tmp_path / "d4", ["test"], from_dir=src)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "val2017.zip").write_bytes(archives["annotations"])
    with pytest.raises(DownloadError, match="does not verify"):
        dl.download_dataset("coco", tmp_path / "d5", ["val"], from_dir=bad)


def test_mpii_without_checksums_records_manifest(
    server: _LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _tar_bytes([("images/000000001.jpg", b"img1"), ("images/000000002.jpg", b"img2")])
    entries = _fake_catalog(monkeypatch, "mpii", {"images": images}, checksums=False)
    _serve(server, entries, {"images": images})
    root = tmp_path / "data"
    res = dl.download_dataset("mpii", root, ["images"], mirror=server.url)
    assert res["images"]["checksum"] == "recorded" and "manifest" in res["images"]["note"]
    manifest = json.loads((root / "mpii" / ".poserepro" / "manifest.json").read_text())
    assert manifest["mpii_human_pose_v1.tar.gz"]["sha256"] == _sha(images)
    assert sorted(p.name for p in (root / "mpii" / "images").iterdir()) == ["000000001.jpg", "000000002.jpg"]

    # A later download (marker gone) must match the recorded hash.
    (root / "mpii" / ".poserepro" / "mpii_human_pose_v1.tar.gz.verified").unlink()
    server.files["/" + entries["images"].rel_path] = _tar_bytes([("images/other.jpg", b"x")])
    with pytest.raises(DownloadError, match="recorded in .*manifest.json"):
        dl.download_dataset("mpii", root, ["images"], mirror=server.url)


def test_parts_without_url_and_unknown_parts(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="--det-file") as info:
        dl.download_dataset("coco", tmp_path, ["dets"])
    assert "OneDrive" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UnknownNameError, match="valid parts"):
        dl.download_dataset("coco", tmp_path, ["vall"])
    with pytest.raises(UnknownNameError):
        dl.download_dataset("imagenet", tmp_path, None)
    assert catalog.parse_parts("coco", None) == ["train", "val", "annotations", "test-info"]
    assert catalog.parse_parts("mpii", "images, annotations") == ["images", "annotations"]


# ------------------------------------------------------------------------------------------- CLI
def test_cli_download_with_mirror(
    server: _LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = _coco_archives()
    entries = _fake_catalog(monkeypatch, "coco", archives)
    _serve(server, entries, archives)
    runner = CliRunner()
    args = ["download", "coco", "--root", str(tmp_path), "--parts", "val,annotations", "--mirror", server.url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "downloaded" in result.output and "published" in result.output
    assert (tmp_path / "coco" / "val2017").is_dir()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "skipped" in again.output


def test_cli_dets_exits_nonzero_with_download_error(tmp_path: Path) -> None:
    """The data sub-app prints download errors as one line (issue: they were 40-line tracebacks)."""
    result = CliRunner().invoke(app, ["download", "coco", "--root", str(tmp_path), "--parts", "dets"])
    assert result.exit_code == DownloadError.exit_code
    assert result.exit_code != 0 and "--det-file" in result.output and "Traceback" not in result.output


def test_refused_archive_is_not_recorded_as_trusted(
    server: _LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first download without a published checksum is recorded only after it extracted cleanly: a zip-slip
    archive is refused and leaves no manifest entry, so the real archive later verifies."""
    evil = _tar_bytes([("images/000000001.jpg", b"img1"), ("images/../../evil.jpg", b"x")])
    good = _tar_bytes([("images/000000001.jpg", b"img1")])
    entries = _fake_catalog(monkeypatch, "mpii", {"images": evil}, checksums=False)
    _serve(server, entries, {"images": evil})
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="evil"):
        dl.download_dataset("mpii", root, ["images"], mirror=server.url)
    manifest = root / "mpii" / ".poserepro" / "manifest.json"
    assert not manifest.exists() or "mpii_human_pose_v1.tar.gz" not in json.loads(manifest.read_text())
    assert not (tmp_path / "evil.jpg").exists() and not (root / "evil.jpg").exists()
    server.files["/" + entries["images"].rel_path] = good
    res = dl.download_dataset("mpii", root, ["images"], mirror=server.url)
    assert res["images"]["checksum"] == "recorded"
    assert json.loads(manifest.read_text())["mpii_human_pose_v1.tar.gz"]["sha256"] == _sha(good)
