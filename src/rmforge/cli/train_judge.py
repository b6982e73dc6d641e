"""``rmforge train sft`` and ``rmforge train judge`` (registered onto ``rmforge train``; thin: parse -> run -> report)."""

from __future__ import annotations

import typer
from rich.markup import escape

from rmforge.cli.common import console, run_guarded


def _sft(recipe: str | None, overrides: list[str] | None) -> None:
    from rmforge.cli.train import _split_args
    from rmforge.config import load_config
    from rmforge.train.judge_config import SFTConfig
    from rmforge.train.sft import train_sft

    path, extra = _split_args(recipe, overrides)
    cfg = load_config(path, extra, cls=SFTConfig)
    summary = train_sft(cfg, console=console)
    console.print(f"training loss {summary['first_logged_loss']:.4f} -> {summary['last_logged_loss']:.4f}")
    if "validation" in summary:
        console.print(f"validation loss (assistant tokens): {summary['validation']['loss']:.4f}")
    console.print(f"model saved to {escape(str(cfg.output_dir))}", highlight=False, soft_wrap=True)


def _judge(recipe: str | None, overrides: list[str] | None) -> None:
    from rmforge.cli.train import _split_args
    from rmforge.config import load_config
    from rmforge.train.judge import train_judge
    from rmforge.train.judge_config import JudgeConfig

    path, extra = _split_args(recipe, overrides)
    cfg = load_config(path, extra, cls=JudgeConfig)
    summary = train_judge(cfg, console=console)
    if cfg.backend == "verl":
        if cfg.check:
            console.print(escape(f"verl job in {summary['output_dir']} is valid: config composes and validates "
                                 f"({summary['overrides']} overrides), reward function {summary['reward_function']} "
                                 "loads"), highlight=False, soft_wrap=True)
        else:
            console.print(escape(f"verl job written to {summary['output_dir']} ({summary['train_rows']} training "
                                 f"prompts): run {summary['output_dir']}/launch.sh on a GPU node"),
                          highlight=False, soft_wrap=True)
        return
    val = summary.get("validation") or {}
    if val:
        main = f"accuracy {val['accuracy']:.4f}" + (f", MAE {val['mae']:.4f}" if "mae" in val else "")
        console.print(f"validation: {main}, parse failures {val['parse_failure_rate']:.4f}")
    console.print(f"model saved to {escape(str(cfg.output_dir))}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the generative-judge commands to the ``train`` group."""

    @app.command("sft", context_settings={"allow_extra_args": True})
    def sft(recipe: str = typer.Argument(None, help="recipe YAML (kind: train-sft); optional"),
            overrides: list[str] = typer.Argument(None, help="dotted key=value overrides, e.g. train.lr=1e-5")) -> None:
        """Supervised fine-tuning on conversations (loss on assistant tokens only), e.g. judge warm-start."""
        run_guarded(lambda: _sft(recipe, overrides))

    @app.command("judge", context_settings={"allow_extra_args": True})
    def judge(recipe: str = typer.Argument(None, help="recipe YAML (kind: train-judge); optional"),
              overrides: list[str] = typer.Argument(
                  None, help="key=value overrides: mode=pointwise|pairwise backend=local|verl check=true ...")) -> None:
        """GRPO training of a generative judge (local with TRL, or a verl job for GPU clusters)."""
        run_guarded(lambda: _judge(recipe, overrides))
