"""``rmforge train``: reward-model trainers (thin: parse config -> build -> run -> save)."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, run_guarded

app = typer.Typer(no_args_is_help=True, help="Train reward models.")


def _split_args(recipe: str | None, overrides: list[str] | None) -> tuple[str | None, list[str]]:
    """The recipe is optional: a first argument containing '=' is an override."""
    overrides = list(overrides or [])
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        return None, [recipe] + overrides
    return recipe, overrides


def relaunch(launcher, argv: list[str]) -> bool:
    """Re-run this command under torchrun when launcher.nproc > 1 (and we are not already a worker)."""
    import os
    import subprocess
    import sys

    if launcher.nproc <= 1 and launcher.nnodes <= 1 or "LOCAL_RANK" in os.environ:
        return False
    check_nproc(launcher.nproc, _visible_gpus())
    port = launcher.master_port or _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={launcher.nproc}",
           f"--nnodes={launcher.nnodes}", f"--node_rank={launcher.node_rank}",
           f"--master_addr={launcher.master_addr}", f"--master_port={port}", "-m", "rmforge", *argv]
    from rich.markup import escape

    console.print(f"launching {launcher.nproc} processes: {escape(' '.join(cmd[2:]))}", highlight=False)
    code = subprocess.call(cmd)
    if code:
        raise typer.Exit(code)
    return True


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_nproc(nproc: int, gpus: int) -> None:
    """One process per GPU: more processes than visible GPUs is refused here, not left to a NCCL crash.
    Without GPUs the processes train on the CPU over gloo."""
    from rmforge.errors import ConfigError

    if gpus and nproc > gpus:
        raise ConfigError(f"launcher.nproc={nproc} but only {gpus} GPU(s) are visible: set launcher.nproc<={gpus}, "
                          "or hide the GPUs (CUDA_VISIBLE_DEVICES=) to run the processes on the CPU with gloo")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(kind: str, recipe: str | None, overrides: list[str] | None) -> None:
    from rmforge.config import load_config
    from rmforge.train.config import BTConfig, PointwiseConfig
    from rich.markup import escape

    from rmforge.train.selection import describe_saved
    from rmforge.train.trainer import train_bt

    path, extra = _split_args(recipe, overrides)
    cfg = load_config(path, extra, cls=BTConfig if kind == "bt" else PointwiseConfig)
    if relaunch(cfg.launcher, ["train", kind] + ([path] if path else []) + extra):
        return
    summary = train_bt(cfg, console=console)
    if "saved" in summary:  # the main process (DDP workers return a summary without it)
        console.print(escape(describe_saved(summary["saved"])), highlight=False, soft_wrap=True)
        console.print(f"model saved to {escape(str(cfg.output_dir))}", highlight=False, soft_wrap=True)


@app.command("bt", context_settings={"allow_extra_args": True})
def bt(recipe: str = typer.Argument(None, help="recipe YAML (kind: train-bt); optional"),
       overrides: list[str] = typer.Argument(None, help="dotted key=value overrides, e.g. train.lr=1e-5")) -> None:
    """Train a Bradley-Terry reward model (pairs, ties, N-way rankings)."""
    run_guarded(lambda: _train("bt", recipe, overrides))


@app.command("pointwise", context_settings={"allow_extra_args": True})
def pointwise(recipe: str = typer.Argument(None, help="recipe YAML (kind: train-pointwise); optional"),
              overrides: list[str] = typer.Argument(None, help="dotted key=value overrides")) -> None:
    """Train a scalar / multi-attribute score regression model (e.g. HelpSteer2's five 0-4 attributes)."""
    run_guarded(lambda: _train("pointwise", recipe, overrides))


from rmforge.cli.train_judge import register as _register_train_judge  # noqa: E402

_register_train_judge(app)
