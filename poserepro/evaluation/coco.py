"""COCO keypoint evaluation (OKS AP / AR) with pycocotools, xtcocotools or faster-coco-eval, with input validation.

``faster-coco-eval`` (the ``fast-eval`` extra) runs the same COCOeval algorithm in C++; on the fixtures its ten
numbers equal pycocotools' (``tests/test_eval_coco_fast.py``). Its trap: setting ``params.useSegm`` — HRNet's
``useSegm = None`` idiom, harmless in pycocotools — silently switches it to *box IoU*; :func:`check_oks` refuses
an evaluator whose ``iouType`` is not ``"keypoints"`` before and after it runs.

Results are COCO keypoint results ``{image_id, category_id, keypoints: [x, y, s] * K, score}``. They must
not carry ``bbox``: ``loadRes`` would then take its box branch and derive each result's area from the box
instead of the keypoint extent. :func:`evaluate_keypoints` and :func:`write_results` drop ``bbox`` (and any
other extra key).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from poserepro.data.coco import check_coco_structure
from poserepro.errors import DataError
from poserepro.io import atomic_write_text, read_json

METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

Backend = Literal["pycocotools", "xtcocotools", "faster-coco-eval"]
BACKENDS: tuple[str, ...] = ("pycocotools", "xtcocotools", "faster-coco-eval")

_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")
_ANN_KEYS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox")


def _coco_class(backend: Backend) -> type:
    if backend == "pycocotools":
        from pycocotools.coco import COCO
    elif backend == "xtcocotools":
        from xtcocotools.coco import COCO
    elif backend == "faster-coco-eval":
        try:
            from faster_coco_eval import COCO
        except ImportError:
            raise DataError("eval.backend=faster-coco-eval needs the package: pip install 'poserepro[fast-eval]'"
                            ) from None
    else:
        raise ValueError(f"unknown COCO backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return COCO


def check_oks(evaluator: Any) -> None:
    """Raise unless ``evaluator`` scores keypoints by OKS (``params.iouType == "keypoints"``).

    faster-coco-eval turns ``params.useSegm = None`` (HRNet's COCOeval idiom) into ``iouType = "bbox"``: the
    keypoint results would be matched by the IoU of boxes derived from their extent, with plausible-looking APs.
    """
    kind = getattr(evaluator.params, "iouType", None)
    if kind != "keypoints":
        raise RuntimeError(f"COCO evaluator set to iouType={kind!r}: keypoints must be scored by OKS "
                           "(do not set params.useSegm)")


def _validate_annotations(data: Any, p: Path) -> None:
    check_coco_structure(data, p, need_categories=True, ann_keys=_ANN_KEYS)
    if not any(isinstance(c, dict) and isinstance(c.get("keypoints"), list) and c["keypoints"]
               for c in data["categories"]):
        raise DataError(f"annotation file {p} has no category with 'keypoints'; use a person_keypoints file")


def load_coco(ann_file: str | Path, backend: Backend = "pycocotools", quiet: bool = True) -> Any:
    """Load and check a COCO keypoint annotation file.

    Args:
        ann_file: ``person_keypoints_*.json``.
        backend: which library's ``COCO`` class to build.
        quiet: silence the library's prints.

    Returns:
        A ``pycocotools.coco.COCO`` (or ``xtcocotools.coco.COCO``) with its index built.

    Raises:
        DataError: missing file, malformed JSON, or no ``images`` / ``annotations`` / keypoint category, or
        annotations lacking the keys COCOeval needs.
    """
    p = Path(ann_file)
    data = read_json(p, "annotation file")
    _validate_annotations(data, p)
    cls = _coco_class(backend)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        if backend == "xtcocotools":
            coco = cls(str(p), ann_data=data)
        elif backend == "faster-coco-eval":
            coco = cls(data)
        else:
            coco = cls()
            coco.dataset = data
            coco.createIndex()
    return coco


def _num_keypoints(coco: Any) -> int:
    """Number of keypoints of the first category that defines them."""
    for cat in coco.dataset["categories"]:
        if isinstance(cat, dict) and cat.get("keypoints"):
            return len(cat["keypoints"])
    raise DataError("annotation file has no category with 'keypoints'")


def _load_results(results: str | Path | Sequence[dict]) -> list[dict]:
    if isinstance(results, (str, Path)):
        data = read_json(results, "results file")
        src = f"results file {results}"
    else:
        data = results
        src = "results"
    if not isinstance(data, (list, tuple)):
        raise DataError(f"{src} must be a JSON list of keypoint results, got {type(data).__name__}")
    return list(data)


def _clean_results(results: list[dict], coco: Any) -> list[dict]:
    """Validate results against the ground truth and return fresh dicts with only the four result keys."""
    k = _num_keypoints(coco)
    img_ids = set(coco.getImgIds())
    cat_ids = set(coco.getCatIds())
    out: list[dict] = []
    bad_imgs: set = set()
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise DataError(f"results entry {i} is not an object")
        missing = [key for key in _RESULT_KEYS if key not in r]
        if missing:
            raise DataError(f"results entry {i} lacks key(s) {', '.join(missing)} "
                            "(expected image_id, category_id, keypoints, score)")
        kp = r["keypoints"]
        if isinstance(kp, np.ndarray):
            kp = kp.reshape(-1).tolist()
        if not isinstance(kp, (list, tuple)) or len(kp) % 3 != 0:
            raise DataError(f"results entry {i}: keypoints must be a flat list [x, y, s] * K")
        if len(kp) // 3 != k:
            raise DataError(
                f"results have {len(kp) // 3} keypoints per person but the annotation file has {k}"
            )
        try:
            kpf = [float(v) for v in kp]
            score = float(r["score"])
        except (TypeError, ValueError):
            raise DataError(f"results entry {i}: keypoints and score must be numbers") from None
        if not all(math.isfinite(v) for v in kpf) or not math.isfinite(score):
            raise DataError(f"results entry {i} has non-finite keypoints or score")
        if r["category_id"] not in cat_ids:
            raise DataError(
                f"results entry {i} has category_id {r['category_id']!r}, not in the annotation file "
                f"(categories {sorted(cat_ids)})"
            )
        if r["image_id"] not in img_ids:
            bad_imgs.add(r["image_id"])
            continue
        img = int(r["image_id"]) if isinstance(r["image_id"], np.integer) else r["image_id"]
        cat = int(r["category_id"]) if isinstance(r["category_id"], np.integer) else r["category_id"]
        out.append({"image_id": img, "category_id": cat, "keypoints": kpf, "score": score})
    if bad_imgs:
        sample = ", ".join(repr(x) for x in sorted(bad_imgs, key=str)[:5])
        raise DataError(
            f"results contain {len(bad_imgs)} image id(s) not in the annotation file (e.g. {sample}); "
            "evaluate against the split the results were made for"
        )
    return out


def evaluate_keypoints(
    ann_file: str | Path,
    results: str | Path | Sequence[dict],
    backend: Backend = "pycocotools",
    sigmas: np.ndarray | Sequence[float] | None = None,
    quiet: bool = True,
) -> dict[str, float]:
    """Run COCOeval (``iouType="keypoints"``) and return the ten summary numbers.

    Args:
        ann_file: COCO keypoint annotation file.
        results: results JSON path or list of result dicts (not modified; ``bbox`` and extra keys are
            ignored).
        backend: ``"pycocotools"``, ``"xtcocotools"`` (gets ``sigmas`` in its constructor and
            ``use_area=True``, i.e. the same numbers as pycocotools) or ``"faster-coco-eval"`` (the same numbers,
            faster; checked to score by OKS, see :func:`check_oks`).
        sigmas: (K,) OKS sigmas; default the library's COCO sigmas (required when K != 17).
        quiet: suppress the libraries' printing (otherwise the usual summary is printed).

    Returns:
        ``{name: value}`` for :data:`METRIC_NAMES` (python floats). Empty results give all zeros.

    Raises:
        DataError: missing / malformed files, results that are not a list, entries missing keys, a keypoint
        count different from the annotation file's, non-finite values, or image / category ids not in the
        annotation file.
    """
    if backend not in BACKENDS:
        raise DataError(f"unknown evaluation backend {backend!r}; use {', '.join(BACKENDS)}")
    coco_gt = load_coco(ann_file, backend=backend, quiet=quiet)
    raw = _load_results(results)
    clean = _clean_results(raw, coco_gt)
    k = _num_keypoints(coco_gt)
    sig = None
    if sigmas is not None:
        sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if sig.shape[0] != k:
            raise DataError(f"sigmas have {sig.shape[0]} entries but the annotation file has {k} keypoints")
    elif k != 17:
        raise DataError(f"the annotation file has {k} keypoints per person: pass OKS sigmas for them")
    if not clean:
        return dict.fromkeys(METRIC_NAMES, 0.0)

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        coco_dt = coco_gt.loadRes(clean)
        if backend == "xtcocotools":
            from xtcocotools.cocoeval import COCOeval as XEval

            ev = XEval(coco_gt, coco_dt, "keypoints", sigmas=sig, use_area=True)
        elif backend == "faster-coco-eval":
            from faster_coco_eval import COCOeval_faster

            ev = COCOeval_faster(coco_gt, coco_dt, iouType="keypoints", print_function=print,
                                 kpt_oks_sigmas=None if sig is None else sig.tolist())
        else:
            from pycocotools.cocoeval import COCOeval

            ev = COCOeval(coco_gt, coco_dt, "keypoints")
            if sig is not None:
                ev.params.kpt_oks_sigmas = sig
        check_oks(ev)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        check_oks(ev)
    return {name: float(v) for name, v in zip(METRIC_NAMES, ev.stats[: len(METRIC_NAMES)])}


def _to_builtin(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def write_results(path: str | Path, results: Sequence[dict]) -> Path:
    """Atomically write COCO keypoint results (temporary file in the same folder, fsync, ``os.replace``).

    Each entry is written as ``{image_id, category_id, keypoints (flat list), score}`` plus any other keys
    it has except ``bbox`` (dropped, see the module docstring); numpy values become python numbers.

    Returns:
        The written path.
    """
    p = Path(path)
    rows = []
    for r in results:
        row = {key: v for key, v in r.items() if key != "bbox"}
        if isinstance(row.get("keypoints"), np.ndarray):
            row["keypoints"] = row["keypoints"].reshape(-1).tolist()
        rows.append(row)
    atomic_write_text(p, json.dumps(rows, default=_to_builtin))
    return p


def evaluate_person_boxes(ann_file: str | Path, results: Sequence[dict], quiet: bool = True) -> dict[str, float]:
    """COCOeval ``iouType="bbox"`` of person boxes ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``
    against a keypoint annotation file (pycocotools): ``{"AP", "AP50", "AP75"}``; empty results give zeros.

    Used to tell an end-to-end model's detector apart from its keypoint head (``scripts/calibrate.py``).
    """
    coco_gt = load_coco(ann_file, quiet=quiet)
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        ev = COCOeval(coco_gt, coco_gt.loadRes(list(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}
