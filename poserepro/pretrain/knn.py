"""Weighted k-NN probe (DINO ``eval_knn``: Wu et al. 2018's weighted vote) on labelled person crops.

Features of the backbone (eval mode, pooled as in pretraining) are L2-normalised; each query takes its ``k``
most cosine-similar bank features and votes for their labels with weight ``exp(similarity / T)``; accuracy = top-1.
On the synthetic benchmark the labels are the generator's per-person pose class (standing, walking, arms raised,
sitting, crouching) or view (front, side, back): train-split persons are the bank, val-split persons the queries.

The random-init baseline must be probed with BatchNorm statistics of the data (:func:`bn_calibrated`): a fresh
backbone's running statistics are the defaults (mean 0, variance 1), while a trained teacher's come from its
training batches, and re-estimating them alone, without changing a weight, moves the probe (README).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.coco import IMAGENET_MEAN, IMAGENET_STD
from ..engine.dist import convert_local_batchnorm
from .data import labelled_persons, load_source, synthetic_root
from .multicrop import Pool, pool_features
from .recipe import ProbeCfg


def knn_classify(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int = 20,
                 temperature: float = 0.07, num_classes: int | None = None) -> torch.Tensor:
    """Predicted labels ``(M,)`` of ``queries (M, D)`` from ``bank (N, D)`` (both L2-normalised) and
    ``bank_labels (N,)``."""
    c = int(num_classes or int(bank_labels.max()) + 1)
    k = min(k, bank.shape[0])
    preds = []
    for q in queries.split(256):
        sim, idx = (q @ bank.T).topk(k, dim=1)                      # (b, k)
        votes = F.one_hot(bank_labels[idx], c).float()               # (b, k, C)
        probs = (votes * (sim / temperature).exp().unsqueeze(-1)).sum(1)
        preds.append(probs.argmax(1))
    return torch.cat(preds)


@dataclass
class LabelledViews:
    """Un-augmented person views ``(N, h, w, 3)`` uint8 and label indices ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def batches(self, size: int = 64):  # noqa: ANN201
        mean, std = torch.from_numpy(IMAGENET_MEAN), torch.from_numpy(IMAGENET_STD)
        for a in range(0, len(self.images), size):
            x = torch.from_numpy(self.images[a:a + size]).float() / 255.0
            yield ((x - mean) / std).permute(0, 3, 1, 2).contiguous()


def _views(sources: list, labels: list[str], classes: list[str], size: tuple[int, int]) -> LabelledViews:
    imgs = np.stack([cv2.resize(load_source(s), size, interpolation=cv2.INTER_CUBIC) for s in sources])
    return LabelledViews(imgs, np.array([classes.index(v) for v in labels], dtype=np.int64))


@dataclass
class ProbeSet:
    """The bank and the queries of one labelling."""

    bank: LabelledViews
    queries: LabelledViews
    classes: list[str]

    @property
    def majority(self) -> float:
        """Accuracy of always answering the bank's most frequent class (the floor a probe must beat)."""
        top = Counter(self.bank.labels.tolist()).most_common(1)[0][0]
        return float((self.queries.labels == top).mean())


def build_probe_set(cfg: ProbeCfg, size: tuple[int, int]) -> ProbeSet:
    """Generate (if needed) the synthetic set of ``cfg`` and cut its labelled persons at ``size`` ``(w, h)``."""
    root = Path(synthetic_root(cfg.root, cfg.synth_images, cfg.synth_val_images, cfg.synth_seed))
    aspect = size[0] / size[1]
    parts = {}
    for split, limit in (("train", cfg.max_bank), ("val", cfg.max_queries)):
        srcs, labels = labelled_persons(root / "annotations" / f"person_keypoints_{split}.json",
                                        root / "images" / split, cfg.label, aspect)
        parts[split] = (srcs[:limit], labels[:limit]) if limit else (srcs, labels)
    classes = sorted(set(parts["train"][1]) | set(parts["val"][1]))
    return ProbeSet(_views(*parts["train"], classes, size), _views(*parts["val"], classes, size), classes)


@torch.no_grad()
def extract(backbone: nn.Module, views: LabelledViews, pool: Pool, device: torch.device,
            grid: tuple[int, int] = (2, 2)) -> torch.Tensor:
    """L2-normalised features ``(N, D)`` of ``views`` (backbone in eval mode, restored after)."""
    was = backbone.training
    backbone.eval()
    try:
        feats = [pool_features(backbone(x.to(device)), pool, grid).float().cpu() for x in views.batches()]
    finally:
        backbone.train(was)
    return F.normalize(torch.cat(feats), dim=1)


@torch.no_grad()
def bn_calibrated(backbone: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """A copy of ``backbone`` (in eval mode) whose BatchNorm running statistics are re-estimated from ``batches``
    (forward passes in training mode, cumulative average over the batches); weights unchanged, ``backbone``
    untouched. SyncBatchNorm layers become local ones in the copy (the probe runs on one rank)."""
    out = convert_local_batchnorm(copy.deepcopy(backbone))
    for m in out.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch weighs the same
    out.train()
    for x in batches:
        out(x)
    return out.eval()


def knn_accuracy(backbone: nn.Module, probe: ProbeSet, pool: Pool, device: torch.device, k: int = 20,
                 temperature: float = 0.07, grid: tuple[int, int] = (2, 2)) -> float:
    """Top-1 accuracy of the weighted k-NN vote of ``backbone``'s features (pooled by ``pool`` / ``grid``, as in
    pretraining) on ``probe``."""
    bank = extract(backbone, probe.bank, pool, device, grid)
    queries = extract(backbone, probe.queries, pool, device, grid)
    pred = knn_classify(bank, torch.from_numpy(probe.bank.labels), queries, k, temperature, len(probe.classes))
    return float((pred.numpy() == probe.queries.labels).mean())
