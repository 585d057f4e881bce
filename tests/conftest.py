"""Shared test fixtures: paths of the real mini fixtures, a tiny synthetic dataset, isolated run/result dirs."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
if not FIXTURES.is_dir():  # a clone elsewhere: look next to the repository's parent too
    FIXTURES = Path("/work/shared/fixtures")
COCO_MINI = FIXTURES / "coco-mini"
MPII_MINI = FIXTURES / "mpii-mini"


@pytest.fixture(autouse=True)
def _isolate_outputs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write runs or result rows into the repository during tests."""
    base = tmp_path_factory.mktemp("outputs")
    monkeypatch.setenv("POSEREPRO_RUNS", str(base / "runs"))
    monkeypatch.setenv("POSEREPRO_RESULTS", str(base / "results"))


@pytest.fixture()
def one_thread():  # noqa: ANN201
    """One intra-op thread: on a loaded 2-core machine OpenMP's spinning threads make CPU steps ~50x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def coco_mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the real COCO mini fixture (4 val2017 images, 14 persons, detector boxes)."""
    if not COCO_MINI.is_dir():
        pytest.skip(f"fixture {COCO_MINI} not available")
    dst = tmp_path_factory.mktemp("coco_mini") / "coco-mini"
    shutil.copytree(COCO_MINI, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic benchmark (24 train / 8 val images) shared by the CLI tests."""
    from poserepro.data.synthetic import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("synth") / "synthetic"
    synthesize(root, SynthConfig(num_train=24, num_val=8, seed=3), workers=1)
    return root


def tiny_overrides(root: Path, epochs: int = 1) -> list[str]:
    """``--set`` overrides that make the smoke recipe train in seconds on ``tiny_synth``."""
    return [
        f"data.root={root}", "data.synth_images=24", "data.synth_val_images=8", "data.synth_seed=3",
        f"schedule.epochs={epochs}", "train.batch_size=8", "data.workers=0", "eval.batch_size=16",
    ]


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a stand-in for an official host); yields its base URL."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def join_workers(ctx, timeout: float) -> None:  # noqa: ANN001 (a torch.multiprocessing ProcessContext)
    """Wait for the spawned DDP workers of ``ctx``; kill them and fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"DDP workers did not finish within {timeout:.0f} s")
