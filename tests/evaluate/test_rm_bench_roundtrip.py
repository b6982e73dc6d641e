"""``rmforge data convert --from rm-bench`` then ``rmforge eval rm-bench`` (issue 16: "unknown subset 'alpacaeval'")."""

import json

import pytest
from typer.testing import CliRunner

from rmforge.cli import app
from rmforge.evaluate import evaluate_benchmark
from rmforge.evaluate.benchmarks import check_samples, get_spec, load_benchmark
from rmforge.train.tiny import tiny_model
from rmforge.reward_model.tokenize import EncodeStats

RMB = "tests/assets/bench/rm-bench"
runner = CliRunner()


class ChosenWins:
    name, info = "chosen-wins", {}

    def score_samples(self, samples):
        return [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0] for _ in samples], EncodeStats(kept=len(samples))


def convert(src, out):
    result = runner.invoke(app, ["data", "convert", "--from", "rm-bench", str(src), str(out)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in open(out)]


def test_convert_then_eval_round_trip(tmp_path):
    rows = convert(f"{RMB}/chat_filtered.json", tmp_path / "chat.jsonl")
    assert {r["subset"] for r in rows} == {"chat"} and {r["category"] for r in rows} == {"alpacaeval"}
    rows += convert(f"{RMB}/safety-refuse_filtered.json", tmp_path / "refuse.jsonl")
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = tiny_model("llama", tmp_path / "llama")
    result = runner.invoke(app, ["eval", "rm-bench", str(model), str(tmp_path / "out.jsonl"), "--json",
                                 str(tmp_path / "res.json"), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "res.json").read_text())["figures"]
    assert figures["domain:chat"]["n"] == 2 and figures["domain:safety"]["n"] == 1
    assert "score" in figures


def test_samples_converted_without_the_domain_still_evaluate(tmp_path):
    # files converted before the fix carry subset "alpacaeval" and no domain
    rows = convert(f"{RMB}/chat_filtered.json", tmp_path / "chat.jsonl")
    for r in rows:
        r["subset"] = r["category"]
        r["metadata"].pop("domain")
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_benchmark(get_spec("rm-bench"), str(tmp_path / "old.jsonl"))
    check_samples(get_spec("rm-bench"), samples)
    assert {s.subset for s in samples} == {"chat"}
    assert evaluate_benchmark(ChosenWins(), "rm-bench", samples, n_boot=10).figures["domain:chat"].value == 1.0


@pytest.mark.shared
def test_real_files_convert_then_evaluate(shared_data, tmp_path):
    rows = []
    for name in ("chat", "code", "safety-refuse", "safety-response"):
        rows += convert(shared_data / f"bench/rm-bench/{name}_filtered.json.gz", tmp_path / f"{name}.jsonl")
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = get_spec("rm-bench")
    samples = load_benchmark(spec, str(tmp_path / "all.jsonl"))
    check_samples(spec, samples)
    res = evaluate_benchmark(ChosenWins(), "rm-bench", samples, n_boot=10)
    f = res.figures
    assert (f["domain:chat"].n, f["domain:code"].n, f["domain:safety"].n) == (129, 228, 441)
    assert res.accuracy == 1.0 and res.counts["missing"] == ["math"]
