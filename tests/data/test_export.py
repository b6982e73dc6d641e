"""Tests for rmforge.data.export: exact rows per exporter, schemas, positions, atomicity."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmforge.data import export as ex
from rmforge.data.export import EXPORTERS, export_samples
from rmforge.data.judge_templates import pairwise_prompt, pointwise_prompt
from rmforge.data.schema import Sample, Scale, assistant, user
from rmforge.errors import ConfigError, OutputExistsError

MSG = pa.struct([("role", pa.string()), ("content", pa.string())])
FOUR = Scale(min=0, max=4)


def U(c):
    return {"role": "user", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


PAIR = Sample(id="p", prompt=[user("Hi")], chosen=[assistant("Hello!")], rejected=[assistant("Go away")],
              margin=2.0, subset="chat", source="src", split="train")
TIE = Sample(id="t", prompt=[user("Q")], chosen=[assistant("x")], rejected=[assistant("y")], tie=True)
NWAY = Sample(id="n", prompt=[user("Rank")], candidates=[[assistant("mid")], [assistant("best")], [assistant("worst")]],
              ranks=[2, 1, 3], split="test")
POINT = Sample(id="w", prompt=[user("Rate")], response=[assistant("fine")], scale=FOUR, split="train",
               scores={"helpfulness": 3.0, "correctness": 2.0}, source="hs2")


def run(tmp_path, to, samples, name="out.jsonl", **options):
    path = tmp_path / name
    report = export_samples(samples, to, path, options=options or None)
    if name.endswith(".parquet"):
        return report, pq.read_table(path).to_pylist()
    return report, [json.loads(line) for line in path.read_text().splitlines()]


def test_bt_rows_and_skips(tmp_path):
    report, rows = run(tmp_path, "bt", [PAIR, NWAY, POINT])
    assert rows[0] == {"id": "p", "prompt": [U("Hi")], "chosen": [A("Hello!")], "rejected": [A("Go away")],
                       "prompt_text": "Hi", "chosen_text": "Hello!", "rejected_text": "Go away", "margin": 2.0,
                       "tie": False, "subset": "chat"}
    assert [(r["id"], r["chosen_text"], r["rejected_text"], r["margin"]) for r in rows[1:]] == [
        ("n/1>0", "best", "mid", None), ("n/1>2", "best", "worst", None)]
    assert (report.rows_written, report.skipped, report.format) == (3, {"pointwise_sample": 1}, "bt")


@pytest.mark.parametrize("mode, ids, skipped", [
    ("pairs", ["n/0>2", "n/1>0", "n/1>2"], {}),
    ("best_vs_rest", ["n/1>0", "n/1>2"], {}),
    ("skip", [], {"nway_sample": 1}),
])
def test_nway_expansion(tmp_path, mode, ids, skipped):
    report, rows = run(tmp_path, "bt", [NWAY], nway=mode)
    assert [r["id"] for r in rows] == ids and report.skipped == skipped


def test_nway_ties_and_scores(tmp_path):
    tied_best = Sample(id="s", prompt=[], candidates=[[assistant(t)] for t in "abcd"], candidate_scores=[5, 5, 1, 0])
    all_tied = Sample(id="z", prompt=[], candidates=[[assistant("a")], [assistant("b")]], ranks=[1, 1])
    report, rows = run(tmp_path, "bt", [tied_best, all_tied])
    assert [r["id"] for r in rows] == ["s/0>2", "s/0>3", "s/1>2", "s/1>3"]
    assert report.skipped == {"nway_all_tied": 1}
    _, rows = run(tmp_path, "bt", [tied_best], name="pairs.jsonl", nway="pairs")
    assert len(rows) == 5  # 6 pairs minus the tied one


def test_bt_parquet_schema(tmp_path):
    path = tmp_path / "bt.parquet"
    export_samples([PAIR, NWAY], "bt", path)
    table = pq.read_table(path)
    assert table.schema == ex.BT_SCHEMA
    assert table.schema.field("margin").type == pa.float64() and table.column("margin").to_pylist() == [2.0, None, None]
    assert table.schema.field("chosen").type == pa.list_(MSG)


def test_sft_rows(tmp_path):
    report, rows = run(tmp_path, "sft", [PAIR, NWAY, POINT])
    assert rows == [{"id": "p", "messages": [U("Hi"), A("Hello!")]}, {"id": "n", "messages": [U("Rank"), A("best")]}]
    assert report.skipped == {"pointwise_sample": 1}
    _, rows = run(tmp_path, "sft", [POINT], name="p.parquet", include_pointwise=True)
    assert rows == [{"id": "w", "messages": [U("Rate"), A("fine")]}]


def test_pointwise_rows(tmp_path):
    report, rows = run(tmp_path, "pointwise", [POINT, PAIR])
    assert rows == [{"id": "w", "input": [U(pointwise_prompt(POINT.prompt, POINT.response, "helpfulness", FOUR))],
                     "output": "<score>3</score>", "label": 3.0}]
    content = rows[0]["input"][0]["content"]
    assert "User: Rate" in content and "fine" in content and "helpfulness" in content and "from 0 to 4" in content
    assert report.skipped == {"pair_without_scores": 1}


def test_pointwise_attribute_weights_and_scale_options(tmp_path):
    _, rows = run(tmp_path, "pointwise", [POINT], attribute="correctness")
    assert (rows[0]["output"], rows[0]["label"]) == ("<score>2</score>", 2.0)
    _, rows = run(tmp_path, "pointwise", [POINT], name="w.jsonl", weights={"helpfulness": 3, "correctness": 1})
    assert (rows[0]["output"], rows[0]["label"]) == ("<score>2.75</score>", 2.75)
    assert "overall quality" in rows[0]["input"][0]["content"]
    report, rows = run(tmp_path, "pointwise", [POINT], name="m.jsonl", attribute="verbosity")
    assert rows == [] and report.skipped == {"missing_attribute": 1}
    unscaled = POINT.model_copy(update={"scale": None})
    report, _ = run(tmp_path, "pointwise", [unscaled], name="u.jsonl")
    assert report.skipped == {"no_scale": 1}
    _, rows = run(tmp_path, "pointwise", [unscaled], name="s.jsonl", scale={"min": 1, "max": 5})
    assert "from 1 to 5" in rows[0]["input"][0]["content"]
    with pytest.raises(ConfigError, match="not both"):
        run(tmp_path, "pointwise", [POINT], name="e.jsonl", attribute="a", weights={"a": 1})


def test_pointwise_from_scored_pairs_and_nway(tmp_path):
    scored = PAIR.model_copy(update={"scale": FOUR, "metadata": {"chosen_scores": {"h": 4}, "rejected_scores": {"h": 1}}})
    nway = Sample(id="m", prompt=[user("Q")], candidates=[[assistant("a")], [assistant("b")]],
                  candidate_scores=[0.5, 1.25], scale=Scale(min=0, max=2))
    report, rows = run(tmp_path, "pointwise", [scored, nway, NWAY])
    assert [(r["id"], r["output"], r["label"]) for r in rows] == [
        ("p/chosen", "<score>4</score>", 4.0), ("p/rejected", "<score>1</score>", 1.0),
        ("m/0", "<score>0.5</score>", 0.5), ("m/1", "<score>1.25</score>", 1.25)]
    assert report.skipped == {"nway_without_scores": 1}


def test_pairwise_rows(tmp_path):
    fixed = PAIR.model_copy(update={"metadata": {"position_of_chosen": "B"}})
    report, rows = run(tmp_path, "pairwise", [fixed, TIE, POINT])
    assert rows[0] == {"input": [U(pairwise_prompt(PAIR.prompt, PAIR.rejected, PAIR.chosen))],
                       "output": "<preference>B</preference>",
                       "metadata": {"id": "p", "chosen_position": "B", "subset": "chat", "margin": 2.0, "source": "src"}}
    content = rows[0]["input"][0]["content"]
    assert content.index("Go away") < content.index("Hello!")  # rejected shown as A
    assert rows[1]["output"] == "<preference>tie</preference>"
    assert report.skipped == {"pointwise_sample": 1}
    converter_style = PAIR.model_copy(update={"metadata": {"chosen_position": "B"}})
    _, rows = run(tmp_path, "pairwise", [converter_style], name="c.jsonl")
    assert rows[0]["metadata"]["chosen_position"] == "B"


def _positions(tmp_path, name, n=1000, **options):
    samples = (Sample(id=f"id{i}", prompt=[user("q")], chosen=[assistant("a")], rejected=[assistant("b")])
               for i in range(n))
    _, rows = run(tmp_path, "pairwise", samples, name=name, **options)
    return [r["metadata"]["chosen_position"] for r in rows], rows


def test_pairwise_positions_balanced_and_deterministic(tmp_path):
    first, rows = _positions(tmp_path, "a.jsonl")
    again, _ = _positions(tmp_path, "b.jsonl")
    other_seed, _ = _positions(tmp_path, "c.jsonl", seed=7)
    assert first == again and first != other_seed
    assert 450 <= first.count("A") <= 550
    assert all(r["output"] == f"<preference>{p}</preference>" for r, p in zip(rows, first))


def test_pairwise_both_orders(tmp_path):
    report, rows = run(tmp_path, "pairwise", [PAIR, NWAY], both_orders=True)
    assert report.rows_written == 6
    for a, b in zip(rows[::2], rows[1::2]):
        assert a["metadata"]["id"] == b["metadata"]["id"]
        assert {a["output"], b["output"]} == {"<preference>A</preference>", "<preference>B</preference>"}
        assert a["metadata"]["chosen_position"] != b["metadata"]["chosen_position"]


def test_verl_parquet_layout(tmp_path):
    report, rows = run(tmp_path, "verl", [PAIR, NWAY, POINT], name="verl.parquet")
    schema = pq.read_schema(tmp_path / "verl.parquet")
    assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert schema.field("data_source").type == pa.string() and schema.field("ability").type == pa.string()
    assert schema.field("prompt").type == pa.list_(MSG)
    assert schema.field("reward_model").type == pa.struct([("style", pa.string()), ("ground_truth", pa.string())])
    extra = schema.field("extra_info").type
    assert [extra.field(i).name for i in range(extra.num_fields)][:4] == ["split", "index", "id", "subset"]
    assert extra.field("index").type == pa.int64()
    assert report.rows_written == 4 and report.skipped == {}
    pos = rows[0]["extra_info"]["chosen_position"]
    assert rows[0]["data_source"] == "src" and rows[0]["ability"] == "reward_modeling"
    assert rows[0]["reward_model"] == {"style": "rule", "ground_truth": pos}
    assert rows[1]["data_source"] == "rmforge"
    assert rows[3] == {
        "data_source": "hs2", "prompt": [U(pointwise_prompt(POINT.prompt, POINT.response, "helpfulness", FOUR))],
        "ability": "reward_modeling", "reward_model": {"style": "rule", "ground_truth": "3"},
        "extra_info": {"split": "train", "index": 3, "id": "w", "subset": None, "task": "pointwise",
                       "chosen_position": None, "attribute": "helpfulness", "scale_min": 0.0, "scale_max": 4.0}}
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["extra_info"]["task"] for r in rows] == ["pairwise"] * 3 + ["pointwise"]


def test_verl_task_option(tmp_path):
    report, rows = run(tmp_path, "verl", [PAIR, POINT], task="pairwise", data_source="mine", ability="rm")
    assert len(rows) == 1 and report.skipped == {"pointwise_sample": 1}
    assert (rows[0]["data_source"], rows[0]["ability"]) == ("mine", "rm")
    report, rows = run(tmp_path, "verl", [PAIR, POINT], name="pw.jsonl", task="pointwise")
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["3"] and report.skipped == {"pair_without_scores": 1}


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet"])
def test_no_partial_output_when_exporter_fails(tmp_path, monkeypatch, name):
    real = EXPORTERS["bt"]

    def failing(sample, ctx):
        if ctx.rows >= 1:
            raise RuntimeError("boom")
        yield from real(sample, ctx)

    monkeypatch.setitem(EXPORTERS, "bt", failing)
    with pytest.raises(RuntimeError, match="boom"):
        export_samples([PAIR, TIE], "bt", tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_and_empty_input(tmp_path):
    path = tmp_path / "e.parquet"
    report = export_samples([], "verl", path)
    assert report.rows_written == 0 and pq.read_schema(path) == ex.VERL_SCHEMA
    with pytest.raises(OutputExistsError):
        export_samples([PAIR], "verl", path)
    assert export_samples([PAIR], "verl", path, overwrite=True).rows_written == 1


def test_unknown_format_and_option(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'verl'"):
        export_samples([PAIR], "verll", tmp_path / "x.jsonl")
    with pytest.raises(ConfigError, match="both_orders"):
        export_samples([PAIR], "pairwise", tmp_path / "x.jsonl", options={"both_order": True})
    assert not (tmp_path / "x.jsonl").exists()


def test_no_torch_import():
    code = "import sys, rmforge.data.export, rmforge.data.validate; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
