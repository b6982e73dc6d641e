"""``rmforge eval``: score reward models on preference files and benchmarks (thin: load -> score -> print/save)."""

from __future__ import annotations

import typer
from rich.markup import escape

from rmforge.cli.common import console, err_console, run_guarded

app = typer.Typer(no_args_is_help=True, help="Evaluate reward models.")


@app.callback()
def _group() -> None:
    """Evaluate reward models: preference files, RewardBench 1/2, RM-Bench; compare two results."""


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
    length_policy: str = typer.Option(None, "--length-policy",
                                      help="truncate_prompt | truncate_response | drop (default: the run's, else "
                                           "truncate_prompt); truncate_response also cuts over-long responses"),
    fmt: str = typer.Option("canonical", "--format", help="converter name when DATA is not canonical"),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 autocast"),
    n_boot: int = typer.Option(1000, "--n-boot", min=1, help="bootstrap resamples for the intervals"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    limit: int = typer.Option(None, "--limit", min=1, help="evaluate only the first N samples"),
    report: str = typer.Option(None, "--report", help="write report.md/report.html and PNG plots to this folder"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file / --report folder"),
) -> None:
    """Accuracy on a preference file with Wilson/bootstrap CIs, per group, against length baselines."""

    def run() -> None:
        from rmforge.errors import ConfigError
        from rmforge.evaluate import evaluate_preference, load_data, load_scorer
        from rmforge.evaluate.preference import GROUP_KEYS

        if group_by not in GROUP_KEYS:
            raise ConfigError(f"--group-by must be one of {', '.join(GROUP_KEYS)}, not '{group_by}'")
        check_outputs(json_out, report, overwrite)
        samples = load_data(data, fmt, limit)
        opts = {"max_length": max_length, "batch_size": batch_size, "precision": precision,
                "length_policy": length_policy, "progress": True}
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
            _write_json(json_out, out, overwrite)
            err_console.print(f"result written to {escape(json_out)}")
        _write_report(report, result, overwrite)
        if base is not None:
            console.print(f"baseline {escape(base.summary())}", highlight=False, soft_wrap=True)
        console.print(escape(result.summary()), highlight=False, soft_wrap=True)

    run_guarded(run)


def check_outputs(json_out: str | None, report: str | None, overwrite: bool) -> None:
    """Refuse unusable output paths before any data is read or model loaded: an existing --json file
    without --overwrite, a --json path that is a folder, a non-empty --report folder without --overwrite
    (or one rmforge did not create), and a parent folder that cannot be created or written."""
    from rmforge.fileio import check_output, check_replaceable, writable_parent

    if json_out:
        check_output(json_out, overwrite)
    if report:
        writable_parent(check_replaceable(report, overwrite, "report folder"))


def _write_report(folder: str | None, result, overwrite: bool) -> None:
    if folder:
        from rmforge.evaluate.report import write_report

        write_report(result, folder, overwrite=overwrite)
        err_console.print(f"report written to {escape(folder)}/report.md (and report.html, PNG plots)")


def _benchmark_command(name: str, title: str, data_help: str) -> None:
    def command(
        model: str = typer.Argument(..., help="run directory, model folder, or embedded name (minilm-l6, ...)"),
        data: str = typer.Argument(None, help=data_help),
        json_out: str = typer.Option(None, "--json", help="write the result (with per-sample records) here"),
        report: str = typer.Option(None, "--report", help="write report.md/report.html and PNG plots here"),
        batch_size: int = typer.Option(32, "--batch-size", min=1, help="responses per forward pass"),
        max_length: int = typer.Option(None, "--max-length", min=2, help="token limit (default: the run's, else 512)"),
        length_policy: str = typer.Option(None, "--length-policy",
                                          help="truncate_prompt | truncate_response | drop (default: the run's, else "
                                               "truncate_prompt); truncate_response also cuts over-long responses"),
        fmt: str = typer.Option("auto", "--format",
                                help="auto (upstream layout or canonical rmforge samples), canonical, or a converter"),
        precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 autocast"),
        n_boot: int = typer.Option(1000, "--n-boot", min=1, help="bootstrap resamples for the intervals"),
        seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
        limit: int = typer.Option(None, "--limit", min=1, help="evaluate only the first N samples"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file / --report folder"),
    ) -> None:
        def run() -> None:
            from rmforge.evaluate import evaluate

            check_outputs(json_out, report, overwrite)
            result = evaluate(model, name, data, format=fmt, limit=limit, batch_size=batch_size,
                              max_length=max_length, precision=precision, n_boot=n_boot, seed=seed,
                              length_policy=length_policy, progress=True)
            console.print(result.table())
            if json_out:
                result.to_json(json_out, overwrite=overwrite)
                err_console.print(f"result written to {escape(json_out)}")
            _write_report(report, result, overwrite)
            console.print(escape(result.summary()), highlight=False, soft_wrap=True)

        run_guarded(run)

    command.__doc__ = f"{title}: official scoring rules, Wilson/bootstrap CIs, length and calibration diagnostics."
    app.command(name)(command)


_benchmark_command("rewardbench", "RewardBench 1",
                   "allenai/reward-bench 'filtered' split file (prompt, chosen, rejected, subset, id, ...); "
                   "default: the hub copy")
_benchmark_command("rewardbench2", "RewardBench 2",
                   "allenai/reward-bench-2 file (id, prompt, chosen [list], rejected [list], subset, ...); "
                   "default: the hub copy")
_benchmark_command("rm-bench", "RM-Bench",
                   "RM-Bench data folder or file (*_filtered.json per domain, or total_dataset.json)")


@app.command("compare")
def compare(
    result_a: str = typer.Argument(..., help="result JSON of model A (rmforge eval ... --json)"),
    result_b: str = typer.Argument(..., help="result JSON of model B, same benchmark"),
    json_out: str = typer.Option(None, "--json", help="write the comparison to this JSON file"),
    n_boot: int = typer.Option(1000, "--n-boot", min=1, help="bootstrap resamples"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file"),
) -> None:
    """Side-by-side figures of two results with the paired bootstrap difference B - A."""

    def run() -> None:
        from rmforge.evaluate.compare import compare_results

        check_outputs(json_out, None, overwrite)
        cmp = compare_results(result_a, result_b, n_boot=n_boot, seed=seed)
        console.print(cmp.table())
        if json_out:
            _write_json(json_out, cmp.to_dict(), overwrite)
            err_console.print(f"comparison written to {escape(json_out)}")

    run_guarded(run)


def _write_json(path: str, data: dict, overwrite: bool) -> None:
    import json

    from rmforge.fileio import atomic_text

    with atomic_text(path, overwrite=overwrite) as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


from rmforge.cli.eval_judge import register as _register_eval_judge  # noqa: E402

_register_eval_judge(app)
