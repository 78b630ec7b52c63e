"""GPU policy (REFERENCE): CUDA only if available and (asked and allowed) or forced;
``--gpu-num`` picks the device. Tested through an injected device probe."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.cli import cli
from fedward.config.model import GpuMode, GpuPolicy, NodeConfig
from fedward.node.gpu import choose_device
from fedward.node.start_command import with_gpu_flags


def no_probe() -> int:
    raise AssertionError("the policy must not probe for a GPU it will not use")


# (node mode, researcher asks, CUDA devices here, --gpu-num) -> device
CASES = [
    ("off", False, 2, 0, "cpu"),
    ("off", True, 2, 0, "cpu"),  # the researcher asks, the node does not allow
    ("allowed", False, 2, 0, "cpu"),  # allowed, but nobody asked
    ("allowed", True, 2, 0, "cuda:0"),  # asked and allowed
    ("allowed", True, 2, 1, "cuda:1"),  # --gpu-num picks the device
    ("allowed", True, 0, 0, "cpu"),  # asked and allowed, but no GPU here
    ("only", False, 2, 0, "cuda:0"),  # forced without being asked
    ("only", True, 2, 1, "cuda:1"),
    ("only", False, 0, 1, "cpu"),  # forced, but no GPU here
    ("only", False, 2, 5, "cuda:0"),  # a device number this machine lacks: device 0
    ("allowed", True, 1, 3, "cuda:0"),
]


@pytest.mark.parametrize(("mode", "asked", "count", "index", "expected"), CASES)
def test_device_follows_the_policy(
    mode: GpuMode, asked: bool, count: int, index: int, expected: str
) -> None:
    policy = GpuPolicy(mode=mode, device_index=index)
    assert choose_device(policy, asked, lambda: count) == expected


@pytest.mark.parametrize(("mode", "asked"), [("off", True), ("off", False), ("allowed", False)])
def test_no_probe_when_the_policy_rules_the_gpu_out(mode: GpuMode, asked: bool) -> None:
    assert choose_device(GpuPolicy(mode=mode), asked, no_probe) == "cpu"


def _config(tmp_path: Path, gpu: GpuPolicy | None = None) -> NodeConfig:
    return NodeConfig(node_id="n1", state_dir=tmp_path, gpu=gpu or GpuPolicy())


@pytest.mark.parametrize(
    ("mode", "num", "expected"),
    [
        (None, None, GpuPolicy("off", 0)),
        ("allowed", None, GpuPolicy("allowed", 0)),
        ("only", 2, GpuPolicy("only", 2)),
        (None, 3, GpuPolicy("off", 3)),
    ],
)
def test_start_flags_override_the_configured_policy(
    tmp_path: Path, mode: str | None, num: int | None, expected: GpuPolicy
) -> None:
    assert with_gpu_flags(_config(tmp_path), mode, num).gpu == expected


def test_gpu_num_alone_keeps_the_configured_mode(tmp_path: Path) -> None:
    config = _config(tmp_path, GpuPolicy("allowed", 0))
    assert with_gpu_flags(config, None, 1).gpu == GpuPolicy("allowed", 1)


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ([], "gpu:           off (CPU only), device 0"),
        (["--gpu"], "gpu:           when the researcher asks, device 0"),
        (["--gpu", "--gpu-num", "1"], "gpu:           when the researcher asks, device 1"),
        (["--gpu-only", "--gpu-num", "2"], "gpu:           always, device 2"),
    ],
)
def test_start_command_passes_its_gpu_flags_to_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], shown: str
) -> None:
    for name in ("NODE_ID", "FEDWARD_NODE_DIR", "ENABLE_TRAINING_PLAN_APPROVAL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "token").write_text("t" * 43)
    monkeypatch.setenv("FEDWARD_UPLOADS_TOKEN_FILE", str(tmp_path / "token"))
    result = CliRunner().invoke(
        cli,
        ["node", "--node-id", "n1", "--state-dir", str(tmp_path), "start", *flags, "--check"],
    )
    assert result.exit_code == 0, result.output
    assert shown in result.output
    assert "plan approval: required" in result.output


def test_start_command_gpu_num_reaches_a_configured_gpu_mode(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    (tmp_path / "token").write_text("t" * 43)
    config.write_text(
        f'node_id = "n1"\nstate_dir = "{tmp_path}"\n[gpu]\nmode = "only"\n'
        '[uploads]\ntoken_file = "token"\n'
    )
    result = CliRunner().invoke(
        cli, ["node", "start", "--config", str(config), "--gpu-num", "3", "--check"]
    )
    assert result.exit_code == 0, result.output
    assert "gpu:           always, device 3" in result.output
