"""``rmforge eval``: score reward models on preference data (thin: load -> score -> print/save)."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, err_console, run_guarded

app = typer.Typer(no_args_is_help=True, help="Evaluate reward models.")


@app.callback()
def _group() -> None:
    """Evaluate reward models (more benchmarks will join ``preference``)."""


@app.command("preference")
def preference(
    model: str = typer.Argument(..., help="run directory, model folder, or embedded name (minilm-l6, smollm2-135m)"),
    data: str = typer.Argument(..., help="preference file: canonical, or raw with --format"),
    json_out: str = typer.Option(None, "--json", help="write the result (with per-sample records) to this JSON file"),
    group_by: str = typer.Option("subset", "--group-by", help="per-group accuracy by: subset or category"),
    baseline: str = typer.Option(None, "--baseline",
                                 help="also score this model (e.g. the untrained base) on the same data"),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="responses per forward pass"),
    max_length: int = typer.Option(None, "--max-length", min=2,
                                   help="token limit (default: the run's, else 512)"),
    fmt: str = typer.Option("canonical", "--format", help="converter name when DATA is not canonical"),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 autocast"),
    n_boot: int = typer.Option(1000, "--n-boot", min=1, help="bootstrap resamples for the intervals"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    limit: int = typer.Option(None, "--limit", min=1, help="evaluate only the first N samples"),
) -> None:
    """Accuracy on a preference file with bootstrap CIs, per group, against length baselines."""

    def run() -> None:
        from rmforge.errors import ConfigError
        from rmforge.evaluate import evaluate_preference, load_data, load_scorer
        from rmforge.evaluate.preference import GROUP_KEYS

        if group_by not in GROUP_KEYS:
            raise ConfigError(f"--group-by must be one of {', '.join(GROUP_KEYS)}, not '{group_by}'")
        samples = load_data(data, fmt, limit)
        opts = {"max_length": max_length, "batch_size": batch_size, "precision": precision}
        stats = {"group_by": group_by, "n_boot": n_boot, "seed": seed, "data": data}
        base = None
        if baseline:
            base = evaluate_preference(load_scorer(baseline, **opts), samples, **stats)
            console.print(base.table(title=f"baseline: {baseline}"))
        result = evaluate_preference(load_scorer(model, **opts), samples, **stats)
        console.print(result.table())
        if json_out:
            out = result.to_dict()
            if base is not None:
                out["baseline"] = base.to_dict()
            _write_json(json_out, out)
            err_console.print(f"result written to {json_out}")
        if base is not None:
            console.print(f"baseline {base.summary()}", highlight=False)
        console.print(result.summary(), highlight=False)

    run_guarded(run)


def _write_json(path: str, data: dict) -> None:
    import json

    from rmforge.fileio import atomic_text

    with atomic_text(path, overwrite=True) as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


from rmforge.cli.eval_judge import register as _register_eval_judge  # noqa: E402

_register_eval_judge(app)
