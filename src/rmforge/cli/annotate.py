"""``rmforge annotate``: a local Label Studio server, push/pull of tasks, agreement statistics (issue 8)."""

from __future__ import annotations

import typer

from rmforge.cli.common import console, err_console, run_guarded

app = typer.Typer(no_args_is_help=True, help="Annotate with Label Studio: server, push, pull, agreement.")

_DATA_DIR_HELP = "Label Studio data directory (database, media, saved connection)"


def _url_opt():
    return typer.Option(None, "--url", help="Label Studio URL (else $LABEL_STUDIO_URL, else the saved local server)")


def _token_opt():
    return typer.Option(None, "--token", help="API token (else $LABEL_STUDIO_API_KEY, else the saved local server)")


def _data_dir_opt():
    from rmforge.annotate.server import DEFAULT_DATA_DIR

    return typer.Option(str(DEFAULT_DATA_DIR), "--data-dir", help=_DATA_DIR_HELP)


def _connect(url: str | None, token: str | None, data_dir: str):
    from rmforge.annotate.client import connect, resolve_connection

    return connect(*resolve_connection(url, token, data_dir))


@app.command("server")
def server(
    port: int = typer.Option(8080, "--port", help="port on 127.0.0.1"),
    data_dir: str = _data_dir_opt(),
    token: str = typer.Option(None, "--token", help="admin API token to create on first start (default: random)"),
    label_studio_bin: str = typer.Option(None, "--label-studio-bin",
                                         help="label-studio executable (else $RMFORGE_LABEL_STUDIO_BIN, PATH, "
                                              "~/.cache/rmforge/label-studio-venv)"),
    annotator: list[str] = typer.Option(None, "--annotator", help="extra user EMAIL=TOKEN to create (repeatable)"),
    timeout: float = typer.Option(300, "--timeout", help="seconds to wait for /health"),
) -> None:
    """Start a local Label Studio on 127.0.0.1 and keep it running until interrupted (Ctrl-C)."""

    def run() -> None:
        import secrets
        import signal
        import time
        from pathlib import Path

        from rmforge.annotate.server import (DATABASE_FILE, LocalServer, create_user, find_label_studio, prepare,
                                             write_connection)
        from rmforge.cli.common import parse_pairs

        exe = find_label_studio(label_studio_bin)
        users = {k: str(v) for k, v in parse_pairs(annotator, "--annotator").items()}
        first = not (Path(data_dir) / DATABASE_FILE).is_file()
        err_console.print(f"using {exe}; data in {data_dir}"
                          + (" (first start: migrating the database takes a minute or two)" if first else ""))
        # Ctrl-C and SIGTERM both stop Label Studio, even when this process was started with SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            info = prepare(exe, data_dir, token)
            for email, user_token in users.items():
                create_user(exe, data_dir, email, secrets.token_urlsafe(12), user_token)
            with LocalServer(exe, data_dir, port).start(timeout) as srv:
                write_connection(Path(data_dir).resolve(), info | {"url": srv.url})
                console.print(f"Label Studio ready at {srv.url}")
                console.print(f"token: {info['token']}")
                console.print(f"login: {info['email']} / {info['password']}")
                while srv.proc.poll() is None:
                    time.sleep(1)
        except KeyboardInterrupt:
            err_console.print("stopped Label Studio")
            return
        raise typer.Exit(srv.proc.returncode or 1)

    run_guarded(run)


@app.command("push")
def push(
    data: str = typer.Argument(..., help="canonical rmforge samples (.jsonl/.parquet)"),
    project: str = typer.Option(..., "--project", help="project title (created if missing)"),
    kind: str = typer.Option(..., "--kind", help="pairwise | pointwise | ranking"),
    url: str = _url_opt(), token: str = _token_opt(), data_dir: str = _data_dir_opt(),
    seed: int = typer.Option(0, "--seed", help="seed of the per-task A/B (response) order"),
    no_shuffle: bool = typer.Option(False, "--no-shuffle", help="show responses in their stored order"),
    attributes: str = typer.Option(None, "--attributes", help="pointwise: comma-separated attributes (default: the data's)"),
    scale: str = typer.Option(None, "--scale", help="pointwise: MIN,MAX integer scale (default: the data's, else 1,5)"),
) -> None:
    """Create the project and import DATA as tasks; samples already in the project are skipped."""

    def run() -> None:
        from rmforge.annotate.client import push_samples
        from rmforge.annotate.configs import KINDS
        from rmforge.data.io import load_samples
        from rmforge.errors import ConfigError

        if kind not in KINDS:
            raise ConfigError(f"--kind must be one of {', '.join(KINDS)} (got '{kind}')")
        lo_hi = None
        if scale:
            try:
                lo, hi = (int(v) for v in scale.split(","))
            except ValueError:
                raise ConfigError(f"--scale must be MIN,MAX integers (got '{scale}')") from None
            lo_hi = (lo, hi)
        samples = load_samples(data)
        client = _connect(url, token, data_dir)
        out = push_samples(client, samples, project, kind, seed, not no_shuffle,
                           attributes.split(",") if attributes else None, lo_hi, source=data)
        verb = "created" if out["created"] else "updated"
        console.print(f"{verb} project '{project}' (id {out['project_id']}): {out['imported']} tasks imported, "
                      f"{out['already_present']} already present; {out['url']}", soft_wrap=True)

    run_guarded(run)


@app.command("pull")
def pull(
    project: str = typer.Option(..., "--project", help="project title"),
    out: str = typer.Option(..., "--out", help="output samples (.jsonl/.parquet); replaced atomically"),
    kind: str = typer.Option(None, "--kind", help="expected kind (checked against the project's config)"),
    method: str = typer.Option("majority", "--method", help="aggregation: majority | dawid-skene"),
    tie_policy: str = typer.Option("tie", "--tie-policy", help="pairwise majority with a split vote: tie | drop"),
    url: str = _url_opt(), token: str = _token_opt(), data_dir: str = _data_dir_opt(),
) -> None:
    """Export the project's annotations into canonical samples (every annotator kept, one aggregated label)."""

    def run() -> None:
        from rmforge.annotate.pull import pull_project
        from rmforge.data.io import output_format, write_samples

        output_format(out)
        client = _connect(url, token, data_dir)
        samples, counts = pull_project(client, project, kind, method, tie_policy)
        write_samples(out, samples, overwrite=True)
        console.print(f"pulled {counts['written']} samples ({counts.get('annotations', 0)} annotations) -> {out}; "
                      f"tasks: {counts['tasks']}, without annotations: {counts.get('unannotated_tasks', 0)}, "
                      f"cancelled annotations: {counts.get('cancelled_annotations', 0)}, "
                      f"dropped split votes: {counts['dropped_ties']}"
                      + (f", tasks not pushed by rmforge: {counts['foreign_tasks']}" if counts.get("foreign_tasks") else ""),
                      soft_wrap=True)

    run_guarded(run)


@app.command("agreement")
def agreement(
    file: str = typer.Argument(..., help="samples written by 'rmforge annotate pull'"),
    json_path: str = typer.Option(None, "--json", help="also save the report as JSON here"),
    threshold: float = typer.Option(0.75, "--threshold", help="items below this agreement are listed for review"),
    show: int = typer.Option(20, "--show", help="low-agreement items to print"),
) -> None:
    """Cohen's and Fleiss' kappa, Krippendorff's alpha, percent agreement, position bias, items to review."""

    def run() -> None:
        import json

        from rmforge.annotate.agreement import agreement_report
        from rmforge.annotate.report import render
        from rmforge.data.io import load_samples
        from rmforge.errors import DataError
        from rmforge.fileio import atomic_text

        report = agreement_report(load_samples(file), threshold)
        if report["kind"] is None:
            raise DataError("no sample carries metadata.annotations; pull the file with 'rmforge annotate pull'",
                            file=file)
        render(report, console, show)
        if json_path:
            with atomic_text(json_path, overwrite=True) as fh:
                json.dump(report, fh, indent=2)
            console.print(f"report saved to {json_path}")

    run_guarded(run)
