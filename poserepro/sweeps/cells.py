"""The data types of the paper ablations: a :class:`Sweep` is a named list of :class:`Variant` cells, each a set of
``--set`` overrides on a base recipe (paper scale) and on a smoke recipe (the embedded synthetic benchmark).

``eval_overrides`` change only the evaluation (the test resolution of TransPose's Fig. 8 study, PRTR's GT boxes /
∅ logit / flip test): cells whose training recipe and overrides are equal share one trained model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    """One cell of a sweep.

    Attributes:
        name: the cell's label (unique within its sweep).
        overrides: training overrides on the paper-scale base recipe (``recipe`` or the sweep's ``base``).
        eval_overrides: evaluation-only overrides (the trained model is shared with equal training settings).
        paper_value: the paper's AP (percent) for this cell, ``None`` where the paper gives none.
        smoke: training overrides on the smoke recipe (default: ``overrides``).
        smoke_eval: evaluation overrides on the smoke recipe (default: ``eval_overrides``).
        recipe: this cell's paper-scale base recipe (default: the sweep's ``base``).
        smoke_recipe: this cell's smoke base recipe (default: the sweep's ``smoke_base``).
        paper_params_m: the paper's parameter count (millions), where the table prints it.
        needs: why the cell cannot run yet (skipped with one line at both scales), or ``None``.
        smoke_skip: why the smoke cell is skipped (e.g. the smoke recipe has one backbone), or ``None``.
        series: the line / group the cell belongs to in the sweep's figure (``""``: one group).
        x: the cell's position on the figure's x axis (the test resolution; default: the cell name).
        reference: the cell others of its series are compared with (direction of the effect); default: the
            series' first cell.
        note: one line on how this cell departs from the paper's setting.
        pretrain: a pretraining recipe (``recipes/pretrain/``) run once before this cell trains; the cell then
            starts from its teacher backbone (``model.init=dino:...``). ``smoke_pretrain``: the smoke one.
        pretrain_overrides: the pretraining's ``--set`` overrides at both scales (default: the cell's own
            ``model.args.*`` overrides at its scale). Give them where those change the pose model outside its
            backbone (N6's encoder depth), so that cells with one backbone share one pretraining.
    """

    name: str
    overrides: tuple[str, ...] = ()
    eval_overrides: tuple[str, ...] = ()
    paper_value: float | None = None
    smoke: tuple[str, ...] | None = None
    smoke_eval: tuple[str, ...] | None = None
    recipe: str | None = None
    smoke_recipe: str | None = None
    paper_params_m: float | None = None
    needs: str | None = None
    smoke_skip: str | None = None
    series: str = ""
    x: str = ""
    reference: bool = False
    note: str = ""
    pretrain: str | None = None
    smoke_pretrain: str | None = None
    pretrain_overrides: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Sweep:
    """A named ablation: base recipes, the paper's table reference, the cells and the kind of figure."""

    name: str
    paper_ref: str
    base: str
    smoke_base: str
    variants: tuple[Variant, ...] = field(default_factory=tuple)
    figure: str = "bars"       # bars (ours vs paper per cell) | lines (AP over ``x`` per series) | curves (AP vs epoch)
    notes: str = ""


def res_overrides(h: int, w: int) -> tuple[str, ...]:
    """``--set`` overrides for an ``h×w`` input (heatmaps at stride 4)."""
    return (f"data.input_size=[{w}, {h}]", f"data.heatmap_size=[{w // 4}, {h // 4}]")
