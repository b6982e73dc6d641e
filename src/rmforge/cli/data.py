"""``rmforge data``: convert, validate, export and build datasets."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, escape, parse_pairs, probe_writable, run_guarded

app = typer.Typer(no_args_is_help=True, help="Load, convert, validate, process and export reward data.")


@app.command("convert")
def convert(
    fmt: str = typer.Option(..., "--from", help="converter: hh-rlhf, helpsteer2-pointwise, helpsteer2-pairwise, "
                            "ultrafeedback, rewardbench, rewardbench2, rm-bench, judgebench, preference, pointwise"),
    input: str = typer.Argument(..., help="input file (jsonl/json/parquet/csv, .gz ok) or datasets folder"),
    output: str = typer.Argument(..., help="output file: .jsonl, .jsonl.gz or .parquet"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUTPUT if it exists"),
    field: list[str] = typer.Option(None, "--field", help="field mapping NAME=COLUMN (repeatable)"),
    option: list[str] = typer.Option(None, "--option", help="converter option KEY=VALUE (repeatable)"),
    plugin: list[str] = typer.Option(None, "--plugin", help="module registering extra converters/loaders"),
) -> None:
    """Convert an upstream dataset file to canonical rmforge samples."""

    def run() -> None:
        from rmforge.data.io import output_format, write_samples
        from rmforge.data.sources import SourceConfig, load_source
        from rmforge.fileio import check_output

        output_format(output)
        check_output(output, overwrite)
        probe_writable(output)
        cfg = SourceConfig(path=input, converter=fmt, fields=parse_pairs(field, "--field"),
                           options=parse_pairs(option, "--option"))
        counter = _Counter()
        n = write_samples(output, counter.wrap(load_source(cfg, plugins=plugin or [])), overwrite=overwrite)
        console.print(escape(f"converted {n} samples ({counter.describe()}) from {input} -> {output}"), soft_wrap=True)
        if counter.mismatch:
            console.print(f"[yellow]warning:[/] {counter.mismatch} pairs differ before the last turn "
                          "(metadata.prefix_mismatch; the chosen transcript's context is used as the prompt)")
        if counter.empty:
            console.print(f"[yellow]warning:[/] {counter.empty} samples have an empty response "
                          f"(first: {escape(', '.join(counter.empty_ids))}); `rmforge data validate` reports "
                          "them as errors, a recipe's `filter` step with drop_empty: true removes them")

    run_guarded(run)


@app.command("validate")
def validate(
    file: str = typer.Argument(..., help="canonical samples (.jsonl/.parquet)"),
    json_path: str = typer.Option(None, "--json", help="also save the report as JSON here"),
) -> None:
    """Check a canonical file: counts, lengths, empty/identical texts, scales, duplicates, leaks, contradictions.

    Exit status 0 when the report holds no error (warnings allowed), 1 otherwise.
    """

    def run() -> None:
        from rmforge.data.io import read_samples
        from rmforge.data.validate import validate_samples
        from rmforge.fileio import check_output

        if json_path:
            check_output(json_path, overwrite=True)  # before reading: a bad path fails fast, nothing printed
            probe_writable(json_path)
        report = validate_samples(read_samples(file))
        report.render(console)
        if json_path:
            report.to_json(json_path)
            console.print(escape(f"report saved to {json_path}"), soft_wrap=True)
        if not report.ok:
            raise typer.Exit(1)

    run_guarded(run)


@app.command("export")
def export(
    to: str = typer.Option(..., "--to", help="bt, sft, pointwise, pairwise or verl"),
    input: str = typer.Argument(..., help="canonical samples (.jsonl/.parquet)"),
    output: str = typer.Argument(..., help="output file (.jsonl or .parquet)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUTPUT if it exists"),
    option: list[str] = typer.Option(None, "--option", help="exporter option KEY=VALUE (repeatable)"),
) -> None:
    """Write the training file for one approach (Bradley-Terry, SFT, generative judges, verl)."""

    def run() -> None:
        from rmforge.data.export import export_samples
        from rmforge.data.io import output_format, read_samples
        from rmforge.fileio import check_output

        output_format(output)
        check_output(output, overwrite)
        probe_writable(output)
        report = export_samples(read_samples(input), to, output, overwrite=overwrite,
                                options=parse_pairs(option, "--option"))
        skipped = ", ".join(f"{k}: {v}" for k, v in report.skipped.items()) or "none"
        console.print(escape(f"wrote {report.rows_written} {to} rows to {output} (skipped: {skipped})"), soft_wrap=True)

    run_guarded(run)


@app.command("build", context_settings={"allow_extra_args": True})
def build(
    recipe: str = typer.Argument(..., help="data recipe YAML (kind: data)"),
    overrides: list[str] = typer.Argument(None, help="dotted key=value overrides"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the output folder if it exists"),
) -> None:
    """Run a recipe: load -> process -> split -> validate -> export, and print a summary."""

    def run() -> None:
        from rmforge.config import load_config
        from rmforge.data.recipe import DataRecipe, build_dataset

        from rmforge.fileio import check_replaceable

        cfg = load_config(recipe, overrides or [], cls=DataRecipe)
        check_replaceable(cfg.output_dir, overwrite, "dataset folder")
        probe_writable(cfg.output_dir)
        build_dataset(cfg, overwrite=overwrite, console=console)
        _warn_empty_responses(cfg.output_dir)

    run_guarded(run)


@app.command("converters")
def converters() -> None:
    """List the registered converters (built-in and plugins)."""
    from rich.table import Table

    from rmforge.data.registry import CONVERTERS, load_plugins

    load_plugins()
    table = Table("name", "produces", "description")
    for c in sorted(CONVERTERS.values(), key=lambda c: c.name):
        table.add_row(c.name, c.kind, c.description)
    console.print(table)


def _warn_empty_responses(output_dir: str) -> None:
    """A build that kept samples with empty responses (validate.fail_on_error: false) says so in its summary."""
    import json
    from pathlib import Path

    try:
        report = json.loads((Path(output_dir) / "validation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    issue = next((i for i in report.get("issues", []) if i.get("code") == "empty_response"), None)
    if issue:
        console.print(f"[yellow]warning:[/] {issue['count']} samples have an empty response "
                      f"(first: {escape(', '.join(issue.get('examples', [])[:3]))}); add a filter step with "
                      "drop_empty: true to remove them")


class _Counter:
    """Counts samples by kind while they stream to the writer."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.mismatch = 0
        self.empty = 0
        self.empty_ids: list[str] = []

    def wrap(self, samples):
        from rmforge.data.schema import text

        for s in samples:
            self.kinds[s.kind] = self.kinds.get(s.kind, 0) + 1
            self.mismatch += bool(s.metadata.get("prefix_mismatch"))
            if any(not text(r).strip() for r in s.responses()):
                self.empty += 1
                if len(self.empty_ids) < 3:
                    self.empty_ids.append(s.id)
            yield s

    def describe(self) -> str:
        return ", ".join(f"{v} {k}" for k, v in sorted(self.kinds.items())) or "none"
