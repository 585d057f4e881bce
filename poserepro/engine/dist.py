"""Distributed helpers (torchrun / DDP). A single process is world size 1, rank 0."""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist


def is_dist() -> bool:
    """True inside an initialised process group."""
    return tdist.is_available() and tdist.is_initialized()


def get_rank() -> int:
    return tdist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return tdist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """Rank 0: the only process that writes files and prints progress."""
    return get_rank() == 0


def init_from_env(device: str = "cpu") -> bool:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE > 1``); returns whether it did.

    Uses NCCL on CUDA and gloo on CPU; the rendezvous comes from torchrun's environment variables
    (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
    """
    if is_dist() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_dist()
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    if is_dist():
        tdist.barrier()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (identity in a single process)."""
    if not is_dist():
        return x
    y = x.clone()
    tdist.all_reduce(y)
    return y / get_world_size()


def all_gather_objects(obj: object) -> list[object]:
    """Gather a picklable object from every rank (``[obj]`` in a single process)."""
    if not is_dist():
        return [obj]
    out: list[object] = [None] * get_world_size()
    tdist.all_gather_object(out, obj)
    return out
