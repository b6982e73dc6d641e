"""SourceConfig validation, local files and folders through load_source, error locations, plugins."""

from __future__ import annotations

import csv
import gzip
import json
import sys
import textwrap
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmforge.data import registry
from rmforge.data.registry import register_converter
from rmforge.data.schema import Sample, assistant, user
from rmforge.data.sources import RecordStream, SourceConfig, load_source, open_records
from rmforge.errors import ConfigError, DataError
from rmforge.config import build_config


@register_converter("test-src-pairs", kind="pair")
def _pairs(rec, ctx):
    """Minimal chosen/rejected(/prompt) converter for these tests."""
    prompt = ctx.get(rec, "prompt", required=False)
    if rec.get("skip"):
        return None
    return Sample(id=str(rec.get("id") or f"row{ctx.row}"), prompt=[user(prompt)] if prompt else [],
                  chosen=[assistant(str(ctx.get(rec, "chosen")))], rejected=[assistant(str(ctx.get(rec, "rejected")))],
                  source=ctx.source)


ROWS = [{"id": f"s{i}", "prompt": f"question {i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(1, 8)]


def write(path, rows=ROWS, fmt=None):
    """Write ``rows`` in the format named by ``path`` (gzip when it ends in .gz)."""
    name = str(path)
    fmt = fmt or name.removesuffix(".gz").rsplit(".", 1)[-1]
    opener = gzip.open if name.endswith(".gz") else open
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "csv":
        with opener(path, "wt", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif fmt == "json":
        with opener(path, "wt", encoding="utf-8") as fh:
            json.dump(rows, fh)
    else:
        with opener(path, "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def load(**kw) -> list[Sample]:
    return list(load_source(SourceConfig(converter="test-src-pairs", **kw)))


# ---------------------------------------------------------------- config validation

@pytest.mark.parametrize("data, message", [
    ({}, "exactly one of 'path', 'hf' or 'sql_url'"),
    ({"path": "a.jsonl", "hf": "x/y"}, "got path and hf"),
    ({"sql_url": "sqlite:///a.db"}, "exactly one of 'sql_table' or 'sql_query'"),
    ({"sql_url": "sqlite:///a.db", "sql_table": "t", "sql_query": "select 1"}, "exactly one of 'sql_table'"),
    ({"path": "a.jsonl", "sql_table": "t"}, "'sql_table' only applies together with 'sql_url'"),
    ({"path": "a.jsonl", "data_files": "b.json"}, "'data_files' only applies together with 'hf'"),
    ({"path": "a.txt", "file_format": "xml"}, "file_format must be one of"),
    ({"path": "a.jsonl", "limt": 3}, "did you mean 'limit'"),
    ({"path": "a.jsonl", "batch_size": 0}, "batch_size"),
])
def test_config_errors(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(SourceConfig, data, source="recipe.yaml")


def test_config_documents_every_field():
    missing = [name for name, f in SourceConfig.model_fields.items() if not f.description]
    assert missing == []


# ---------------------------------------------------------------- files

@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz", "d.json", "d.json.gz", "d.parquet", "d.csv",
                                  "d.csv.gz", "d.ndjson"])
def test_file_formats(tmp_path, name):
    path = write(tmp_path / name)
    samples = load(path=str(path))
    assert [s.id for s in samples] == [r["id"] for r in ROWS]
    assert samples[2].chosen[0].content == "good 3" and samples[2].prompt[0].content == "question 3"
    assert samples[0].source == "test-src-pairs"


def test_file_format_override(tmp_path):
    path = write(tmp_path / "data.txt", fmt="jsonl")
    assert len(load(path=str(path), file_format="jsonl")) == len(ROWS)
    with pytest.raises(DataError, match="unknown file format 'txt'"):
        load(path=str(path))


def test_open_records_stream(tmp_path):
    stream = open_records(SourceConfig(path=str(write(tmp_path / "d.csv"))))
    assert isinstance(stream, RecordStream) and stream.row_kind == "line" and stream.name.endswith("d.csv")
    records = list(stream.records)
    assert records[0] == ({k: str(v) for k, v in ROWS[0].items()}, 2)  # csv: line 1 is the header
    assert open_records(SourceConfig(path=str(write(tmp_path / "d.parquet")))).row_kind == "row"


def test_limit_defaults_and_fields(tmp_path):
    rows = [{"q": f"q{i}", "good": f"g{i}", "bad": f"b{i}", "skip": i == 1} for i in range(10)]
    path = write(tmp_path / "d.jsonl", rows)
    samples = load(path=str(path), limit=3, fields={"prompt": "q", "chosen": "good", "rejected": "bad"},
                   subset="sub", split="test", source_name="mine")
    assert [s.id for s in samples] == ["row1", "row3", "row4"]  # limit counts samples; row 2 was skipped
    assert {(s.subset, s.split, s.source) for s in samples} == {("sub", "test", "mine")}
    assert load(path=str(path), limit=0) == []


def test_limit_stops_reading(tmp_path):
    path = write(tmp_path / "d.jsonl", ROWS[:2])
    with open(path, "a") as fh:
        fh.write("{not json\n")
    assert len(load(path=str(path), limit=2)) == 2


def test_converter_defaults_are_kept(tmp_path):
    @register_converter("test-src-subset")
    def _with_subset(rec, ctx):
        return _pairs(rec, ctx).model_copy(update={"subset": "own", "split": "own"})

    samples = list(load_source(SourceConfig(path=str(write(tmp_path / "d.jsonl")), converter="test-src-subset",
                                            subset="default", split="default")))
    assert {(s.subset, s.split) for s in samples} == {("own", "own")}


def test_bad_json_line_in_gz_is_located(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"chosen": "x",\n')
    gen = load_source(SourceConfig(path=str(path), converter="test-src-pairs"))
    assert next(gen).id == "s1" and next(gen).id == "s2"
    with pytest.raises(DataError) as exc:
        next(gen)
    assert str(path) in str(exc.value) and "line 3" in str(exc.value) and "malformed JSON" in str(exc.value)


@pytest.mark.parametrize("name, where", [("d.jsonl", "line 2"), ("d.parquet", "row 2"), ("d.json", "item 2"),
                                         ("d.jsonl.gz", "line 2")])
def test_converter_error_is_located(tmp_path, name, where):
    rows = [dict(ROWS[0]), dict(ROWS[1], chosen=None)]
    path = write(tmp_path / name, rows)
    with pytest.raises(DataError) as exc:
        load(path=str(path))
    assert str(exc.value) == f"{path}, {where}, field 'chosen': missing required field"


def test_csv_converter_error_is_located(tmp_path):  # csv has no nulls: leave the column out
    path = tmp_path / "d.csv"
    path.write_text("prompt,chosen\nhello,good\n")
    with pytest.raises(DataError, match=rf"{path}, line 2, field 'rejected': missing required field"):
        load(path=str(path))


def test_missing_path_and_unknown_converter(tmp_path):
    with pytest.raises(DataError, match="file or folder not found"):
        load_source(SourceConfig(path=str(tmp_path / "nope.jsonl"), converter="test-src-pairs"))
    with pytest.raises(DataError, match="unknown converter 'test-src-pair'.*did you mean 'test-src-pairs'"):
        load_source(SourceConfig(path=str(write(tmp_path / "d.jsonl")), converter="test-src-pair"))


def test_folder_of_files(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.jsonl", ROWS[:2])
    write(folder / "sub" / "b.parquet", ROWS[2:4])
    write(folder / "c.csv.gz", ROWS[4:])
    (folder / "README.md").write_text("not data")
    (folder / ".hidden.jsonl").write_text("{bad\n")
    samples = load(path=str(folder))
    assert sorted(s.id for s in samples) == sorted(r["id"] for r in ROWS)
    stream = open_records(SourceConfig(path=str(folder)))
    assert stream.name == str(folder) and len(list(stream.records)) == len(ROWS)


def test_folder_error_names_the_file(tmp_path):
    write(tmp_path / "a.jsonl", ROWS[:2])
    bad = write(tmp_path / "b.jsonl", [ROWS[2], {"chosen": "only"}])
    with pytest.raises(DataError) as exc:
        load(path=str(tmp_path))
    assert str(exc.value).startswith(f"{bad}, line 2, field 'rejected'")


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no data files in this folder"):
        load(path=str(tmp_path))


def _has_preference() -> bool:
    registry.load_plugins()
    return "preference" in registry.CONVERTERS


@pytest.mark.skipif(not _has_preference(), reason="the built-in 'preference' converter is not there yet")
def test_default_preference_converter(tmp_path):
    samples = list(load_source(SourceConfig(path=str(write(tmp_path / "d.jsonl")))))
    assert len(samples) == len(ROWS) and samples[0].kind == "pair"


# ---------------------------------------------------------------- plugins

PLUGIN = '''
from rmforge.data.registry import register_converter, register_loader
from rmforge.data.schema import Sample, assistant


@register_loader("{name}-loader")
def counting_loader(n=3, path=None):
    for i in range(1, n + 1):
        yield {{"a": f"win {{i}}", "b": f"lose {{i}}", "path": path}}, i


@register_converter("{name}-conv")
def convert(rec, ctx):
    tag = ctx.options.get("tag", "")
    return Sample(id=f"p{{ctx.row}}{{tag}}", chosen=[assistant(rec["a"])], rejected=[assistant(rec["b"])],
                  source=ctx.source, metadata={{"path": rec["path"]}})
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A fresh plugin module on sys.path; its registrations are removed afterwards."""
    name = f"rmforge_test_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN.format(name=name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    registry.CONVERTERS.pop(f"{name}-conv", None)
    registry.LOADERS.pop(f"{name}-loader", None)
    sys.modules.pop(name, None)


def test_plugin_via_argument(plugin):
    cfg = SourceConfig(loader=f"{plugin}-loader", loader_options={"n": 4}, converter=f"{plugin}-conv",
                       options={"tag": "x"})
    samples = list(load_source(cfg, plugins=[plugin]))
    assert [s.id for s in samples] == ["p1x", "p2x", "p3x", "p4x"]
    assert samples[0].source == f"{plugin}-conv" and samples[0].metadata == {"path": None}


def test_plugin_via_env(plugin, monkeypatch, tmp_path):
    monkeypatch.setenv("RMFORGE_PLUGINS", f" {plugin} ,")
    cfg = SourceConfig(loader=f"{plugin}-loader", path=str(tmp_path), converter=f"{plugin}-conv", limit=2)
    samples = list(load_source(cfg))
    assert [s.id for s in samples] == ["p1", "p2"] and samples[0].metadata == {"path": str(tmp_path)}


def test_plugin_converter_on_a_file(plugin, tmp_path):
    path = write(tmp_path / "d.jsonl", [{"a": "x", "b": "y", "path": "f"}])
    samples = list(load_source(SourceConfig(path=str(path), converter=f"{plugin}-conv"), plugins=[plugin]))
    assert samples[0].chosen[0].content == "x"


def test_unknown_loader_and_plugin():
    with pytest.raises(DataError, match="unknown loader 'fil'.*did you mean 'file'"):
        list(load_source(SourceConfig(loader="fil", converter="test-src-pairs")))
    with pytest.raises(Exception, match="cannot import plugin module 'rmforge_no_such_plugin'"):
        load_source(SourceConfig(path="x.jsonl", converter="test-src-pairs"), plugins=["rmforge_no_such_plugin"])
