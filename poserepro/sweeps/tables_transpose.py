"""TransPose's ablations. The paper exists in two versions that number their tables differently: the first arXiv
version (``papers/000_a751b445e0ef3f83.txt``, "v1") and the ICCV version (``papers/002_12f22e74c9830035.txt``);
every reference names both.
"""

from __future__ import annotations

from .cells import Sweep, Variant, res_overrides

#: test resolutions (h, w) of TransPose's generalisation study; the paper prints the last as "512×388", we use the
#: 4:3 crop 512×384 (388 is not a multiple of the stride and breaks the 4:3 aspect of every other size)
TEST_SIZES = ((128, 96), (256, 192), (384, 288), (512, 384))
#: the smoke recipes train at 128×96; their test sizes keep the paper's ratios to the training size
SMOKE_TEST_SIZES = ((64, 48), (128, 96), (192, 144), (256, 192))

_DARK_SB = ("eval.decode=dark", "eval.flip_shift=false", "data.affine=dark")


def _pos_embed() -> Sweep:
    cells = (("none", 70.4, 4.999), ("learnable", 70.9, 5.195), ("sine", 71.7, 5.195))
    return Sweep(
        "pos-embed",
        "TransPose v1 Table 3 / ICCV Table 4: position embedding of TransPose-R-A3, 256x192 "
        "(none 70.4, learnable 70.9, 2-D sine 71.7 AP; 4.999 / 5.195 / 5.195 M parameters)",
        "transpose-r-a3", "transpose-r-smoke",
        tuple(Variant(pe, (f"model.args.pos_embed={pe}",), paper_value=ap, paper_params_m=p) for pe, ap, p in cells),
    )


def _encoder_layers() -> Sweep:
    rows = ((2, "transpose-r-l2", 69.6, 4.4), (3, "transpose-r-a3", 71.7, 5.2), (4, "transpose-r-a4", 72.6, 6.0),
            (5, "transpose-r-l5", 72.2, 6.8), (6, "transpose-r-l6", 72.2, 7.6))
    return Sweep(
        "encoder-layers",
        "TransPose v1 Table 8 (appendix) / ICCV Table 7: TransPose-R encoder depth, d 256, FFN 1024 "
        "(2-6 layers: 69.6 / 71.7 / 72.6 / 72.2 / 72.2 AP)",
        "transpose-r-a3", "transpose-r-smoke",
        tuple(Variant(f"layers-{n}", (), paper_value=ap, recipe=r, paper_params_m=p,
                      smoke=(f"model.args.num_layers={n}",)) for n, r, ap, p in rows),
    )


def _encoder_scaling_h() -> Sweep:
    def smoke(d: int, layers: int = 2, heads: int = 1) -> tuple[str, ...]:
        return (f"model.args.d_model={d}", f"model.args.dim_feedforward={2 * d}", f"model.args.num_layers={layers}",
                f"model.args.num_heads={heads}")

    width = "width (4 layers; smoke 2)"
    depth = "depth (d 96; smoke d 32)"
    cells = (
        Variant("d64", (), paper_value=75.1, recipe="transpose-h-w48-d64", paper_params_m=17.0, smoke=smoke(24),
                series=width),
        Variant("d96", (), paper_value=75.3, recipe="transpose-h-a4", paper_params_m=17.3, smoke=smoke(32),
                series=width, reference=True),
        Variant("d192", (), paper_value=75.4, recipe="transpose-h-w48-d192", paper_params_m=18.5,
                smoke=smoke(64, heads=2), series=width, note="d 192 has 2 heads in the official yaml"),
        Variant("layers-4", (), paper_value=75.3, recipe="transpose-h-a4", paper_params_m=17.3, smoke=smoke(32, 2),
                series=depth, note="shares its trained model with d96"),
        Variant("layers-5", (), paper_value=75.6, recipe="transpose-h-l5", paper_params_m=17.4, smoke=smoke(32, 3),
                series=depth),
        Variant("layers-6", (), paper_value=75.8, recipe="transpose-h-a6", paper_params_m=17.5, smoke=smoke(32, 4),
                series=depth),
    )
    return Sweep(
        "encoder-scaling-h",
        "TransPose v1 Table 8 (appendix) / ICCV Table 7: TransPose-H (HRNet-S-W48) encoder width d 64 / 96 / 192 "
        "at 4 layers (75.1 / 75.3 / 75.4 AP) and depth 4 / 5 / 6 at d 96 (75.3 / 75.6 / 75.8 AP)",
        "transpose-h-a4", "transpose-h-smoke", cells,
        notes="Smoke: d 24 / 32 / 64 (FFN 2d) stand for d 64 / 96 / 192, and 2 / 3 / 4 layers for 4 / 5 / 6.",
    )


def _resolution() -> Sweep:
    models = (
        ("SimpleBaseline-R50-DARK", "simplebaseline-r50", "simplebaseline-smoke", _DARK_SB),
        ("TP-R-A3 none", None, None, ("model.args.pos_embed=none",)),
        ("TP-R-A3 learnable", None, None, ("model.args.pos_embed=learnable",)),
        ("TP-R-A3 sine", None, None, ("model.args.pos_embed=sine",)),
    )
    cells = []
    for series, recipe, smoke_recipe, train in models:
        tag = series.split()[-1] if series.startswith("TP") else "sb-dark"
        for (h, w), (sh, sw) in zip(TEST_SIZES, SMOKE_TEST_SIZES):
            cells.append(Variant(
                f"{tag}-test{h}x{w}", train, res_overrides(h, w), recipe=recipe, smoke_recipe=smoke_recipe,
                smoke_eval=res_overrides(sh, sw), series=series, x=f"{h}x{w}", reference=(h, w) == (256, 192),
                note="sine PE recomputed for the test grid; learnable PE resized bilinearly over the 2-D grid",
            ))
    return Sweep(
        "resolution",
        "TransPose v1 Fig. 8 / ICCV Fig. 5: trained at 256x192, tested at 128x96, 256x192, 384x288, 512x384 "
        "(the paper prints 512x388; we test 512x384) — SimpleBaseline-R50-DARK and TP-R-A3 with none / learnable / "
        "sine PE (figure only, no printed values)",
        "transpose-r-a3", "transpose-r-smoke", tuple(cells), figure="lines",
        notes="Four trained models (one per series), each evaluated at four test sizes. Smoke: trained at 128x96, "
              "tested at 64x48 / 128x96 / 192x144 / 256x192 (the paper's ratios).",
    )


TRANSPOSE_SWEEPS: tuple[Sweep, ...] = (_pos_embed(), _encoder_layers(), _encoder_scaling_h(), _resolution())
