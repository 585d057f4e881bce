"""Parameter and FLOP counting in two conventions (FACTS §6).

* :func:`flops_fvcore` — ``fvcore.nn.FlopCountAnalysis(model.eval(), x).total()``: one multiply-accumulate = 1;
  conv / linear / matmul / bmm / einsum, batch-norm (2/elem), layer-norm (5/elem), upsampling; element-wise ops,
  softmax and pooling are free. PRTR's and most later papers' numbers are in this convention. Our attention runs
  through ``aten::scaled_dot_product_attention``, which fvcore does not know: we count it as the two matmuls it
  replaces (``q·kᵀ`` and ``attn·v``).
* :func:`flops_paper_convention` — TransPose's ``tools/compute_flops.py`` (a fvcore-derived JIT counter applied to
  the model in **train** mode): convolutions as ``N·H_out·W_out·C_out·w.shape[1]·k_h·k_w`` (so a transposed conv
  costs ``H_out·W_out·C_out·C_out·k²``), batch-norm 4/elem, add/sub/mul/div/relu 1/elem, rsqrt 2/elem, softmax
  5/elem, dropout 1/elem, a linear layer on a ≥3-D input as ``matmul`` (``in·out·prod(leading dims)``) plus the
  bias add (on a 2-D input as ``addmm``, no bias add), bmm/matmul as MACs; layer-norm, pooling and upsampling are
  free. SDPA is counted as what ``nn.MultiheadAttention`` executes in its place: ``q·scale`` (1/elem unless the
  scale is 1), ``q·kᵀ``, the float mask add, softmax, attention dropout (when ``dropout_p > 0``) and ``attn·v``.

Both conventions are counted from one eval-mode TorchScript trace (batch 1 is what the papers report); the model's
train/eval modes are restored. Results are integers (FLOPs); divide by 1e9 for GFLOPs.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Handle = Callable[[list[Any], list[Any]], Any]

# shape / bookkeeping ops that are free in both conventions (not reported as "skipped")
_SHAPE_OPS = {
    "aten::size", "aten::Int", "aten::view", "aten::reshape", "aten::flatten", "aten::transpose", "aten::permute",
    "aten::contiguous", "aten::slice", "aten::select", "aten::chunk", "aten::split", "aten::unsqueeze",
    "aten::squeeze", "aten::expand", "aten::cat", "aten::stack", "aten::to", "aten::detach", "aten::t",
    "aten::max_pool2d", "aten::avg_pool2d", "aten::ScalarImplicit", "aten::arange", "aten::zeros", "aten::ones",
    "aten::movedim", "aten::index", "aten::clone", "aten::copy_", "aten::unbind",
}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """``sum(p.numel())`` over the parameters (the papers' convention: non-trainable Parameters such as
    TransPose's fixed sine position table count; buffers such as BN statistics do not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _shape(v: Any) -> list[int] | None:
    """Shape of a traced value, ``None`` for a non-tensor or an incomplete type."""
    try:
        if v.isCompleteTensor():
            return list(v.type().sizes())
    except RuntimeError:
        return None
    return None


def _const(v: Any) -> Any:
    try:
        return v.toIValue()
    except RuntimeError:
        return None


def _numel(shape: list[int] | None) -> int:
    return math.prod(shape) if shape else (1 if shape == [] else 0)


# ----------------------------------------------------------------------------------------------------- shared
def _sdpa_shapes(inputs: list[Any], outputs: list[Any]) -> tuple[int, int, int, int, int]:
    """``(batch·heads, Lq, Lk, d_qk, d_v)`` of an ``aten::scaled_dot_product_attention`` node."""
    q, k, v = (_shape(x) for x in inputs[:3])
    out = _shape(outputs[0])
    assert q is not None and k is not None and v is not None and out is not None
    batch = math.prod(out[:-2])
    return batch, q[-2], k[-2], q[-1], v[-1]


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    bh, lq, lk, dqk, dv = _sdpa_shapes(inputs, outputs)
    return bh * lq * lk * (dqk + dv)


# ------------------------------------------------------------------------------------ TransPose convention
def _elementwise(scale: int = 1) -> Handle:
    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return scale * _numel(_shape(outputs[0]))

    return handle


def _paper_conv(inputs: list[Any], outputs: list[Any]) -> int:
    x, w, out = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
    assert x is not None and w is not None and out is not None
    return x[0] * math.prod(out[2:]) * out[1] * w[1] * math.prod(w[2:])


def _paper_linear(inputs: list[Any], outputs: list[Any]) -> int:
    x, w, out = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
    assert x is not None and w is not None and out is not None
    macs = math.prod(x[:-1]) * x[-1] * w[0]
    has_bias = _shape(inputs[2]) is not None
    if len(x) >= 3 and has_bias:
        macs += _numel(out)  # matmul + add_ (torch 1.x decomposition of a ≥3-D linear)
    return macs


def _paper_addmm(inputs: list[Any], outputs: list[Any]) -> int:
    a, b = _shape(inputs[1]), _shape(inputs[2])
    assert a is not None and b is not None
    return a[0] * a[1] * b[1]


def _matmul_macs(inputs: list[Any], outputs: list[Any]) -> int:
    a, out = _shape(inputs[0]), _shape(outputs[0])
    assert a is not None and out is not None
    return _numel(out) * a[-1]


def _paper_sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    bh, lq, lk, dqk, dv = _sdpa_shapes(inputs, outputs)
    attn = bh * lq * lk
    total = bh * lq * lk * (dqk + dv) + 5 * attn  # q·kᵀ, attn·v, softmax
    if len(inputs) > 3 and _shape(inputs[3]) is not None:
        total += attn  # additive float mask
    scale = _const(inputs[6]) if len(inputs) > 6 else None
    if scale is None:
        # the default scale: our MultiheadAttention, i.e. nn.MultiheadAttention, which scales q explicitly and
        # always calls F.dropout on the attention probabilities (counted by the official counter in train mode)
        total += bh * lq * dqk + attn
    elif scale != 1.0:
        total += bh * lq * dqk
    return total


def _paper_batchnorm(inputs: list[Any], outputs: list[Any]) -> int:
    return 4 * _numel(_shape(inputs[0]))


_PAPER_HANDLES: dict[str, Handle | None] = {
    "aten::_convolution": _paper_conv,
    "aten::linear": _paper_linear,
    "aten::addmm": _paper_addmm,
    "aten::matmul": _matmul_macs,
    "aten::mm": _matmul_macs,
    "aten::bmm": _matmul_macs,
    "aten::batch_norm": _paper_batchnorm,
    "aten::add": _elementwise(),
    "aten::add_": _elementwise(),
    "aten::sub": _elementwise(),
    "aten::sub_": _elementwise(),
    "aten::mul": _elementwise(),
    "aten::mul_": _elementwise(),
    "aten::div": _elementwise(),
    "aten::div_": _elementwise(),
    "aten::floor_divide": _elementwise(),
    "aten::relu": _elementwise(),
    "aten::relu_": _elementwise(),
    "aten::rsqrt": _elementwise(2),
    "aten::softmax": _elementwise(5),
    "aten::dropout": _elementwise(),
    "aten::dropout_": _elementwise(),
    "aten::scaled_dot_product_attention": _paper_sdpa,
    # not counted by the TransPose counter
    "aten::layer_norm": None,
    "aten::group_norm": None,
    "aten::instance_norm": None,
    "aten::upsample_nearest2d": None,
    "aten::upsample_bilinear2d": None,
    "aten::adaptive_avg_pool2d": None,
    "aten::grid_sampler": None,
}


def _fvcore_handles() -> dict[str, Handle | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import touches deprecated torch.jit APIs
        from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

    return {**_DEFAULT_SUPPORTED_OPS, "aten::scaled_dot_product_attention": _sdpa_macs}


def trace_graph(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> Any:
    """TorchScript trace graph of ``model`` (eval mode, no grad) at ``inputs``; the model's modes are restored.

    Both conventions are counted from this one eval-mode trace: it holds the same ops as a train-mode trace
    (dropout nodes included) except BN's ``num_batches_tracked`` increments and the attention dropout inside SDPA,
    which :func:`_paper_sdpa` adds back for ``nn.MultiheadAttention``-style calls.
    """
    modes = {m: m.training for m in model.modules()}
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            graph, _ = torch.jit._get_trace_graph(model, args)
    finally:
        for m, t in modes.items():
            m.training = t
    return graph


def count_graph(graph: Any, handles: dict[str, Handle | None]) -> tuple[int, dict[str, int], dict[str, int]]:
    """Apply ``handles`` to every node of a trace graph: ``(total, per-op totals, skipped ops with counts)``."""
    total, per_op, skipped = 0, Counter(), Counter()
    for node in graph.nodes():
        kind = node.kind()
        handle = handles.get(kind)
        if handle is None:
            if kind not in handles and not kind.startswith("prim::") and kind not in _SHAPE_OPS:
                skipped[kind] += 1
            continue
        n = handle(list(node.inputs()), list(node.outputs()))
        n = int(sum(n.values()) if isinstance(n, Counter) else n)
        total += n
        per_op[kind] += n
    return total, dict(per_op), dict(skipped)


@dataclass(frozen=True)
class FlopCounts:
    """FLOPs of one model at one input in both conventions (integers; /1e9 for GFLOPs)."""

    fvcore: int
    paper_convention: int


def count_flops(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> FlopCounts:
    """Both conventions from a single trace (use batch 1: that is what the papers report)."""
    graph = trace_graph(model, inputs)
    return FlopCounts(count_graph(graph, _fvcore_handles())[0], count_graph(graph, _PAPER_HANDLES)[0])


def flops_fvcore(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """fvcore FLOPs (MACs) of ``model`` in eval mode at ``inputs`` (``(B, 3, H, W)``; use B = 1)."""
    return count_graph(trace_graph(model, inputs), _fvcore_handles())[0]


def flops_paper_convention(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """FLOPs of ``model`` at ``inputs`` in the TransPose paper's convention (see module docstring).

    Reproduces the official TransPose counts of FACTS §6 to < 0.02%.
    """
    return count_graph(trace_graph(model, inputs), _PAPER_HANDLES)[0]


def paper_convention_by_operator(model: nn.Module, inputs: torch.Tensor) -> tuple[dict[str, int], dict[str, int]]:
    """``(FLOPs per operator, skipped operators with their call counts)`` in the TransPose convention."""
    _, per_op, skipped = count_graph(trace_graph(model, inputs), _PAPER_HANDLES)
    return per_op, skipped
