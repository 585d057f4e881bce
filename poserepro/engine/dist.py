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


# --- SyncBatchNorm that also runs on CPU (gloo) -------------------------------------------------------------


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward is the all-reduce (sum) of the incoming gradients."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        tdist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        g = grad.contiguous().clone()
        tdist.all_reduce(g)
        return g


class GlooSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm with statistics over all ranks, for CPU tensors (gloo) — ``nn.SyncBatchNorm`` is GPU-only and
    DDP refuses it on CPU modules.

    In training inside a process group the per-channel sums and sums of squares (float64) are summed over the
    ranks with a differentiable all-reduce, so forward and backward see the whole global batch exactly like one
    BatchNorm over it in a single process; running statistics are updated like BatchNorm (unbiased variance,
    ``momentum``). Otherwise it is plain BatchNorm. The state dict is BatchNorm's: checkpoints load into models
    with or without it.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 - torch's argument name
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        if not self.training or not is_dist() or get_world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        c = input.shape[1]
        dims = [0, *range(2, input.dim())]
        x64 = input.double()
        count = torch.tensor([input.numel() / max(c, 1)], dtype=torch.float64, device=input.device)
        stats = _SumOverRanks.apply(torch.cat([x64.sum(dims), (x64 * x64).sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        shape = [1, c] + [1] * (input.dim() - 2)
        y = (input - mean.to(input.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        return y


def convert_sync_batchnorm(model: torch.nn.Module, device: str = "cpu") -> torch.nn.Module:
    """Every BatchNorm → synchronised BatchNorm: ``nn.SyncBatchNorm`` on GPUs, :class:`GlooSyncBatchNorm` on CPU."""
    if not device.startswith("cpu"):
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    bn = torch.nn.modules.batchnorm._BatchNorm
    for m in model.modules():
        if isinstance(m, bn) and not isinstance(m, (torch.nn.SyncBatchNorm, GlooSyncBatchNorm)):
            m.__class__ = GlooSyncBatchNorm  # same state as BatchNorm{1,2,3}d; only forward differs
    return model


class LocalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Plain BatchNorm of any input rank that never synchronises: what :func:`convert_local_batchnorm` turns a
    synchronised BatchNorm into (same state dict)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 - torch's argument name
        return None


def convert_local_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """The inverse of :func:`convert_sync_batchnorm`, in place: every ``nn.SyncBatchNorm`` /
    :class:`GlooSyncBatchNorm` → :class:`LocalBatchNorm` with its state. For a copy that runs on one rank alone
    (a synchronised training-mode forward there would wait for the other ranks forever)."""
    for name, child in model.named_children():
        if isinstance(child, GlooSyncBatchNorm):
            child.__class__ = LocalBatchNorm  # same state; only forward differs
        elif isinstance(child, torch.nn.SyncBatchNorm):
            bn = LocalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            bn.load_state_dict(child.state_dict())
            setattr(model, name, bn.to(next(child.buffers(), torch.empty(0)).device))
        else:
            convert_local_batchnorm(child)
    return model
