"""SQL sources: a real SQLite file through SQLAlchemy (table, view and query forms, errors)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rmforge.data.registry import register_converter
from rmforge.data.schema import Sample, assistant, user
from rmforge.data.sources import SourceConfig, iter_sql, load_source, open_records
from rmforge.errors import DataError


@register_converter("test-sql-pairs")
def _pairs(rec, ctx):
    """chosen/rejected(/prompt) columns -> pair."""
    prompt = ctx.get(rec, "prompt", required=False)
    return Sample(id=f"{ctx.source}-{rec.get('id', ctx.row)}", prompt=[user(prompt)] if prompt else [],
                  chosen=[assistant(ctx.get(rec, "chosen"))], rejected=[assistant(ctx.get(rec, "rejected"))],
                  margin=rec.get("margin"), source=ctx.source)


N = 25


@pytest.fixture
def db(tmp_path):
    """sqlite file with table ``prefs`` (N rows, row 13 lacks 'rejected'), a view and another table."""
    path = tmp_path / "prefs.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE prefs (id INTEGER PRIMARY KEY, prompt TEXT, chosen TEXT, rejected TEXT, "
                             "margin REAL)"))
        conn.execute(sa.text("INSERT INTO prefs VALUES (:id, :p, :c, :r, :m)"),
                     [{"id": i, "p": f"q{i}", "c": f"good {i}", "r": None if i == 13 else f"bad {i}", "m": i / 10}
                      for i in range(1, N + 1)])
        conn.execute(sa.text("CREATE VIEW good_prefs AS SELECT * FROM prefs WHERE rejected IS NOT NULL"))
        conn.execute(sa.text("CREATE TABLE other (x INTEGER)"))
    engine.dispose()
    return path


def test_table_view_and_query(db):
    url = f"sqlite:///{db}"
    view = list(load_source(SourceConfig(sql_url=url, sql_table="good_prefs", converter="test-sql-pairs",
                                         batch_size=4)))
    assert len(view) == N - 1 and view[0].id == "test-sql-pairs-1" and view[0].margin == 0.1
    query = "SELECT id, prompt AS question, chosen, rejected FROM prefs WHERE id % 2 = 0 ORDER BY id DESC"
    samples = list(load_source(SourceConfig(sql_url=url, sql_query=query, converter="test-sql-pairs",
                                            fields={"prompt": "question"}, source_name="db", batch_size=3)))
    assert [s.id for s in samples][:3] == ["db-24", "db-22", "db-20"] and len(samples) == 12
    assert samples[0].prompt[0].content == "q24"


def test_rows_are_one_based_and_batched(db):
    rows = list(iter_sql(f"sqlite:///{db}", table="prefs", batch_size=7))
    assert [r for _, r in rows] == list(range(1, N + 1))
    assert rows[0][0] == {"id": 1, "prompt": "q1", "chosen": "good 1", "rejected": "bad 1", "margin": 0.1}
    stream = open_records(SourceConfig(sql_url=f"sqlite:///{db}", sql_table="prefs"))
    assert stream.name == f"sqlite:///{db} table prefs" and stream.row_kind == "row"


def test_converter_error_names_table_and_row(db):
    cfg = SourceConfig(sql_url=f"sqlite:///{db}", sql_table="prefs", converter="test-sql-pairs", batch_size=5)
    with pytest.raises(DataError) as exc:
        list(load_source(cfg))
    assert str(exc.value) == f"sqlite:///{db} table prefs, row 13, field 'rejected': missing required field"


def test_limit_closes_early(db):
    cfg = SourceConfig(sql_url=f"sqlite:///{db}", sql_table="prefs", converter="test-sql-pairs", limit=5)
    assert len(list(load_source(cfg))) == 5


def test_missing_table_lists_tables(db):
    cfg = SourceConfig(sql_url=f"sqlite:///{db}", sql_table="pref", converter="test-sql-pairs")
    with pytest.raises(DataError) as exc:
        list(load_source(cfg))
    msg = str(exc.value)
    assert "no table 'pref'" in msg and "available tables: good_prefs, other, prefs" in msg
    assert "did you mean 'prefs'" in msg


def test_bad_query_and_missing_file(db, tmp_path):
    cfg = SourceConfig(sql_url=f"sqlite:///{db}", sql_query="SELECT nope FROM prefs", converter="test-sql-pairs")
    with pytest.raises(DataError, match=r"query: SQL error: .*nope"):
        list(load_source(cfg))
    missing = tmp_path / "missing.db"
    cfg = SourceConfig(sql_url=f"sqlite:///{missing}", sql_table="prefs", converter="test-sql-pairs")
    with pytest.raises(DataError, match="SQLite database file not found"):
        list(load_source(cfg))
    assert not missing.exists()  # no empty database left behind


def test_bad_url_and_password_masking():
    cfg = SourceConfig(sql_url="nosuchdb+driver://user:secret@host/db", sql_table="t", converter="test-sql-pairs")
    with pytest.raises(DataError) as exc:
        list(load_source(cfg))
    assert "cannot open database URL" in str(exc.value) and "secret" not in str(exc.value)
    assert "secret" not in open_records(cfg).name
