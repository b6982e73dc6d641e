"""Typed configuration: pydantic models whose attribute docstrings document every option.

A recipe is a YAML file whose top-level ``kind`` names its config class (``data``,
later ``train-bt`` ...). Command-line overrides use dotted keys (``split.seed=7``,
``process.0.max_length=256``); values are parsed as YAML scalars. Unknown keys fail with
the closest valid name.
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rmforge.errors import ConfigError

T = TypeVar("T", bound=BaseModel)
CONFIG_KINDS: dict[str, type["ConfigModel"]] = {}
BUILTIN_CONFIG_MODULES = ("rmforge.data.recipe", "rmforge.train.config", "rmforge.quickstart", "rmforge.train.judge_config")
"""Modules whose import registers the built-in recipe kinds (imported lazily by load_config)."""


class ConfigModel(BaseModel):
    """Base of every config section: strict keys, attribute docstrings as descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = set(cls.model_fields)
            valid |= {f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                if key not in valid:
                    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.5)
                    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"
                    raise ValueError(f"unknown key '{key}'; {hint}")
        return data


def register_config(kind: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make ``kind:`` in a YAML file resolve to this config class."""

    def wrap(cls: type[T]) -> type[T]:
        CONFIG_KINDS[kind] = cls
        return cls

    return wrap


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """``["a.b=1", "c=[x, y]"]`` -> ``[(["a", "b"], 1), (["c"], ["x", "y"])]``."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}' has an empty key part")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.split("."), value))
    return parsed


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set dotted keys in a raw (pre-validation) config dict; list items by index."""
    for path, value in parse_overrides(overrides):
        node: Any = data
        for i, part in enumerate(path[:-1]):
            node = _child(node, part, path[: i + 1], create=True)
        last = path[-1]
        if isinstance(node, list):
            idx = _index(node, last, path)
            node[idx] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override key '{'.'.join(path)}': '{'.'.join(path[:-1])}' is a "
                              f"{_yaml_type(node)}, not a section")
    return data


def _index(node: list, part: str, path: list[str]) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"override key '{'.'.join(path)}': '{part}' is not an index of a list of {len(node)}")
    return int(part)


def _child(node: Any, part: str, path: list[str], create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"override key '{'.'.join(path)}': '{'.'.join(path[:-1])}' is a "
                          f"{_yaml_type(node)}, not a section")
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


def _yaml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "number", float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from ``path``; every problem is one ConfigError line naming the file (and line)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: invalid UTF-8 at byte {exc.start} (line {line})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}{_yaml_where(exc)}: invalid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: context and problem, without the source excerpt."""
    parts = [getattr(exc, "problem", None), getattr(exc, "context", None)]
    text = "; ".join(p for p in parts if p) or str(exc)
    return " ".join(text.split())


def _factory_defaults(cls: type[BaseModel], data: dict) -> dict:
    """``data`` with the values a section's ``default_factory`` sets explicitly filled in under the
    keys the user gave: overriding one key of a section whose factory customises it (e.g. the
    quickstart's ``train`` with batch 16) must not reset the section's other keys to the class defaults."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, field in cls.model_fields.items():
        key = field.alias or name
        given = out.get(key)
        if not isinstance(given, dict):
            continue
        ann = field.annotation
        if field.default_factory is not None:
            made = field.default_factory()
            if isinstance(made, BaseModel):
                given = {**made.model_dump(exclude_unset=True, by_alias=True), **given}
                ann = type(made)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            given = _factory_defaults(ann, given)
        out[key] = given
    return out


def build_config(cls: type[T], data: dict, source: str = "config") -> T:
    """Validate a raw dict into ``cls``, turning pydantic errors into one readable ConfigError."""
    try:
        return cls.model_validate(_factory_defaults(cls, data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key '{err['loc'][-1]}'"
            lines.append(f"{loc}: {msg}")
        more = f" (and {len(lines) - 1} more: {'; '.join(lines[1:])})" if len(lines) > 1 else ""
        raise ConfigError(f"{source}: {lines[0]}{more}") from None


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None,
                cls: type[T] | None = None) -> T:
    """Load a YAML recipe (optional), apply overrides, validate as ``cls`` or by its ``kind``."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    if cls is None:
        _import_builtin_kinds()
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in CONFIG_KINDS:
            known = ", ".join(sorted(CONFIG_KINDS))
            close = difflib.get_close_matches(str(kind), list(CONFIG_KINDS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{path}: 'kind' must be one of {known} (got {kind!r}){hint}")
        cls = CONFIG_KINDS[kind]
    else:
        _check_kind(cls, data.get("kind"), path)
    return build_config(cls, data, source=str(path) if path else "overrides")


def _import_builtin_kinds() -> None:
    import importlib

    for module in BUILTIN_CONFIG_MODULES:
        importlib.import_module(module)


def _check_kind(cls: type[BaseModel], kind: Any, path: str | os.PathLike | None) -> None:
    """A recipe of another registered kind given to a command that reads ``cls``: say so in one line."""
    expected = [k for k, c in CONFIG_KINDS.items() if c is cls]
    if not expected or not isinstance(kind, str) or kind in expected:
        return
    _import_builtin_kinds()
    if kind in CONFIG_KINDS:
        raise ConfigError(f"{path or 'overrides'}: this is a 'kind: {kind}' recipe; this command reads "
                          f"'kind: {expected[0]}' recipes")


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML (every option, defaults included)."""
    return yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False, allow_unicode=True)


def describe(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, type, docstring) for every option, recursing into sections."""
    rows = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        key = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe(ann, key + "."))
        else:
            rows.append((key, getattr(ann, "__name__", str(ann)).replace("typing.", ""), field.description or ""))
    return rows
