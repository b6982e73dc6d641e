"""Configs, samples -> tasks and export -> samples, without a server (exports built like Label Studio's)."""

import pytest

from rmforge.annotate.configs import ConfigSpec, build_config, config_kind, pointwise_config
from rmforge.annotate.pull import aggregate_samples, export_to_samples
from rmforge.annotate.tasks import build_tasks, infer_spec
from rmforge.data.io import load_samples
from rmforge.errors import ConfigError, DataError


@pytest.fixture
def pairs(assets):
    return load_samples(assets / "annotate" / "pairs.jsonl")


def choice(value, name="choice"):
    return {"from_name": name, "to_name": "prompt", "type": "choices", "value": {"choices": [value]}}


def export(tasks, annotate):
    """Label Studio's JSON export layout: annotate(task_data, user) -> result list (or None)."""
    out, ann_id = [], 0
    for tid, task in enumerate(tasks, 1):
        anns = []
        for uid in (1, 2):
            result = annotate(task["data"], uid)
            if result is not None:
                ann_id += 1
                anns.append({"id": ann_id, "completed_by": uid, "result": result, "lead_time": 1.5 * uid,
                             "was_cancelled": False})
        out.append({"id": tid, "data": task["data"], "annotations": anns})
    return out


USERS = {1: "alice@x", 2: "bob@x"}


@pytest.mark.parametrize("spec", [ConfigSpec("pairwise", extras=("strength", "comment")), ConfigSpec("pairwise"),
                                  ConfigSpec("pointwise", attributes=("helpfulness", "verbosity"), scale=(0, 4)),
                                  ConfigSpec("pointwise", attributes=("score",), scale=(0, 100)),
                                  ConfigSpec("ranking", n_candidates=3)])
def test_config_round_trip(spec):
    assert config_kind(build_config(spec)) == spec


def test_config_kind_rejects_foreign_xml_and_bad_specs():
    assert config_kind('<View><Text name="text" value="$text"/></View>') is None
    assert config_kind("not xml") is None
    with pytest.raises(ConfigError, match="plain identifier"):
        pointwise_config(["two words"], (1, 5))
    with pytest.raises(ConfigError, match="greater than min"):
        pointwise_config(["x"], (3, 3))


def test_tasks_randomise_order_deterministically(pairs):
    tasks, skipped = build_tasks(pairs, "pairwise", seed=0)
    again, _ = build_tasks(pairs, "pairwise", seed=0)
    assert tasks == again and skipped == 0
    orders = [t["data"]["rmforge_order"] for t in tasks]
    assert [0, 1] in orders and [1, 0] in orders  # both orders occur in 6 tasks with seed 0
    for task, sample in zip(tasks, pairs):
        shown = {"a": task["data"]["a"], "b": task["data"]["b"]}
        assert shown["ab"[task["data"]["rmforge_order"].index(0)]] == sample.chosen[0].content
    fixed, _ = build_tasks(pairs, "pairwise", randomize=False)
    assert all(t["data"]["rmforge_order"] == [0, 1] for t in fixed)


def test_tasks_skip_present_ids_and_refuse_duplicates_and_wrong_kind(pairs):
    tasks, skipped = build_tasks(pairs, "pairwise", skip_ids={"p0", "p3"})
    assert skipped == 2 and [t["data"]["rmforge_id"] for t in tasks] == ["p1", "p2", "p4", "p5"]
    with pytest.raises(DataError, match=r"in.jsonl, sample 2, field 'id': duplicate sample id 'p0'"):
        build_tasks([pairs[0], pairs[0]], "pairwise", source="in.jsonl")
    with pytest.raises(DataError, match="sample 1, field 'kind': sample 'p0' is a pair sample; --kind pointwise"):
        build_tasks(pairs, "pointwise")


def test_pull_unswaps_order_and_round_trips(pairs):
    tasks, _ = build_tasks(pairs, "pairwise", seed=3)
    # both annotators pick the position showing the pushed 'chosen' response
    rows = export(tasks, lambda d, u: [choice("AB"[d["rmforge_order"].index(0)])])
    samples, counts = export_to_samples(rows, ConfigSpec("pairwise"), USERS)
    assert counts == {"tasks": 6, "annotations": 12, "annotated_tasks": 6}
    labels = {r["label"] for s in samples for r in s.metadata["annotations"]}
    assert labels == {"first"}
    out, dropped = aggregate_samples(samples, "pairwise")
    assert dropped == 0
    for before, after in zip(pairs, out):
        assert (after.chosen, after.rejected, after.tie) == (before.chosen, before.rejected, False)
        assert after.metadata["annotation"] == {"method": "majority", "annotators": 2, "label": "first",
                                                "votes": {"first": 2}}
        assert [r["annotator"] for r in after.metadata["annotations"]] == ["alice@x", "bob@x"]
        assert [(r["lead_time"], r["annotator_id"]) for r in after.metadata["annotations"]] == [(1.5, 1), (3.0, 2)]


def test_pull_pairwise_votes_strength_and_tie_policy(pairs):
    tasks, _ = build_tasks(pairs[:2], "pairwise", randomize=False)

    def annotate(d, uid):
        if d["rmforge_id"] == "p0":  # both prefer B (the pushed 'rejected'), strengths 2 and 3
            return [choice("B"), {"from_name": "strength", "type": "rating", "value": {"rating": uid + 1}}]
        return [choice("A" if uid == 1 else "B")]  # split vote

    samples, _ = export_to_samples(export(tasks, annotate), ConfigSpec("pairwise"), USERS)
    out, dropped = aggregate_samples(samples, "pairwise", tie_policy="tie")
    assert out[0].chosen == pairs[0].rejected and out[0].margin == 2.5 and not out[0].tie
    assert out[0].metadata["annotation_orientation"] == "swapped"
    assert out[1].tie and out[1].chosen == pairs[1].chosen and dropped == 0
    again, _ = aggregate_samples(out, "pairwise")  # re-aggregating an aggregated file changes nothing
    assert [s.model_dump() for s in again] == [s.model_dump() for s in out]
    kept, dropped = aggregate_samples(samples, "pairwise", tie_policy="drop")
    assert [s.id for s in kept] == ["p0"] and dropped == 1
    ds, _ = aggregate_samples(samples, "pairwise", method="dawid-skene")
    assert 0 < ds[0].metadata["annotation"]["confidence"] <= 1


def test_pull_counts_cancelled_and_unannotated_and_rejects_missing_choice(pairs):
    tasks, _ = build_tasks(pairs[:3], "pairwise")
    rows = export(tasks, lambda d, u: [choice("A")] if d["rmforge_id"] == "p0" else None)
    rows[1]["annotations"] = [{"id": 99, "completed_by": 1, "result": [], "was_cancelled": True}]
    samples, counts = export_to_samples(rows, ConfigSpec("pairwise"), USERS)
    assert [s.id for s in samples] == ["p0"]
    assert counts == {"tasks": 3, "annotations": 2, "annotated_tasks": 1, "cancelled_annotations": 1,
                      "unannotated_tasks": 2}
    rows[0]["annotations"][1]["result"] = [{"from_name": "strength", "type": "rating", "value": {"rating": 2}}]
    with pytest.raises(DataError, match=r"task 1 \(sample 'p0'\), annotation 2 by bob@x: no 'choice' selected"):
        export_to_samples(rows, ConfigSpec("pairwise"), USERS)


def test_pull_pointwise_and_ranking(assets):
    points = load_samples(assets / "annotate" / "points.jsonl")
    spec = infer_spec("pointwise", points)
    assert spec == ConfigSpec("pointwise", attributes=("helpfulness", "correctness"), scale=(0, 4))
    tasks, _ = build_tasks(points, "pointwise")
    rows = export(tasks, lambda d, u: [choice(str(u + 1), "helpfulness"), choice("4", "correctness")])
    samples, _ = export_to_samples(rows, spec, USERS)
    out, _ = aggregate_samples(samples, "pointwise", spec=spec)
    assert out[0].scores == {"helpfulness": 2.5, "correctness": 4.0} and out[0].scale.max == 4

    ranks = load_samples(assets / "annotate" / "ranks.jsonl")
    spec = infer_spec("ranking", ranks)
    tasks, _ = build_tasks(ranks, "ranking", seed=1)

    def annotate(d, uid):  # rank the pushed candidates 1, 2, 3 wherever they are shown
        return [choice(str(d["rmforge_order"][k] + 1), f"rank_{k}") for k in range(3)]

    samples, _ = export_to_samples(export(tasks, annotate), spec, USERS)
    out, _ = aggregate_samples(samples, "ranking")
    assert all(s.ranks == [1, 2, 3] for s in out)
    assert any(r["ranks_shown"] != [1, 2, 3] for s in samples for r in s.metadata["annotations"])
    with pytest.raises(ConfigError, match="not rankings"):
        aggregate_samples(samples, "ranking", method="dawid-skene")


def test_pulled_pairs_feed_data_build_sources(pairs, tmp_path):
    from rmforge.data.io import write_samples
    from rmforge.data.sources import SourceConfig, load_source

    tasks, _ = build_tasks(pairs, "pairwise", randomize=False)
    rows = export(tasks, lambda d, u: [choice("B" if d["rmforge_id"] == "p0" else "A")])
    out, _ = aggregate_samples(export_to_samples(rows, ConfigSpec("pairwise"), USERS)[0], "pairwise")
    write_samples(tmp_path / "pulled.jsonl", out)
    loaded = list(load_source(SourceConfig(path=str(tmp_path / "pulled.jsonl"), converter="preference")))
    assert [(s.chosen, s.rejected, s.tie) for s in loaded] == [(s.chosen, s.rejected, s.tie) for s in out]
    assert [s.id for s in loaded] == [f"preference-{s.id}" for s in out]  # the converter prefixes ids
    assert loaded[0].chosen == pairs[0].rejected
