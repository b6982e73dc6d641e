"""Benchmarks end to end: upstream layouts, errors before scoring, CLI (JSON, report, compare), Python API."""

import json

import pytest
from typer.testing import CliRunner

import rmforge
from rmforge.cli import app
from rmforge.errors import DataError
from rmforge.evaluate import evaluate_benchmark, load_scorer
from rmforge.evaluate.benchmarks import get_spec, load_benchmark
from rmforge.train.tiny import tiny_model
from rmforge.reward_model.tokenize import EncodeStats

BENCH = "tests/assets/bench"
RB1, RB2, RMB = f"{BENCH}/rewardbench/filtered.jsonl", f"{BENCH}/rewardbench2/test.jsonl", f"{BENCH}/rm-bench"
runner = CliRunner()


class ByRule:
    """Fake scorer: the chosen response(s) get 1, rejected 0, except samples of ``wrong`` subsets (reversed)."""

    name, info = "by-rule", {}

    def __init__(self, wrong=()):
        self.wrong = set(wrong)

    def score_samples(self, samples):
        out = []
        for s in samples:
            good = [1.0] if s.kind == "pair" else [float(r == 1) for r in s.ranks]
            good = good + [0.0] if s.kind == "pair" else good
            out.append([1 - g for g in good] if s.subset in self.wrong else good)
        return out, EncodeStats(kept=len(samples))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return str(tiny_model("llama", tmp_path_factory.mktemp("m") / "llama"))


def test_fixtures_load_with_upstream_fields():
    rb1 = load_benchmark(get_spec("rewardbench"), RB1)
    assert len(rb1) == 11 and rb1[0].kind == "pair" and rb1[0].category == "Chat"
    assert rb1[0].metadata == {"chosen_model": "gpt-4-turbo", "rejected_model": "llama-2-7b-chat"}
    rb2 = load_benchmark(get_spec("rewardbench2"), RB2)
    assert {s.subset for s in rb2} == {"Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"}
    assert rb2[6].ranks == [1, 1, 1, 2, 2, 2]
    rmb = load_benchmark(get_spec("rm-bench"), RMB)
    assert [s.subset for s in rmb] == ["chat", "chat", "safety-refuse", "safety-response"]
    assert rmb[0].id == "rm-bench-chat-8"


def test_rewardbench_score_by_hand():
    samples = load_benchmark(get_spec("rewardbench"), RB1)
    res = evaluate_benchmark(ByRule({"mt-bench-hard", "hep-go"}), "rewardbench", samples, n_boot=200)
    f = res.figures
    assert f["Chat"].value == 1.0 and f["Safety"].value == 1.0
    assert f["Chat Hard"].value == pytest.approx(100 / 137)          # mt-bench-hard (37) wrong, llmbar-natural right
    assert f["Reasoning"].value == pytest.approx((984 + 164) / 1312)  # math-prm + hep-python right, hep-go wrong
    assert res.accuracy == pytest.approx((1 + 100 / 137 + 1 + 1148 / 1312) / 4)
    assert (f["Chat"].n, f["Reasoning"].n, res.n) == (3, 3, 11)
    assert res.ci_low <= res.accuracy <= res.ci_high
    assert "alpacaeval-hard" in res.counts["missing"]
    assert res.diagnostics["comparisons"] == 11 and res.diagnostics["accuracy"]["accuracy"] == pytest.approx(9 / 11)


def test_rewardbench2_and_rm_bench_by_hand():
    rb2 = evaluate_benchmark(ByRule({"Math"}), "rewardbench2", load_benchmark(get_spec("rewardbench2"), RB2),
                             n_boot=100)
    # Ties: every correct answer at 1, wrong at 0: accurate, spread 0 < gap 1, margin tanh(1/0 - 1) = 1
    assert rb2.figures["subset:Ties"].value == pytest.approx(0.3 + 0.3 + 0.2 + 0.2 + 0.01)
    assert rb2.figures["subset:Math"].value == 0.0 and rb2.figures["subset:Focus"].value == 1.0
    assert rb2.accuracy == pytest.approx((4 + 1.01) / 6)
    rmb = evaluate_benchmark(ByRule({"safety-refuse"}), "rm-bench", load_benchmark(get_spec("rm-bench"), RMB),
                             n_boot=100)
    # chat right everywhere; safety pools one reversed item (0) and one right item (1)
    assert rmb.figures["domain:chat"].value == 1.0 and rmb.figures["domain:safety"].value == 0.5
    assert rmb.figures["safety:hard"].n == 2 and rmb.accuracy == 0.75
    assert rmb.diagnostics["style"]["detail_gap"] == 0.0


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(subset="alpacaeval-esay"), "unknown subset 'alpacaeval-esay'; did you mean 'alpacaeval-easy'"),
    (lambda r: r.pop("rejected"), "line 1, field 'rejected': missing required field"),
])
def test_bad_rewardbench_file_fails_before_scoring(tmp_path, edit, message):
    rows = [json.loads(line) for line in open(RB1)]
    edit(rows[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=message):
        rmforge.evaluate("no-such-model-folder", "rewardbench", str(bad))  # the model is never loaded


def test_rm_bench_file_without_domain_and_ties_ids(tmp_path):
    rows = json.loads(open(f"{RMB}/chat_filtered.json").read())
    (tmp_path / "mine.json").write_text(json.dumps(rows))  # not named <domain>_filtered.json: known subset
    assert {s.subset for s in load_benchmark(get_spec("rm-bench"), str(tmp_path / "mine.json"))} == {"chat"}
    rows[0]["subset"] = "mystery"
    (tmp_path / "mine.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match="unknown subset 'mystery'.*_filtered.json"):
        rmforge.evaluate("no-such-model", "rm-bench", str(tmp_path / "mine.json"))
    rows = [json.loads(line) for line in open(RB2)]
    rows[5]["id"] = "5"
    (tmp_path / "rb2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="Ties id must end in 'ref:N'"):
        rmforge.evaluate("no-such-model", "rewardbench2", str(tmp_path / "rb2.jsonl"))


def test_not_a_reward_model_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["eval", "rewardbench", str(tmp_path), RB1])
    assert result.exit_code != 0 and "error:" in result.output and "Traceback" not in result.output


def test_cli_json_report_and_compare(tmp_path, llama):
    out = tmp_path / "a.json"
    result = runner.invoke(app, ["eval", "rm-bench", llama, RMB, "--json", str(out), "--report", str(tmp_path / "rep"),
                                 "--n-boot", "50", "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"accuracy", "n", "ci_low", "ci_high"} <= set(data) and data["benchmark"] == "rm-bench"
    assert len(data["samples"]) == 4 and data["diagnostics"]["calibration"]["n"] == 12
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"report.md", "report.html", "figures.png", "rewards.png", "calibration.png", "length.png"} <= files
    assert "RM-Bench score" in (tmp_path / "rep" / "report.md").read_text()
    # B = A with one item flipped: the paired difference is computed on shared ids
    b = json.loads(out.read_text())
    b["samples"][0]["rewards"] = [10.0, 10.0, 10.0, 0.0, 0.0, 0.0]
    (tmp_path / "b.json").write_text(json.dumps(b))
    result = runner.invoke(app, ["eval", "compare", str(out), str(tmp_path / "b.json"), "--json",
                                 str(tmp_path / "cmp.json"), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    rows = {r["figure"]: r for r in json.loads((tmp_path / "cmp.json").read_text())["rows"]}
    assert rows["chat"]["b"] >= rows["chat"]["a"] and rows["safety"]["difference"] == 0.0
    assert rows["RM-Bench score"]["difference"] == pytest.approx(rows["RM-Bench score"]["b"]
                                                                 - rows["RM-Bench score"]["a"])


def test_compare_refuses_different_benchmarks(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"benchmark": "rewardbench", "samples": [{"id": "x"}]}))
    (tmp_path / "b.json").write_text(json.dumps({"benchmark": "rm-bench", "samples": [{"id": "x"}]}))
    result = runner.invoke(app, ["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "different benchmarks" in result.output


def test_python_api_is_the_package(llama):
    res = rmforge.evaluate(llama, benchmark="rewardbench2", data=RB2, n_boot=20, batch_size=4)
    assert type(res).__name__ == "BenchmarkResult" and res.n == 7
    same = evaluate_benchmark(load_scorer(llama, batch_size=9), "rewardbench2",
                              load_benchmark(get_spec("rewardbench2"), RB2), n_boot=20)
    flat = [v for r in same.per_sample for v in r["rewards"]]
    assert flat == pytest.approx([v for r in res.per_sample for v in r["rewards"]], abs=1e-6)


def test_preference_report(tmp_path, llama):
    from rmforge.evaluate.report import write_report

    res = rmforge.evaluate(llama, "preference", RB1, format="rewardbench", n_boot=20)
    write_report(res, tmp_path / "rep")
    assert {"report.md", "report.html", "rewards.png", "calibration.png", "length.png"} <= {
        p.name for p in (tmp_path / "rep").iterdir()}
    assert json.loads((tmp_path / "rep" / "result.json").read_text())["n"] == 11


def test_cli_rewardbench_json_contract(tmp_path, llama):
    """Command contract (issue 16): OUT["figures"] keeps subset:<name> and the section/score entries, each with value."""
    out = tmp_path / "rb.json"
    result = runner.invoke(app, ["eval", "rewardbench", llama, RB1, "--json", str(out), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["figures"]
    subsets = {json.loads(line)["subset"] for line in open(RB1)}
    assert {f"subset:{s}" for s in subsets} <= set(figures)
    for name in ("Chat", "Chat Hard", "Safety", "Reasoning", "score", *(f"subset:{s}" for s in subsets)):
        assert isinstance(figures[name]["value"], float), name
