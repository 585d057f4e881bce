"""Start-up of a synthetic-benchmark worker process (run by :mod:`.pool` with :func:`runpy.run_path`).

``import poserepro`` loads the model registry and with it torch, which a renderer never needs.  When this
file runs as a worker's initializer it registers bare package modules for ``poserepro`` and ``poserepro.data``
that point at this source tree, so the tasks' imports load only the modules they use.  Packages that are
already imported (for instance by a ``__main__`` script the spawn start method re-ran) are left alone.
OpenCV is limited to one thread per worker: the parallelism is the processes.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

_RUN_NAME = "__poserepro_synth_worker__"


def install_package_stubs(package_dir: Path) -> None:
    """Register ``poserepro`` and ``poserepro.data`` as bare packages rooted at ``package_dir``, if not loaded."""
    for name, path in (("poserepro", package_dir), ("poserepro.data", package_dir / "data")):
        if name in sys.modules:
            continue
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module


def boot() -> None:
    """Prepare this worker process for rendering."""
    install_package_stubs(Path(__file__).resolve().parents[2])
    import cv2

    cv2.setNumThreads(1)


if __name__ == _RUN_NAME:
    boot()
