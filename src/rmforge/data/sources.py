"""Where raw records come from: one config section for files, ``datasets`` folders, the hub and SQL.

:class:`SourceConfig` names exactly one origin: ``path`` (a local data file, a folder of data
files, or a folder written by ``datasets``' ``save_to_disk``), ``hf`` (a Hugging Face hub id, a
packaged builder such as ``json`` with local ``data_files``, or a local dataset folder) or
``sql_url`` (any SQLAlchemy database, with ``sql_table`` or ``sql_query``). A plugin can add its
own origin with :func:`~rmforge.data.registry.register_loader` and ``loader: <name>``.

:func:`open_records` returns a :class:`RecordStream` of raw ``(record, row)`` pairs and
:func:`load_source` runs the configured converter over it, yielding canonical samples. Everything
streams: memory does not depend on the size of the source. This module never imports torch.
"""

from __future__ import annotations

import difflib
import itertools
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import Field, model_validator

from rmforge.config import ConfigModel
from rmforge.data.records import FILE_FORMATS, iter_file
from rmforge.data.registry import LOADERS, convert_records, get_converter, load_plugins, lookup, register_loader
from rmforge.data.schema import Sample
from rmforge.errors import DataError
from rmforge.fileio import file_format

HUB_PROBE_TIMEOUT = 3.0
"""Seconds to wait for the hub host before declaring it unreachable."""


class SourceConfig(ConfigModel):
    """One source of raw records and how to convert them to canonical samples."""

    path: str | None = None
    """Local data file (.jsonl/.json/.parquet/.csv/.tsv, optionally .gz), a folder of such files
    (read in sorted order), or a folder written by ``datasets``' ``save_to_disk``."""
    hf: str | None = None
    """Hugging Face dataset: a hub id (``Anthropic/hh-rlhf``), a packaged builder used with
    ``data_files`` (``json``, ``parquet``, ``csv``) or a local dataset folder."""
    hf_config: str | None = None
    """Configuration (subset) name of the ``hf`` dataset."""
    hf_split: str = "train"
    """Split to read from ``hf`` or from a saved DatasetDict folder."""
    data_files: str | list[str] | None = None
    """Local files for ``hf`` packaged builders, e.g. ``hf: json`` with ``data_files: a.jsonl``."""
    sql_url: str | None = None
    """SQLAlchemy database URL, e.g. ``sqlite:///prefs.db`` or ``postgresql://user@host/db``."""
    sql_table: str | None = None
    """Table (or view) to read every row of; ``schema.table`` is accepted."""
    sql_query: str | None = None
    """SQL SELECT statement to read instead of a whole table."""
    file_format: str | None = None
    """Format of ``path`` (jsonl, json, parquet, csv) when the extension does not say it; for a
    folder, every non-hidden file is then read in this format."""
    loader: str | None = None
    """Registered loader to use instead of path/hf/sql_url (plugins); gets ``loader_options``
    as keyword arguments, plus ``path`` when set."""
    loader_options: dict[str, Any] = {}
    """Keyword arguments for a plugin ``loader``."""
    converter: str = "preference"
    """Registered converter turning raw records into samples (``rmforge data converters`` lists them)."""
    fields: dict[str, str] = {}
    """Field mapping: canonical/expected field name -> column name in this source."""
    options: dict[str, Any] = {}
    """Converter options (converter-specific)."""
    source_name: str | None = None
    """Value of ``Sample.source`` (defaults to the converter name)."""
    subset: str | None = None
    """``Sample.subset`` for samples whose converter left it empty."""
    split: str | None = None
    """``Sample.split`` for samples whose converter left it empty."""
    limit: int | None = Field(default=None, ge=0)
    """Stop after this many samples (converted samples, not raw records)."""
    streaming: bool = True
    """Stream ``hf`` datasets instead of downloading and caching them whole first."""
    batch_size: int = Field(default=4096, ge=1)
    """Rows per read batch (parquet, saved datasets, SQL fetchmany)."""

    @model_validator(mode="after")
    def _one_origin(self) -> "SourceConfig":
        given = [name for name in ("path", "hf", "sql_url") if getattr(self, name)]
        if self.loader:
            if self.hf or self.sql_url:
                raise ValueError("'loader' reads its own origin; remove 'hf'/'sql_url' (only 'path' is passed on)")
        elif len(given) != 1:
            found = f" (got {' and '.join(given)})" if given else ""
            raise ValueError(f"a source needs exactly one of 'path', 'hf' or 'sql_url'{found}")
        if self.sql_url and bool(self.sql_table) == bool(self.sql_query):
            raise ValueError("an SQL source needs exactly one of 'sql_table' or 'sql_query'")
        for name, needs in (("sql_table", "sql_url"), ("sql_query", "sql_url"), ("hf_config", "hf"),
                            ("data_files", "hf"), ("file_format", "path")):
            if getattr(self, name) and not getattr(self, needs):
                raise ValueError(f"'{name}' only applies together with '{needs}'")
        if self.file_format and self.file_format not in FILE_FORMATS:
            raise ValueError(f"file_format must be one of {', '.join(FILE_FORMATS)} (got '{self.file_format}')")
        return self


@dataclass
class RecordStream:
    """Raw records of one source and how to name their location in error messages."""

    records: Iterator[tuple[dict, int]]
    """``(record, row)`` pairs; rows are 1-based."""
    name: str
    """File path, hub id or ``<db url> table <t>``: the 'file' part of error messages."""
    row_kind: str = "row"
    """What a row number counts: ``line`` (jsonl, csv), ``item`` (json arrays) or ``row``."""


def open_records(cfg: SourceConfig) -> RecordStream:
    """Raw records of ``cfg``'s origin (lazy: nothing is read before iteration starts).

    For a folder of data files the files are chained and rows are numbered per file;
    :func:`load_source` converts them file by file so that errors name the right file.
    """
    streams = list(_streams(cfg))
    if len(streams) == 1:
        return streams[0]
    kinds = {s.row_kind for s in streams}
    return RecordStream(itertools.chain.from_iterable(s.records for s in streams), name=str(cfg.path),
                        row_kind=kinds.pop() if len(kinds) == 1 else "row")


def load_source(cfg: SourceConfig, plugins: Iterable[str] = ()) -> Iterator[Sample]:
    """Canonical samples of ``cfg``: open, convert, fill ``subset``/``split`` defaults, apply ``limit``.

    Plugins and the converter are resolved (and a missing path reported) right away; records
    are read lazily as the returned generator is consumed.
    """
    load_plugins(plugins)
    converter = get_converter(cfg.converter)
    streams = list(_streams(cfg))
    return _convert(cfg, converter, streams)


def _convert(cfg: SourceConfig, converter, streams: list[RecordStream]) -> Iterator[Sample]:
    if cfg.limit == 0:
        return
    n = 0
    for stream in streams:
        samples = convert_records(stream.records, converter, file=stream.name, source=cfg.source_name,
                                  fields=cfg.fields, options=cfg.options, row_kind=stream.row_kind)
        try:
            for sample in samples:
                if sample.subset is None and cfg.subset is not None:
                    sample.subset = cfg.subset
                if sample.split is None and cfg.split is not None:
                    sample.split = cfg.split
                yield sample
                n += 1
                if cfg.limit is not None and n >= cfg.limit:
                    return
        finally:  # close files / connections now, also when stopped early
            samples.close()
            close = getattr(stream.records, "close", None)
            if close is not None:
                close()


def _streams(cfg: SourceConfig) -> Iterator[RecordStream]:
    if cfg.loader:
        fn = _loader(cfg.loader)
        kwargs = dict(cfg.loader_options)
        if cfg.path:
            kwargs.setdefault("path", cfg.path)
        yield RecordStream(iter(fn(**kwargs)), name=cfg.path or f"loader '{cfg.loader}'", row_kind="row")
    elif cfg.path:
        path = os.path.expanduser(cfg.path)
        if not os.path.exists(path):
            raise DataError("file or folder not found", file=path)
        if os.path.isdir(path) and is_saved_dataset(path):
            is_dict = os.path.isfile(os.path.join(path, "dataset_dict.json"))
            name = f"{path} split {cfg.hf_split}" if is_dict else path
            yield RecordStream(_loader("hf-disk")(path=path, split=cfg.hf_split, batch_size=cfg.batch_size),
                               name=name, row_kind="row")
        elif os.path.isdir(path):
            for file in data_files_in(path, cfg.file_format):
                yield _file_stream(file, cfg.file_format, cfg.batch_size)
        else:
            yield _file_stream(path, cfg.file_format, cfg.batch_size)
    elif cfg.hf:
        if looks_like_path(cfg.hf) and not os.path.exists(os.path.expanduser(cfg.hf)):
            raise DataError("file not found (it looks like a local path, so it was not looked up as a "
                            "Hugging Face dataset id)", file=cfg.hf)
        name = cfg.hf + (f" ({cfg.hf_config})" if cfg.hf_config else "") + f" split {cfg.hf_split}"
        records = _loader("hf-hub")(name=cfg.hf, config=cfg.hf_config, split=cfg.hf_split, data_files=cfg.data_files,
                                    streaming=cfg.streaming, batch_size=cfg.batch_size)
        yield RecordStream(records, name=name, row_kind="row")
    else:
        shown = _shown_url(cfg.sql_url)
        name = f"{shown} table {cfg.sql_table}" if cfg.sql_table else f"{shown} query"
        records = _loader("sql")(url=cfg.sql_url, table=cfg.sql_table, query=cfg.sql_query, batch_size=cfg.batch_size)
        yield RecordStream(records, name=name, row_kind="row")


_PATH_SUFFIXES = tuple(f".{ext}" for ext in ("jsonl", "ndjson", "json", "parquet", "pq", "csv", "tsv", "gz",
                                                "arrow", "txt", "yaml", "yml"))


def looks_like_path(name: str) -> bool:
    """Whether a source string is meant as a local path rather than a hub id (``org/name``).

    True for absolute, home (``~``) and ``./``/``../`` paths, Windows separators, more than one ``/``,
    a data-file extension, or a first component that is an existing local folder.
    """
    if name.startswith(("/", "~", "./", "../", ".\\", "..\\")) or "\\" in name or name.count("/") > 1:
        return True
    if name.lower().endswith(_PATH_SUFFIXES):
        return True
    head, sep, _ = name.partition("/")
    return bool(sep) and os.path.isdir(os.path.expanduser(head))


def _file_stream(path: str, fmt: str | None, batch_size: int) -> RecordStream:
    fmt = fmt or file_format(path)
    kind = {"jsonl": "line", "csv": "line", "json": "item"}.get(fmt, "row")
    return RecordStream(_loader("file")(path=path, fmt=fmt, batch_size=batch_size), name=path, row_kind=kind)


def _loader(name: str):
    return lookup(LOADERS, name, "loader")


def is_saved_dataset(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    folder = Path(folder)
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file())


def data_files_in(folder: str | os.PathLike, fmt: str | None = None) -> list[str]:
    """Data files under ``folder`` (recursive, sorted, hidden names skipped); all files when ``fmt`` is given."""
    files = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder).parts
        if p.is_file() and not any(part.startswith(".") for part in rel) and (fmt or file_format(p) in FILE_FORMATS):
            files.append(str(p))
    if not files:
        raise DataError(f"no data files in this folder (expected {', '.join(FILE_FORMATS)}, optionally .gz)",
                        file=str(folder))
    return files


# ---------------------------------------------------------------- built-in loaders
# Looked up by name at every use, so a plugin may replace one (same keyword arguments).

register_loader("file")(iter_file)


@register_loader("hf-disk")
def iter_saved_dataset(path: str, split: str = "train", batch_size: int = 4096) -> Iterator[tuple[dict, int]]:
    """Rows of a ``save_to_disk`` folder, read in memory-mapped Arrow batches (never loaded whole)."""
    import datasets

    try:
        ds = datasets.load_from_disk(path)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(f"cannot read the saved dataset: {exc}", file=path) from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"split '{split}' not found (available splits: {', '.join(ds)}); set hf_split",
                            file=path)
        ds = ds[split]
    yield from _arrow_rows(ds.with_format("arrow").iter(batch_size=batch_size))


@register_loader("hf-hub")
def iter_hf_dataset(name: str, config: str | None = None, split: str = "train",
                    data_files: str | list[str] | None = None, streaming: bool = True,
                    batch_size: int = 4096) -> Iterator[tuple[dict, int]]:
    """Rows of ``datasets.load_dataset(name, config, split=..., streaming=...)``.

    For a hub id the hub host is probed first (a few seconds at most), so that an offline
    machine gets a clear error instead of minutes of retries.
    """
    import datasets
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    local = name in _PACKAGED_DATASETS_MODULES or os.path.exists(os.path.expanduser(name))
    offline = _hub_offline_mode()
    if not local and not offline:
        problem = hub_unreachable()
        if problem:
            raise DataError(_offline_message(name, f"the Hugging Face hub is unreachable ({problem})"))
    try:
        ds = datasets.load_dataset(name, config, split=split, data_files=data_files, streaming=streaming)
    except ConnectionError as exc:  # also huggingface_hub's OfflineModeIsEnabled
        reason = "offline mode is on (HF_HUB_OFFLINE) and it is not in the local cache" if offline \
            else f"the Hugging Face hub is unreachable ({exc})"
        raise DataError(_offline_message(name, reason)) from None
    except FileNotFoundError as exc:  # DatasetNotFoundError, DataFilesNotFoundError, missing data_files
        raise DataError(f"cannot load Hugging Face dataset '{name}': {exc}") from None
    except ValueError as exc:  # unknown split or config
        raise DataError(f"cannot load Hugging Face dataset '{name}': {exc}") from None
    if isinstance(ds, datasets.Dataset):
        yield from _arrow_rows(ds.with_format("arrow").iter(batch_size=batch_size))
        return
    row = 0
    try:
        for row, record in enumerate(ds, start=1):
            yield dict(record), row
    except ConnectionError as exc:
        raise DataError(f"connection lost while streaming '{name}' after row {row}: {exc}") from None


def _arrow_rows(tables: Iterable[Any]) -> Iterator[tuple[dict, int]]:
    row = 0
    for table in tables:
        for record in table.to_pylist():
            row += 1
            yield record, row


def _hub_offline_mode() -> bool:
    """Whether the HF libraries themselves run offline (set before they were imported)."""
    from huggingface_hub import constants

    import datasets.config

    return bool(constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE)


def hub_unreachable(timeout: float | None = None) -> str | None:
    """None when the hub endpoint answers within ``timeout`` seconds, else why not.

    Any HTTP answer counts as reachable; proxies from the environment are honoured. The probe
    runs in a daemon thread so that slow DNS cannot hold the caller longer than ``timeout + 1`` s.
    """
    from huggingface_hub import constants

    timeout = HUB_PROBE_TIMEOUT if timeout is None else timeout
    endpoint = constants.ENDPOINT
    outcome: dict[str, BaseException] = {}

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
        except urllib.error.HTTPError:
            pass
        except urllib.error.URLError as exc:
            if "CERTIFICATE" not in str(exc.reason).upper():  # TLS trouble: it answered; let datasets decide
                outcome["error"] = exc
        except Exception as exc:  # socket timeouts, resets
            outcome["error"] = exc

    thread = threading.Thread(target=probe, name="rmforge-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    if thread.is_alive():
        return f"no answer from {endpoint} within {timeout:g} s"
    if "error" in outcome:
        exc = outcome["error"]
        return f"{endpoint}: {getattr(exc, 'reason', None) or exc}"
    return None


def _offline_message(name: str, reason: str) -> str:
    return (f"cannot load Hugging Face dataset '{name}': {reason}. To use it without the hub, download the "
            f"dataset's files on a machine with network (e.g. `hf download {name} --repo-type dataset "
            f"--local-dir DIR`), copy them here and point `path` at them (a data file, a folder of data files "
            f"or a save_to_disk folder)")


@register_loader("sql")
def iter_sql(url: str, table: str | None = None, query: str | None = None,
             batch_size: int = 4096) -> Iterator[tuple[dict, int]]:
    """Rows of a table or query, streamed with a server-side cursor and ``fetchmany(batch_size)``."""
    import sqlalchemy as sa

    shown = _shown_url(url)
    where = f"{shown} table {table}" if table else f"{shown} query"
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise DataError(f"cannot open database URL '{shown}': {exc}") from None
    db = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and db and db != ":memory:" and not db.startswith("file:") \
            and not os.path.exists(db):
        engine.dispose()
        raise DataError("SQLite database file not found", file=db)
    try:
        with engine.connect() as conn:
            if table:
                stmt = _table_select(sa, conn, table, shown)
            else:
                stmt = sa.text(query)
            result = conn.execution_options(stream_results=True).execute(stmt)
            row = 0
            while True:
                rows = result.fetchmany(batch_size)
                if not rows:
                    break
                for r in rows:
                    row += 1
                    yield dict(r._mapping), row
    except sa.exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise DataError(f"SQL error: {detail}", file=where) from None
    finally:
        engine.dispose()


def _table_select(sa, conn, table: str, shown: str):
    schema, _, name = table.rpartition(".")
    schema = schema or None
    inspector = sa.inspect(conn)
    if inspector.has_table(name, schema=schema) or name in inspector.get_view_names(schema=schema):
        return sa.select(sa.text("*")).select_from(sa.table(name, schema=schema))
    known = sorted(inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise DataError(f"no table '{table}' in the database (available tables: {', '.join(known) or 'none'}){hint}",
                    file=shown)


def _shown_url(url: str) -> str:
    """The URL with any password masked (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
