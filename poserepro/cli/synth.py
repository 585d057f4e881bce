"""``poserepro data synth``: write the procedural synthetic COCO-format benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


def _range(text: str) -> tuple[int, int]:
    from ..errors import DataError

    try:
        parts = [int(p) for p in text.replace("-", ",").split(",")]
    except ValueError:
        raise DataError(f"--persons-per-image {text!r} must be N or MIN,MAX (e.g. 1,3)") from None
    return (parts[0], parts[-1])


@handle_errors
def synth_cmd(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/synthetic"),
    images: Annotated[int, typer.Option(help="Training images.")] = 2000,
    val_images: Annotated[int, typer.Option(help="Validation images.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed (same seed → byte-identical annotations).")] = 0,
    persons_per_image: Annotated[str, typer.Option(help="MIN,MAX persons per image.")] = "1,3",
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    clutter: Annotated[float | None, typer.Option(help="Background clutter in [0, 1] (default: SynthConfig).")] = None,
    occlusion: Annotated[float | None, typer.Option(help="Person overlap / occluders in [0, 1].")] = None,
    noise: Annotated[float | None, typer.Option(help="Noise, blur and lighting variation in [0, 1].")] = None,
    pose: Annotated[float | None, typer.Option(help="Side/back views, rolled and lying people in [0, 1].")] = None,
) -> None:
    """Write a deterministic multi-person dataset in COCO keypoint format (+ a detector-style box file)."""
    import time

    from ..data.synthetic import SynthConfig, synthesize

    t0 = time.perf_counter()
    knobs = {k: v for k, v in (("clutter", clutter), ("occlusion", occlusion), ("noise", noise), ("pose", pose))
             if v is not None}
    cfg = SynthConfig(num_train=images, num_val=val_images, seed=seed, persons_per_image=_range(persons_per_image),
                      **knobs)
    s = synthesize(out, cfg, workers=workers)
    secs = time.perf_counter() - t0
    console.print(f"wrote {s.num_images} images, {s.num_persons} persons to {s.root} in {secs:.1f} s")
    for split, f in s.ann_files.items():
        console.print(f"  {split}: {f}")
    console.print(f"  detector boxes (val): {s.det_file}")
