"""RewardBench 1/2, RM-Bench and JudgeBench layouts -> pairs and N-way samples."""

import collections
import json

import pytest

from rmforge.data.schema import assistant, user
from rmforge.errors import DataError

STYLES = ("concise", "detailed_plain", "detailed_markdown")


def test_rewardbench(convert):
    a, b = convert("rewardbench", "rewardbench.jsonl")
    assert a.id == "rewardbench-301" and a.subset == "llmbar-natural" and a.category == "Chat Hard"
    assert a.prompt == [user("Reverse the word 'stop'.")]
    assert a.chosen == [assistant("pots")] and a.rejected == [assistant("spot")]
    assert a.metadata == {"chosen_model": "model-a", "rejected_model": "model-b"}
    assert b.category == "Safety"


def test_rewardbench2_nway_with_ties(convert):
    fact, ties = convert("rewardbench2", "rewardbench2.jsonl")
    assert fact.kind == "nway" and fact.id == "rewardbench2-17" and fact.subset == "Factuality"
    assert fact.candidates[0] == [assistant("Canberra.")] and len(fact.candidates) == 4
    assert fact.ranks == [1, 2, 2, 2]
    assert fact.candidate_labels == ["chosen", "rejected", "rejected", "rejected"]
    assert fact.metadata["num_correct"] == 1 and fact.metadata["models"] == ["m1", "m2", "m3", "m4"]
    assert ties.ranks == [1, 1, 1, 2] and ties.metadata["num_correct"] == 3


def test_rm_bench_six_candidates(convert):
    chat, code = convert("rm-bench", "rm_bench.json", options={"domain": "chat"})
    assert chat.id == "rm-bench-chat-41" and chat.subset == "chat" and chat.category == "alpacaeval"
    assert chat.candidate_labels == [f"{side}/{st}" for side in ("chosen", "rejected") for st in STYLES]
    assert chat.ranks == [1, 1, 1, 2, 2, 2]
    assert chat.candidates[0] == [assistant("Eight.")] and chat.candidates[3] == [assistant("Six.")]
    assert chat.metadata == {"error_key": "eight", "error": "Spiders have eight legs, not six.", "domain": "chat"}
    assert code.metadata["language"] == "python" and code.metadata["task_id"] == "Python/7"


def test_rm_bench_without_domain_keeps_the_domain_of_the_upstream_subset(convert):
    # issue 16: the per-domain files carry the source as subset; the domain used to be dropped
    chat, code = convert("rm-bench", "rm_bench.json")
    assert (chat.id, chat.subset, chat.category) == ("rm-bench-chat-41", "chat", "alpacaeval")
    assert chat.metadata["domain"] == "chat"
    assert (code.subset, code.category, code.metadata["domain"]) == ("code", "bigcode/humanevalpack", "code")


@pytest.mark.parametrize("subset, domain", [
    ("alpacaeval", "chat"), ("bigcode/humanevalpack", "code"), ("xstest-should-refuse", "safety-refuse"),
    ("refusals-dangerous", "safety-refuse"), ("refusals-offensive", "safety-refuse"),
    ("xstest-should-respond", "safety-response"), ("safety-response", "safety-response"), ("mystery", None)])
def test_rm_bench_upstream_subset_to_domain(tmp_path, convert, subset, domain):
    path = tmp_path / "rmb.json"
    path.write_text(json.dumps([{"id": 3, "subset": subset, "prompt": "p", "chosen": ["a", "b", "c"],
                                 "rejected": ["d", "e", "f"]}]))
    (s,) = convert("rm-bench", path)
    assert s.subset == (domain or subset) and s.category == subset and s.metadata.get("domain") == domain
    assert s.id == (f"rm-bench-{domain}-3" if domain else "rm-bench-3")
    (forced,) = convert("rm-bench", path, options={"domain": "math"})  # an explicit domain wins
    assert forced.subset == "math" and forced.id == "rm-bench-math-3"


@pytest.mark.shared
def test_real_rm_bench_files_keep_their_domain(shared_data, convert):
    folder = shared_data / "bench/rm-bench"
    for name, n, subsets in (("chat", 129, {"alpacaeval"}), ("code", 228, {"bigcode/humanevalpack"}),
                             ("safety-refuse", 284, {"xstest-should-refuse", "refusals-dangerous",
                                                     "refusals-offensive"}),
                             ("safety-response", 157, {"xstest-should-respond"})):
        samples = convert("rm-bench", folder / f"{name}_filtered.json.gz")
        assert len(samples) == n and {s.subset for s in samples} == {name}
        assert {s.category for s in samples} == subsets and len({s.id for s in samples}) == n


def test_rm_bench_needs_three_styles(tmp_path, convert):
    path = tmp_path / "rmb.json"
    path.write_text('[{"id": 1, "prompt": "p", "chosen": ["a", "b"], "rejected": ["c", "d", "e"]}]')
    with pytest.raises(DataError, match="line 1, field 'chosen': expected 3 strings, got 2"):
        convert("rm-bench", path)


def test_judgebench(convert):
    law, math = convert("judgebench", "judgebench.jsonl")
    assert law.id == "judgebench-5d0b8a1e-0000-4c1a-9e7e-000000000001"
    assert law.category == "mmlu-pro-law" and law.subset == "mmlu-pro"
    assert law.chosen == [assistant("The answer is (B).")] and law.rejected == [assistant("The answer is (A).")]
    assert law.metadata == {"label": "A>B", "chosen_position": "A", "response_model": "gpt-4o-2024-05-13",
                            "original_id": 812}
    assert math.chosen == [assistant("3 * 4 = 12")] and math.subset == "livebench-math"
    assert math.metadata["chosen_position"] == "B" and "original_id" not in math.metadata


def test_judgebench_bad_label(tmp_path, convert):
    path = tmp_path / "jb.jsonl"
    path.write_text('{"pair_id": "x", "question": "q", "response_A": "a", "response_B": "b", "label": "A=B"}\n')
    with pytest.raises(DataError) as exc:
        convert("judgebench", path)
    assert str(exc.value) == f"{path}, line 1, field 'label': expected 'A>B' or 'B>A', got 'A=B'"


@pytest.mark.shared
def test_real_judgebench(shared_data, convert):
    samples = convert("judgebench", shared_data / "bench/judgebench/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl.gz")
    assert len(samples) == 350 and len({s.id for s in samples}) == 350
    assert collections.Counter(s.subset for s in samples) == {
        "mmlu-pro": 154, "livebench-reasoning": 98, "livebench-math": 56, "livecodebench": 42}
    assert collections.Counter(s.metadata["label"] for s in samples) == {"A>B": 193, "B>A": 157}
    assert len({s.category for s in samples}) == 17


@pytest.mark.shared
@pytest.mark.parametrize("domain, rows", [("chat", 129), ("code", 228), ("safety-refuse", 284),
                                          ("safety-response", 157)])
def test_real_rm_bench(shared_data, convert, domain, rows):
    samples = convert("rm-bench", shared_data / f"bench/rm-bench/{domain}_filtered.json.gz", options={"domain": domain})
    assert len(samples) == rows and len({s.id for s in samples}) == rows
    assert all(s.subset == domain and len(s.candidates) == 6 and s.ranks == [1, 1, 1, 2, 2, 2] for s in samples)


@pytest.mark.parametrize("name, domain", [("math_filtered.json", "math"), ("code_filtered.json.gz", "code"),
                                          ("safety-refuse_filtered.json", "safety-refuse"), ("rmb.json", None)])
def test_rm_bench_domain_from_the_upstream_file_name(tmp_path, convert, name, domain):
    """The per-domain files name their domain only in the file name (math's subset names are unknown here)."""
    import gzip

    rows = json.dumps([{"id": 3, "subset": "mystery", "prompt": "p", "chosen": ["a", "b", "c"],
                        "rejected": ["d", "e", "f"]}])
    path = tmp_path / name
    path.write_bytes(gzip.compress(rows.encode()) if name.endswith(".gz") else rows.encode())
    (s,) = convert("rm-bench", path)
    assert s.subset == (domain or "mystery") and s.category == "mystery"
    assert s.id == (f"rm-bench-{domain}-3" if domain else "rm-bench-3")
