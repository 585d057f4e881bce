"""The DINO loss (facebookresearch/dino ``DINOLoss``, FACTS §2) and the collapse monitor.

Student logits of every crop are divided by ``student_temp`` (0.1); the teacher sees the 2 global crops and
gives ``softmax((t − center) / τ_t)`` (no gradient), with ``τ_t`` linear from ``warmup_teacher_temp`` to
``teacher_temp`` over ``warmup_teacher_temp_epochs`` then constant. The loss is the mean, over every pair
(teacher crop i, student crop v ≠ i), of the batch-mean cross-entropy. After each step the center moves towards
the batch mean of the raw teacher logits (all-reduced across ranks) with momentum ``center_momentum`` (0.9).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn


def teacher_temp_schedule(warmup_teacher_temp: float, teacher_temp: float, warmup_epochs: int,
                          epochs: int) -> np.ndarray:
    """``τ_t`` per epoch: ``linspace(warmup, final, warmup_epochs)`` (both ends included), then ``final``."""
    warm = np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)
    return np.concatenate((warm, np.full(max(epochs - warmup_epochs, 0), teacher_temp)))


class DINOLoss(nn.Module):
    """``forward(student (n_crops·B, K), teacher (2·B, K), epoch) -> loss``; ``center`` is a buffer ``(1, K)``.

    After each call :attr:`last_stats` holds the collapse monitor of that batch: ``teacher_entropy`` (mean
    entropy of the teacher distributions, nats; ``log K`` = uniform collapse, 0 = one-hot collapse) and ``kl``
    (mean KL(teacher ‖ student) over the loss pairs; 0 = the student copies the teacher, the collapse sign).
    """

    def __init__(self, out_dim: int, ncrops: int, warmup_teacher_temp: float, teacher_temp: float,
                 warmup_teacher_temp_epochs: int, epochs: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temps = teacher_temp_schedule(warmup_teacher_temp, teacher_temp,
                                                   warmup_teacher_temp_epochs, epochs)
        self.last_stats: dict[str, float] = {}

    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor, epoch: int) -> torch.Tensor:
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        temp = float(self.teacher_temps[min(epoch, len(self.teacher_temps) - 1)])
        teacher_p = F.softmax((teacher_output - self.center) / temp, dim=-1).detach()
        teacher_out = teacher_p.chunk(2)
        total = student_output.new_zeros(())
        n_terms = 0
        for iq, q in enumerate(teacher_out):
            for v, s in enumerate(student_out):
                if v == iq:
                    continue  # never the same view
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                n_terms += 1
        loss = total / n_terms
        with torch.no_grad():
            ent = -(teacher_p * torch.log(teacher_p.clamp_min(1e-30))).sum(-1).mean()
            self.last_stats = {"teacher_entropy": float(ent), "kl": float(loss.detach() - ent),
                               "teacher_temp": temp}
        self.update_center(teacher_output)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """``center ← m·center + (1 − m)·mean(teacher_output)`` (the mean over every rank's batch)."""
        batch_center = torch.sum(teacher_output.float(), dim=0, keepdim=True)
        n = teacher_output.shape[0]
        if tdist.is_available() and tdist.is_initialized():
            tdist.all_reduce(batch_center)
            n *= tdist.get_world_size()
        batch_center = batch_center / n
        self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))
