"""The shipped Accelerate configs (configs/accelerate/*.yaml) pass Accelerate's own checks: its config
loader (unknown keys refused), ``accelerate launch``'s argument validation, the FSDP2 plugin built from
the environment ``accelerate launch`` would set, and DeepSpeed keys that DeepSpeedPlugin knows (the
plugin itself needs deepspeed installed, which this CPU image does not have)."""

import dataclasses
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "accelerate").glob("*.yaml"))


def _launch_args(path):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "rmforge", "train", "bt", "x.yaml"])
    return _validate_launch_command(args)[0]


def test_every_shipped_config_is_checked():
    assert {p.name for p in CONFIGS} == {"ddp_gpu.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_accepts_the_config(path):
    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16" and config.use_cpu is False
    args = _launch_args(path)
    kind = path.name.split("_")[0].split(".")[0]
    assert (args.use_fsdp, args.use_deepspeed, args.multi_gpu) == (kind == "fsdp", kind == "deepspeed", kind == "ddp")


def test_fsdp_config_builds_an_fsdp2_plugin(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    env = prepare_multi_gpu_env(_launch_args(next(p for p in CONFIGS if p.name == "fsdp.yaml")))
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.state_dict_type.name == "FULL_STATE_DICT" and plugin.cpu_ram_efficient_loading is True


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name.startswith("deepspeed")], ids=lambda p: p.name)
def test_deepspeed_keys_are_deepspeed_plugin_fields(path):
    from accelerate.utils import DeepSpeedPlugin

    keys = set(load_config_from_file(str(path)).deepspeed_config)
    fields = {f.name for f in dataclasses.fields(DeepSpeedPlugin)}
    assert keys <= fields, keys - fields
    assert load_config_from_file(str(path)).deepspeed_config["zero_stage"] == int(path.stem[-1])


def test_unknown_keys_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nfsdp_versoin: 2\n")
    with pytest.raises(ValueError, match=r"unknown keys \(\['fsdp_versoin'\]\)"):
        load_config_from_file(str(bad))
