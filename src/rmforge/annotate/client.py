"""Talking to a Label Studio server through ``label-studio-sdk``: connect, projects, tasks, export.

:func:`connect` checks ``/health`` and the token before anything else, so an unreachable
server or a wrong token is one clear error instead of an SDK traceback. Projects are found
by exact title; an existing project whose labelling config was generated for another kind
(or other attributes) is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rmforge.annotate.configs import ConfigSpec, build_config, config_kind
from rmforge.annotate.server import DEFAULT_DATA_DIR, LabelStudioError, read_connection

ENV_URL, ENV_TOKEN = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"


def resolve_connection(url: str | None, token: str | None, data_dir: str | os.PathLike = DEFAULT_DATA_DIR) -> tuple[str, str]:
    """URL and token from the options, else $LABEL_STUDIO_URL / $LABEL_STUDIO_API_KEY, else the
    connection saved by ``rmforge annotate server`` in ``data_dir``."""
    url, token = url or os.environ.get(ENV_URL), token or os.environ.get(ENV_TOKEN)
    saved = read_connection(data_dir) if not (url and token) else None
    if saved:
        url, token = url or saved.get("url"), token or saved.get("token")
    if not url or not token:
        raise LabelStudioError(f"no Label Studio server given: pass --url and --token (or set {ENV_URL} and "
                               f"{ENV_TOKEN}), or start one with 'rmforge annotate server' (saves {Path(data_dir)})")
    return url.rstrip("/"), token


def _api_error(exc: Exception, url: str, what: str) -> LabelStudioError:
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    detail = body.get("detail") if isinstance(body, dict) else body
    if status == 401:
        return LabelStudioError(f"Label Studio at {url} rejected the API token ({detail or 'HTTP 401'})")
    return LabelStudioError(f"Label Studio at {url}: {what} failed (HTTP {status}: {detail or exc})")


def connect(url: str, token: str, timeout: float = 60):
    """An SDK client after checking that the server answers and accepts the token."""
    import httpx

    try:
        health = httpx.get(f"{url}/health", timeout=10)
    except httpx.HTTPError as exc:
        raise LabelStudioError(f"cannot reach Label Studio at {url} ({type(exc).__name__}: {exc})") from None
    if health.status_code != 200:
        raise LabelStudioError(f"{url}/health answered HTTP {health.status_code}; is this a Label Studio server?")
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise LabelStudioError("label-studio-sdk is not installed: pip install 'rmforge[annotate]'") from None
    client = LabelStudio(base_url=url, api_key=token, timeout=timeout)
    client.rmforge_url = url
    call(client, "token check", client.users.whoami)
    return client


def call(client, what: str, fn, *args, **kwargs) -> Any:
    """Run an SDK call, turning API errors into :class:`LabelStudioError`."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        raise _api_error(exc, getattr(client, "rmforge_url", "?"), what) from None


def find_project(client, title: str):
    """The project with exactly this title, or None (several with the same title is an error)."""
    matches = [p for p in call(client, "listing projects", client.projects.list, title=title) if p.title == title]
    if len(matches) > 1:
        raise LabelStudioError(f"{len(matches)} projects are titled '{title}' (ids {[p.id for p in matches]}); rename one")
    return call(client, "reading the project", client.projects.get, id=matches[0].id) if matches else None


def project_spec(project, kind: str | None = None) -> ConfigSpec:
    """The rmforge spec of an existing project; errors if it is not rmforge's or not ``kind``."""
    spec = config_kind(project.label_config or "")
    if spec is None:
        raise LabelStudioError(f"project '{project.title}' (id {project.id}) does not use an rmforge labelling config")
    if kind is not None and spec.kind != kind:
        raise LabelStudioError(f"project '{project.title}' (id {project.id}) was created for --kind {spec.kind}, not {kind}")
    return spec


def ensure_project(client, title: str, spec: ConfigSpec, description: str = "") -> tuple[Any, bool]:
    """(project, created): reuse a matching project or create one with ``spec``'s config."""
    project = find_project(client, title)
    if project is not None:
        found = project_spec(project, spec.kind)
        if spec.kind == "pointwise" and (found.attributes, found.scale) != (spec.attributes, spec.scale):
            raise LabelStudioError(f"project '{title}' rates {list(found.attributes)} on {found.scale}, "
                                   f"the data needs {list(spec.attributes)} on {spec.scale}")
        if spec.kind == "ranking" and found.n_candidates != spec.n_candidates:
            raise LabelStudioError(f"project '{title}' ranks {found.n_candidates} responses, the data has {spec.n_candidates}")
        return project, False
    project = call(client, "creating the project", client.projects.create, title=title,
                   label_config=build_config(spec), description=description or f"rmforge {spec.kind} annotation")
    return project, True


def existing_ids(client, project_id: int) -> set[str]:
    """``rmforge_id`` of every task already in the project."""
    tasks = call(client, "listing tasks", client.tasks.list, project=project_id, fields="all", page_size=1000)
    return {t.data.get("rmforge_id") for t in tasks if t.data and t.data.get("rmforge_id") is not None}


def import_tasks(client, project_id: int, tasks: list[dict], batch: int = 1000) -> int:
    """Import tasks in batches; returns the number the server reports as created."""
    n = 0
    for start in range(0, len(tasks), batch):
        out = call(client, "importing tasks", client.projects.import_tasks, id=project_id,
                   request=tasks[start:start + batch], return_task_ids=True)
        n += out.task_count or 0
    return n


def export_tasks(client, project_id: int) -> list[dict]:
    """Every task of the project with its annotations (Label Studio's JSON export)."""
    return call(client, "exporting the project", client.projects.exports.as_json, project_id)


def user_emails(client) -> dict[int, str]:
    return {u.id: (u.email or u.username or str(u.id)) for u in call(client, "listing users", client.users.list)}


def push_samples(client, samples: list, title: str, kind: str, seed: int = 0, randomize: bool = True,
                 attributes: list[str] | None = None, scale: tuple[int, int] | None = None,
                 source: str | None = None) -> dict:
    """Create (or reuse) the project and import the samples not already in it."""
    from rmforge.annotate.tasks import build_tasks, infer_spec

    spec = infer_spec(kind, samples, attributes, scale)
    project, created = ensure_project(client, title, spec)
    present = set() if created else existing_ids(client, project.id)
    tasks, skipped = build_tasks(samples, kind, seed, randomize, present, source)
    imported = import_tasks(client, project.id, tasks) if tasks else 0
    return {"project": title, "project_id": project.id, "created": created, "imported": imported,
            "already_present": skipped, "url": f"{getattr(client, 'rmforge_url', '')}/projects/{project.id}"}
