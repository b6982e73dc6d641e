"""Registries of converters (upstream layout -> canonical samples) and loaders (sources of raw records).

Users add their own without editing rmforge, in any of three ways:

- call :func:`register_converter` / :func:`register_loader` in a module and name that module in
  a recipe's ``plugins:`` list or in the ``RMFORGE_PLUGINS`` environment variable (comma separated);
- or expose them through the ``rmforge.plugins`` entry-point group of an installed package
  (the entry point is a module, imported for its registrations).
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from rmforge.data.schema import Sample
from rmforge.errors import DataError, RmforgeError


@dataclass
class ConvertContext:
    """What a converter may use besides the record itself."""

    row: int
    """1-based row/line number of the record in its source (used for default ids)."""
    source: str | None = None
    """Name recorded in ``Sample.source`` (defaults to the converter name)."""
    fields: dict[str, str] = field(default_factory=dict)
    """Field mapping: canonical/expected field name -> column name in this source."""
    options: dict[str, Any] = field(default_factory=dict)
    """Converter-specific options (e.g. ``both_orders`` for helpsteer2-pairwise)."""
    file: str | None = None
    """Name of the source file (e.g. RM-Bench's per-domain files carry the domain only in their name)."""

    def get(self, record: dict, name: str, required: bool = True, default: Any = None) -> Any:
        """Field ``name`` of ``record`` through the mapping; FieldError when required and missing."""
        from rmforge.errors import FieldError

        column = self.fields.get(name, name)
        if column not in record or record[column] is None:
            if required:
                raise FieldError(column, "missing required field")
            return default
        return record[column]


ConvertFn = Callable[[dict, ConvertContext], "Sample | Iterable[Sample] | None"]
LoaderFn = Callable[..., Iterator[tuple[dict, int]]]


@dataclass
class Converter:
    name: str
    fn: ConvertFn
    description: str
    kind: str
    """What it produces: pair, nway or pointwise."""


CONVERTERS: dict[str, Converter] = {}
LOADERS: dict[str, LoaderFn] = {}


def register_converter(name: str, description: str = "", kind: str = "pair") -> Callable[[ConvertFn], ConvertFn]:
    """Decorator registering ``fn(record, ctx) -> Sample | list[Sample] | None`` under ``name``."""

    def wrap(fn: ConvertFn) -> ConvertFn:
        CONVERTERS[name] = Converter(name, fn, description or (fn.__doc__ or "").strip().split("\n")[0], kind)
        return fn

    return wrap


def register_loader(name: str) -> Callable[[LoaderFn], LoaderFn]:
    """Decorator registering a raw-record source ``fn(**options) -> iterator of (record, row)``."""

    def wrap(fn: LoaderFn) -> LoaderFn:
        LOADERS[name] = fn
        return fn

    return wrap


_loaded_plugins: set[str] = set()


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import built-in converters, entry-point plugins, RMFORGE_PLUGINS and ``modules``."""
    import rmforge.data.converters  # noqa: F401  (registers the built-ins)

    names = list(modules) + [m.strip() for m in os.environ.get("RMFORGE_PLUGINS", "").split(",") if m.strip()]
    if "entry-points" not in _loaded_plugins:
        _loaded_plugins.add("entry-points")
        from importlib.metadata import entry_points

        for ep in entry_points(group="rmforge.plugins"):
            ep.load()
    for name in names:
        if name in _loaded_plugins:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise RmforgeError(f"cannot import plugin module '{name}': {exc}") from None
        _loaded_plugins.add(name)


def lookup(table: dict, name: str, what: str):
    """``table[name]`` after loading plugins; a DataError with the closest name otherwise."""
    if name not in table:
        load_plugins()
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(f"unknown {what} '{name}' (known: {', '.join(sorted(table))}){hint}")
    return table[name]


def get_converter(name: str) -> Converter:
    return lookup(CONVERTERS, name, "converter")


def convert_records(records: Iterable[tuple[dict, int]], converter: str | Converter, *, file: str | None = None,
                    source: str | None = None, fields: dict[str, str] | None = None,
                    options: dict[str, Any] | None = None, row_kind: str = "line") -> Iterator[Sample]:
    """Run a converter over ``(record, row)`` pairs, locating every error by file, row and field."""
    from pydantic import ValidationError

    from rmforge.data.schema import first_error

    conv = get_converter(converter) if isinstance(converter, str) else converter
    for record, row in records:
        ctx = ConvertContext(row=row, source=source or conv.name, fields=dict(fields or {}), options=dict(options or {}),
                             file=file)
        try:
            out = conv.fn(record, ctx)
        except DataError as exc:
            raise exc.located(file=file, line=row, row_kind=row_kind) from None
        except ValidationError as exc:
            fld, msg = first_error(exc)
            found = _surrogate_in(record)  # name the source column, not the model's field
            if found is not None:
                fld, msg = found
            raise DataError(msg, file=file, line=row, field=fld, row_kind=row_kind) from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{conv.name} converter failed: {type(exc).__name__}: {exc}", file=file, line=row,
                            row_kind=row_kind) from None
        if out is None:
            continue
        if isinstance(out, Sample):
            yield out
        else:
            yield from out


def _surrogate_in(value: Any, path: str = "") -> tuple[str, str] | None:
    """(dotted path, reason) of the first string in a raw record holding a lone surrogate, else None."""
    from rmforge.data.schema import surrogate_error

    if isinstance(value, str):
        why = surrogate_error(value)
        return None if why is None else (path or "(record)", why)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _surrogate_in(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None
