"""Judge evaluation: metrics from known verdicts (golden), position consistency, and a real generation run."""

import json
import math
import subprocess
import sys

import pytest

from rmforge.evaluate.judge import evaluate_judge, judge_metrics
from rmforge.judge.data import JudgeExample


def _pair(pid, pos, truth=None, group=None):
    return JudgeExample(f"{pid}@{pos}", [{"role": "user", "content": "x"}], truth or pos, pair_id=pid, position=pos,
                        group=group)


def test_pairwise_metrics_golden():
    ex = [_pair("a", "A"), _pair("a", "B"), _pair("b", "A"), _pair("b", "B"), _pair("c", "A", "tie"), _pair("c", "B", "tie")]
    out = ["<preference>A</preference>", "<preference>B</preference>",   # a: right in both orders: consistent
           "<preference>A</preference>", "<preference>A</preference>",   # b: always A: inconsistent
           "<preference>tie</preference>", "oops"]                        # c: failure -> inconsistent
    m = judge_metrics(ex, out, "pairwise")
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6) and m["accuracy_parsed"] == pytest.approx(4 / 5)
    assert m["parse_failure_rate"] == pytest.approx(1 / 6) and m["parse_failures"] == {"missing_tag": 1}
    assert m["position_consistency"] == pytest.approx(1 / 3) and m["pairs_in_both_orders"] == 3
    assert m["a_rate"] == pytest.approx(3 / 5)
    assert "accuracy_by_group" not in m  # the data names no subsets


def test_accuracy_by_group():
    ex = [_pair("a", "A", group="math"), _pair("a", "B", group="math"), _pair("b", "A", group="chat")]
    out = ["<preference>A</preference>", "<preference>A</preference>", "<preference>A</preference>"]
    assert judge_metrics(ex, out, "pairwise")["accuracy_by_group"] == {"chat": 1.0, "math": 0.5}


def test_pointwise_metrics_golden():
    ex = [JudgeExample(str(i), [], str(t), 0, 4) for i, t in enumerate([0, 1, 2, 3, 4])]
    out = ["<score>0</score>", "<score>2</score>", "<score>2</score>", "<score>9</score>", "<score>3</score>"]
    m = judge_metrics(ex, out, "pointwise")
    assert m["parse_failure_rate"] == pytest.approx(0.2) and m["parse_failures"] == {"out_of_range": 1}
    assert m["mae"] == pytest.approx(0.5) and m["exact_match"] == pytest.approx(0.5)
    assert m["spearman"] == pytest.approx(0.9486832980505138)
    expect = (1 + math.exp(-0.5) + 1 + 0 + math.exp(-0.5)) / 5
    assert m["reward_mean"] == pytest.approx(expect)
    assert judge_metrics(ex[:1], ["<score>0</score>"], "pointwise")["spearman"] is None  # undefined, not NaN


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="2 examples but 1 completions"):
        judge_metrics([_pair("a", "A")] * 2, ["x"], "pairwise")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from rmforge.train.tiny import tiny_model

    return tiny_model("llama", tmp_path_factory.mktemp("tiny") / "m")


def _rows(path, n=4):
    rows = [{"input": [{"role": "user", "content": f"which is better {i // 2}"}],
             "output": f"<preference>{'AB'[i % 2]}</preference>",
             "metadata": {"id": f"p{i // 2}", "chosen_position": "AB"[i % 2], "subset": "s" + str(i // 4)}}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_judge_generates_and_batches_consistently(tmp_path, tiny):
    data = _rows(tmp_path / "p.jsonl")
    m1, rows1 = evaluate_judge(str(tiny), str(data), "pairwise", batch_size=1, max_new_tokens=6)
    m4, rows4 = evaluate_judge(str(tiny), str(data), "pairwise", batch_size=4, max_new_tokens=6)
    assert [r["completion"] for r in rows1] == [r["completion"] for r in rows4]  # left padding changes nothing
    assert m1["n"] == 4 and m1["pairs_in_both_orders"] == 2 and set(rows1[0]) == \
        {"id", "group", "truth", "verdict", "status", "correct", "reward", "completion"}
    assert all(r["correct"] == float(r["verdict"] == r["truth"]) == r["reward"] for r in rows1)
    assert [r["group"] for r in rows1] == ["s0"] * 4 and list(m1["accuracy_by_group"]) == ["s0"]


@pytest.mark.slow
def test_cli_eval_judge_json_and_bad_mode(tmp_path, tiny):
    data = _rows(tmp_path / "p.jsonl")
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "rmforge", "eval", "judge", str(tiny), str(data)]
    proc = subprocess.run(cmd + ["mode=pairwise", "max_new_tokens=4", "--json", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert result["metrics"]["n"] == 4 and len(result["examples"]) == 4
    proc = subprocess.run(cmd + ["mode=pointwise"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "holds pairwise judge rows, but mode=pointwise" in proc.stderr
    proc = subprocess.run(cmd + ["mood=pairwise"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "unknown option(s) mood" in proc.stderr


def _judge_result(path, mode, correct, groups, model):
    rows = [{"id": f"e{i}", "group": g, "truth": "A", "verdict": "A" if c else "B", "status": "ok",
             "correct": float(c), "reward": float(c) if mode == "pairwise" else 0.5 + 0.5 * c, "completion": ""}
            for i, (c, g) in enumerate(zip(correct, groups))]
    path.write_text(json.dumps({"metrics": {"mode": mode, "model": model, "n": len(rows)}, "examples": rows}))
    return str(path)


def test_compare_pairs_two_judge_results(tmp_path):
    """eval compare reads eval judge results: paired accuracy difference overall and per group."""
    from rmforge.evaluate.compare import compare_results

    groups = ["x"] * 10 + ["y"] * 10
    a = _judge_result(tmp_path / "a.json", "pairwise", [1] * 5 + [0] * 5 + [1] * 5 + [0] * 5, groups, "sft")
    b = _judge_result(tmp_path / "b.json", "pairwise", [1] * 10 + [1] * 5 + [0] * 5, groups, "grpo")
    cmp = compare_results(a, b, n_boot=200)
    rows = {r[0]: r for r in cmp.rows}
    assert cmp.benchmark == "judge-pairwise" and cmp.names == ("sft", "grpo")
    assert rows["overall"][1:4] == pytest.approx((0.5, 0.75, 0.25)) and rows["overall"][6] == 20
    assert rows["x"][1:4] == pytest.approx((0.5, 1.0, 0.5)) and rows["y"][3] == pytest.approx(0.0)
    assert rows["y"][4:6] == pytest.approx((0.0, 0.0))  # identical answers: a zero-width paired interval
    assert 0 < rows["overall"][4] < 0.25 < rows["overall"][5]
    p = _judge_result(tmp_path / "p.json", "pointwise", [1, 0, 1, 0], ["x"] * 4, "p")
    q = _judge_result(tmp_path / "q.json", "pointwise", [1, 1, 1, 0], ["x"] * 4, "q")
    rows = {r[0]: r for r in compare_results(p, q, n_boot=50).rows}
    assert rows["mean reward score"][1:4] == pytest.approx((0.75, 0.875, 0.125))
    with pytest.raises(Exception, match="different benchmarks: judge-pairwise vs judge-pointwise"):
        compare_results(a, p)


def test_compare_resamples_comparisons_not_orders(tmp_path):
    """The two A/B orders of one pair are one bootstrap item (their answers averaged)."""
    from rmforge.evaluate.compare import compare_results

    def result(path, correct):
        rows = [{"id": f"p{i // 2}@{'AB'[i % 2]}", "group": "g", "correct": float(c), "reward": float(c)}
                for i, c in enumerate(correct)]
        path.write_text(json.dumps({"metrics": {"mode": "pairwise", "model": path.stem}, "examples": rows}))
        return str(path)

    a = result(tmp_path / "a.json", [1, 0, 1, 0, 1, 0])
    b = result(tmp_path / "b.json", [1, 1, 1, 0, 1, 1])
    overall = next(r for r in compare_results(a, b, n_boot=100).rows if r[0] == "overall")
    assert overall[1:4] == pytest.approx((0.5, 5 / 6, 1 / 3)) and overall[6] == 3
