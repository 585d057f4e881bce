"""The paper ablations. Each sweep names a base recipe (paper scale) and a smoke recipe (synthetic benchmark),
and a list of variants, each a list of ``--set`` overrides applied to either base.

``eval_overrides`` change only the evaluation (e.g. the test resolution of TransPose's Fig. 8 study, where a
model trained at 256×192 is tested at other sizes): variants that share the training overrides share one
trained model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UnknownNameError, suggest


@dataclass(frozen=True)
class Variant:
    """One cell of a sweep."""

    name: str
    overrides: tuple[str, ...] = ()
    eval_overrides: tuple[str, ...] = ()
    paper_value: float | None = None
    smoke: tuple[str, ...] | None = None        # training overrides on the smoke recipe (default: ``overrides``)
    smoke_eval: tuple[str, ...] | None = None   # evaluation overrides on the smoke recipe (default: ``eval_overrides``)


@dataclass(frozen=True)
class Sweep:
    """A named ablation: base recipes and variants."""

    name: str
    paper_ref: str
    base: str
    smoke_base: str
    variants: tuple[Variant, ...] = field(default_factory=tuple)


def _res(h: int, w: int) -> tuple[str, ...]:
    return (f"data.input_size=[{w}, {h}]", f"data.heatmap_size=[{w // 4}, {h // 4}]")


SWEEPS: dict[str, Sweep] = {s.name: s for s in (
    Sweep(
        "pos-embed", "TransPose Table 3: position embedding of TransPose-R-A3* (none 70.4, learnable 70.9, sine 71.7)",
        "transpose-r-a3", "transpose-r-smoke",
        (Variant("sine", ("model.args.pos_embed=sine",), paper_value=71.7),
         Variant("learnable", ("model.args.pos_embed=learnable",), paper_value=70.9),
         Variant("none", ("model.args.pos_embed=none",), paper_value=70.4)),
    ),
    Sweep(
        "encoder-layers", "TransPose Table 4: encoder depth of TransPose-R (2-6 layers)",
        "transpose-r-a3", "transpose-r-smoke",
        tuple(
            Variant(f"layers-{n}", (f"model.name={m}",), paper_value=ap, smoke=(f"model.args.num_layers={n}",))
            for n, m, ap in ((2, "transpose_r_l2", None), (3, "transpose_r_a3", 71.7), (4, "transpose_r_a4", 72.6),
                             (5, "transpose_r_l5", None), (6, "transpose_r_l6", None))
        ),
    ),
    Sweep(
        "resolution", "TransPose Fig. 8: trained at 256x192, tested at other input sizes (sine / learnable PE)",
        "transpose-r-a3", "transpose-r-smoke",
        tuple(
            Variant(f"{pe}-test{h}x{w}", (f"model.args.pos_embed={pe}",), _res(h, w),
                    smoke_eval=_res(h * 96 // 256, w * 72 // 192))
            for pe in ("sine", "learnable") for h, w in ((128, 96), (256, 192), (384, 288), (512, 384))
        ),
    ),
    Sweep(
        "prtr-queries", "PRTR Table 5: number of queries (100 → 67.7, 17 → 67.3, 17 class-fixed → 56.3)",
        "prtr-r50-384x288", "prtr-smoke",
        (Variant("q100", ("model.args.num_queries=100",), paper_value=67.7),
         Variant("q50", ("model.args.num_queries=50",)),
         Variant("q17", ("model.args.num_queries=17",), paper_value=67.3)),
    ),
    Sweep(
        "tfpose-decoder-layers", "TFPose Table 3: decoder layers N_D 1-6 with N_E 6 (65.7 → 67.2)",
        "tfpose-r50-e6-256x192", "tfpose-smoke",
        tuple(Variant(f"dec-{n}", (f"model.args.num_decoder_layers={n}",)) for n in (1, 2, 4, 6)),
    ),
)}


def get_sweep(name: str) -> Sweep:
    """The sweep called ``name`` (UnknownNameError with suggestions otherwise)."""
    if name not in SWEEPS:
        raise UnknownNameError(f"unknown ablation {name!r}{suggest(name, list(SWEEPS))}; "
                               f"choose from {', '.join(SWEEPS)}")
    return SWEEPS[name]
