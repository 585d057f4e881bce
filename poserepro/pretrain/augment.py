"""DINO's multi-crop augmentation in OpenCV / numpy (facebookresearch/dino ``DataAugmentationDINO``, FACTS §2).

Every crop: ``RandomResizedCrop`` (bicubic, aspect ratio in [3/4, 4/3]), horizontal flip p 0.5, colour jitter
(brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, in a random order) with p 0.8, grayscale p 0.2, then
Gaussian blur (σ ~ U[0.1, 2.0]) with p 1.0 on global crop 1, 0.1 on global crop 2 and 0.5 on local crops;
solarisation (invert values ≥ 128) with p 0.2 on global crop 2 only; ImageNet mean/std normalisation.

Sizes are ``(w, h)``. The reference uses 224×224 global / 96×96 local crops; BTranspose's fork uses 256×192
global crops (w 192, h 256), scale (0.14, 1) and no local crops. Every random draw comes from the
``numpy.random.Generator`` passed in, so a crop depends only on (seed, epoch, sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..data.coco import to_tensor


def random_resized_crop(img: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                        scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """A region of area fraction ~ U(scale) and aspect ~ log-U(ratio) (10 tries, else a centre crop with the
    aspect clamped to ``ratio``), resized to ``size`` ``(w, h)`` bicubically."""
    h, w = img.shape[:2]
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_r))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            break
    else:
        in_ratio = w / h
        if in_ratio < ratio[0]:
            cw, ch = w, int(round(w / ratio[0]))
        elif in_ratio > ratio[1]:
            cw, ch = int(round(h * ratio[1])), h
        else:
            cw, ch = w, h
        y0, x0 = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], size, interpolation=cv2.INTER_CUBIC)


def _gray(img: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB float image, ``(H, W, 1)``."""
    return img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.2, hue: float = 0.1) -> np.ndarray:
    """torchvision ``ColorJitter`` semantics on uint8 RGB: factors ~ U[1 − x, 1 + x] (hue shift ~ U[−h, h] of a
    turn), the four operations in a random order, clipped to [0, 255] after each."""
    x = img.astype(np.float32)
    factors = {"b": rng.uniform(max(0, 1 - brightness), 1 + brightness),
               "c": rng.uniform(max(0, 1 - contrast), 1 + contrast),
               "s": rng.uniform(max(0, 1 - saturation), 1 + saturation), "h": rng.uniform(-hue, hue)}
    for op in rng.permutation(["b", "c", "s", "h"]):
        f = factors[str(op)]
        if op == "b":
            x = x * f
        elif op == "c":
            x = (x - _gray(x).mean()) * f + _gray(x).mean()
        elif op == "s":
            g = _gray(x)
            x = (x - g) * f + g
        else:
            hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV_FULL)
            hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(f * 256))) % 256
            x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
        x = np.clip(x, 0, 255)
    return np.round(x).astype(np.uint8)


def grayscale(img: np.ndarray) -> np.ndarray:
    g = np.clip(np.round(_gray(img.astype(np.float32))), 0, 255).astype(np.uint8)
    return np.repeat(g, 3, axis=2)


def gaussian_blur(img: np.ndarray, rng: np.random.Generator, radius: tuple[float, float] = (0.1, 2.0)) -> np.ndarray:
    """PIL ``GaussianBlur(radius)`` (radius = σ) with σ ~ U(radius)."""
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(*radius)))


def solarize(img: np.ndarray, threshold: int = 128) -> np.ndarray:
    """PIL ``ImageOps.solarize``: values ≥ ``threshold`` become ``255 − value``."""
    return np.where(img >= threshold, 255 - img, img).astype(np.uint8)


@dataclass(frozen=True)
class MultiCropAugment:
    """``__call__(img (H, W, 3) uint8 RGB, rng) -> [2 global crops (3, gh, gw), local_crops × (3, lh, lw)]``."""

    global_size: tuple[int, int] = (224, 224)
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_crops: int = 8
    local_size: tuple[int, int] = (96, 96)
    local_scale: tuple[float, float] = (0.05, 0.4)

    def _view(self, img: np.ndarray, rng: np.random.Generator, size: tuple[int, int], scale: tuple[float, float],
              blur_p: float, solarize_p: float) -> torch.Tensor:
        x = random_resized_crop(img, rng, size, scale)
        if rng.random() < 0.5:
            x = x[:, ::-1]
        if rng.random() < 0.8:
            x = color_jitter(x, rng)
        if rng.random() < 0.2:
            x = grayscale(x)
        if rng.random() < blur_p:
            x = gaussian_blur(np.ascontiguousarray(x), rng)
        if rng.random() < solarize_p:
            x = solarize(x)
        return to_tensor(np.ascontiguousarray(x))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> list[torch.Tensor]:
        crops = [self._view(img, rng, self.global_size, self.global_scale, 1.0, 0.0),
                 self._view(img, rng, self.global_size, self.global_scale, 0.1, 0.2)]
        crops += [self._view(img, rng, self.local_size, self.local_scale, 0.5, 0.0) for _ in range(self.local_crops)]
        return crops


def eval_view(img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The probe's view of a person crop: resized to ``size`` ``(w, h)``, normalised; no augmentation."""
    return to_tensor(cv2.resize(img, size, interpolation=cv2.INTER_CUBIC))
