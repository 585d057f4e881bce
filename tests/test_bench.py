"""`poserepro bench`: parameter and FLOP counters (both conventions) on hand-countable modules, the SDPA handle
against an nn.MultiheadAttention trace, timing / memory, CSV rows and the Typer command."""

from __future__ import annotations

import csv
import math
import re
import warnings
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from poserepro.bench.flops import (
    _PAPER_HANDLES,
    count_flops,
    count_graph,
    count_params,
    flops_fvcore,
    flops_paper_convention,
)
from poserepro.bench.runner import COLUMNS, default_csv_name, parse_input_size, resolve, write_rows
from poserepro.bench.speed import measure_speed
from poserepro.cli.bench import bench
from poserepro.errors import PoseReproError, UnknownNameError
from poserepro.models.layers import TransformerEncoderLayer

REQUIRED = ("model, input_size, batch, device, precision, params, paper_params, params_rel_diff, gflops_fvcore, "
            "gflops_paper_convention, paper_gflops, gflops_rel_diff, fps, latency_ms_median, latency_ms_iqr, "
            "peak_mem_mb, torch, timestamp").split(", ")


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.deconv = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False)
        self.fixed = nn.Parameter(torch.zeros(5), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.relu(self.bn(self.conv(x))))


def test_count_params_includes_fixed_parameters() -> None:
    m = ConvNet()
    assert count_params(m) == 3 * 8 * 9 + 16 + 8 * 4 * 16 + 5
    assert count_params(m, trainable_only=True) == count_params(m) - 5


def test_conv_bn_deconv_by_hand() -> None:
    m, x = ConvNet(), torch.randn(1, 3, 8, 6)
    conv = 8 * 6 * 8 * 3 * 9
    # fvcore: BN (eval, affine) 2/elem, ReLU free, transposed conv at its input resolution
    assert flops_fvcore(m, x) == conv + 2 * 8 * 48 + 48 * 8 * 4 * 16
    # TransPose convention: BN 4/elem, ReLU 1/elem, transposed conv = H_out·W_out·C_out·C_out·k²
    assert flops_paper_convention(m, x) == conv + 4 * 8 * 48 + 8 * 48 + 16 * 12 * 4 * 4 * 16
    assert m.training  # modes restored


def test_linear_conventions() -> None:
    lin = nn.Linear(16, 32)
    x3, x2 = torch.randn(1, 10, 16), torch.randn(10, 16)
    assert flops_fvcore(lin, x3) == 10 * 16 * 32
    assert flops_paper_convention(lin, x3) == 10 * 16 * 32 + 10 * 32  # matmul + bias add_
    assert flops_paper_convention(lin, x2) == 10 * 16 * 32  # addmm


class OfficialLayer(nn.Module):
    """TransPose's encoder layer as the official code runs it: sequence-first nn.MultiheadAttention."""

    def __init__(self, d: int, h: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, h, dropout=0.1)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(0.1), nn.Dropout(0.1), nn.Dropout(0.1)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, value=src)[0]))
        return self.norm2(src + self.dropout2(self.linear2(self.dropout(torch.relu(self.linear1(src))))))


def test_sdpa_handle_matches_multihead_attention_trace() -> None:
    d, h, ffn, L = 32, 4, 64, 50
    ours = TransformerEncoderLayer(d, h, ffn, 0.1)
    official = OfficialLayer(d, h, ffn).train()
    src, pos = torch.randn(1, L, d), torch.randn(L, d)
    c_ours = count_flops(ours, (src, pos))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        graph, _ = torch.jit._get_trace_graph(official, (src.transpose(0, 1), pos[:, None]))
    paper_official = count_graph(graph, _PAPER_HANDLES)[0]
    # torch 2.x runs out_proj as a 2-D linear (no separate bias add): the only difference, L·d FLOPs (plus a
    # few scalar shape ops on either side)
    assert abs(c_ours.paper_convention - paper_official - L * d) <= 8
    macs = 4 * L * d * d + 2 * L * d * ffn + 2 * L * L * d  # projections, FFN, q·kᵀ and attn·v
    assert c_ours.fvcore == macs + 2 * 5 * L * d  # + two layer norms (5/elem)


def test_measure_speed_cpu() -> None:
    m = ConvNet().train()
    r = measure_speed(m, (32, 24), batch=2, warmup=1, repeats=3)
    assert r.batch == 2 and r.repeats == 3
    assert r.latency_ms_median > 0 and r.latency_ms_iqr >= 0 and r.peak_mem_mb >= 0
    assert r.fps == pytest.approx(2 / (r.latency_ms_median / 1e3))
    assert m.training


def test_resolve_and_parse() -> None:
    assert resolve("transpose_h_a6").model == "transpose_h_a6" and resolve("transpose_h_a6").recipe == ""
    spec = resolve("transpose-h-a6")
    assert spec.model == "transpose_h_a6" and spec.recipe == "transpose-h-a6" and spec.args["pos_embed"] == "sine"
    assert resolve("btranspose-smoke").model == "btranspose_smoke"
    with pytest.raises(UnknownNameError, match="did you mean"):
        resolve("transpose_h_a7")
    assert parse_input_size("256x192") == (256, 192)
    with pytest.raises(PoseReproError):
        parse_input_size("256")
    name = default_csv_name("cpu", False)
    assert re.fullmatch(r"bench_cpu_fp32_torch[\d.]+\.csv", name)
    assert default_csv_name("cpu", True).startswith("bench_cpu_amp-bf16_")


def test_write_rows_merges(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    row = {"model": "a", "recipe": "", "input_size": "256x192", "batch": 1, "fps": 1.0}
    write_rows(path, [row, {**row, "model": "b"}])
    write_rows(path, [{**row, "fps": 2.0}, {**row, "batch": 8}])
    rows = list(csv.DictReader(path.open()))
    assert [(r["model"], r["batch"], r["fps"]) for r in rows] == [("a", "1", "2"), ("a", "8", "1"), ("b", "1", "1")]
    assert tuple(rows[0]) == COLUMNS


def test_bench_cli(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("bench")(bench)
    app.command("other")(lambda: None)
    runner = CliRunner()
    out = tmp_path / "bench.csv"
    r = runner.invoke(app, ["bench", "transpose_h_smoke", "btranspose-smoke", "--input", "128x96", "--repeats", "2",
                            "--warmup", "1", "--throughput-batch", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert set(REQUIRED) <= set(rows[0])
    assert {(x["model"], x["recipe"], x["batch"]) for x in rows} == {
        ("transpose_h_smoke", "", "1"), ("transpose_h_smoke", "", "2"),
        ("btranspose_smoke", "btranspose-smoke", "1"), ("btranspose_smoke", "btranspose-smoke", "2")}
    for x in rows:
        assert x["input_size"] == "128x96" and x["device"] == "cpu" and x["precision"] == "fp32"
        assert float(x["fps"]) > 0 and float(x["gflops_fvcore"]) > 0 and int(x["params"]) > 0
        assert x["torch"] == torch.__version__ and x["paper_params"] == ""

    # paper columns at the paper's input size; --skip-fps leaves the timing columns empty; default file name
    r = runner.invoke(app, ["bench", "transpose_r_a3star", "--skip-fps"])
    assert r.exit_code == 0, r.output
    default = Path(__import__("os").environ["POSEREPRO_RESULTS"]) / default_csv_name("cpu", False)
    row = next(csv.DictReader(default.open()))
    assert row["fps"] == "" and int(row["params"]) == 5_038_673 and float(row["paper_gflops"]) == 5.4
    assert math.isclose(float(row["gflops_rel_diff"]), 5.4465 / 5.4 - 1, abs_tol=2e-3)

    r = runner.invoke(app, ["bench", "transpose_r_a5", "--skip-fps"])
    assert r.exit_code == 2 and "did you mean" in r.output
