"""End to end against a real Label Studio on loopback: push, annotate as two users through the API, pull, agreement."""

import json

import pytest
from typer.testing import CliRunner

from rmforge.annotate.agreement import cohen_kappa
from rmforge.cli import app
from rmforge.data.io import load_samples

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]
runner = CliRunner()


def cli(*argv):
    result = runner.invoke(app, ["annotate", *argv])
    return result.exit_code, result.output


def choose(client, task, value, lead_time, extra=()):
    client.annotations.create(id=task.id, lead_time=lead_time, result=[
        {"from_name": "choice", "to_name": "prompt", "type": "choices", "value": {"choices": [value]}}, *extra])


def test_push_annotate_pull_agreement(label_studio, assets, tmp_path):
    from label_studio_sdk import LabelStudio

    url, admin_token, bob_token = label_studio
    conn = ["--url", url, "--token", admin_token]
    pairs = assets / "annotate" / "pairs.jsonl"
    code, out = cli("push", str(pairs), "--project", "prefs", "--kind", "pairwise", *conn)
    assert code == 0 and "6 tasks imported, 0 already present" in out, out
    code, out = cli("push", str(pairs), "--project", "prefs", "--kind", "pairwise", *conn)
    assert code == 0 and "0 tasks imported, 6 already present" in out, out  # re-push adds nothing

    admin, bob = LabelStudio(base_url=url, api_key=admin_token), LabelStudio(base_url=url, api_key=bob_token)
    project = next(p for p in admin.projects.list() if p.title == "prefs")
    tasks = list(admin.tasks.list(project=project.id, fields="all"))
    assert sorted(t.data["rmforge_id"] for t in tasks) == [f"p{i}" for i in range(6)]
    for task in tasks:
        pushed_chosen = "AB"[task.data["rmforge_order"].index(0)]
        other = "AB"[task.data["rmforge_order"].index(1)]
        choose(admin, task, pushed_chosen, 4.0, [{"from_name": "strength", "to_name": "prompt", "type": "rating",
                                                  "value": {"rating": 3}}])
        sid = task.data["rmforge_id"]
        choose(bob, task, {"p1": other, "p2": "Tie"}.get(sid, pushed_chosen), 2.5)

    first, again = tmp_path / "pulled.jsonl", tmp_path / "again.jsonl"
    code, out = cli("pull", "--project", "prefs", "--out", str(first), "--kind", "pairwise", *conn)
    assert code == 0 and "pulled 6 samples (12 annotations)" in out, out
    assert cli("pull", "--project", "prefs", "--out", str(again), *conn)[0] == 0
    assert first.read_bytes() == again.read_bytes()  # a pull is repeatable

    pushed = {s.id: s for s in load_samples(pairs)}
    pulled = {s.id: s for s in load_samples(first)}
    for sid, s in pulled.items():
        assert {r["annotator"] for r in s.metadata["annotations"]} == {"admin@rmforge.local", "bob@rmforge.local"}
        if sid in ("p1", "p2"):  # split votes (first/second, first/tie) -> tie with the default tie policy
            assert s.tie and s.chosen == pushed[sid].chosen
        else:  # order un-swapped: the pushed chosen response wins whatever position it was shown in
            assert (s.chosen, s.rejected, s.tie, s.margin) == (pushed[sid].chosen, pushed[sid].rejected, False, 3.0)
    admin_labels = {r["label"] for s in pulled.values() for r in s.metadata["annotations"]
                    if r["annotator"].startswith("admin")}
    assert admin_labels == {"first"}

    report_path = tmp_path / "agreement.json"
    code, out = cli("agreement", str(first), "--json", str(report_path))
    assert code == 0 and "position bias" in out, out
    report = json.loads(report_path.read_text())
    pref = report["measures"]["preference"]
    assert pref["percent_agreement"] == pytest.approx(4 / 6, abs=1e-6)
    assert pref["cohen"][0]["kappa"] == pytest.approx(cohen_kappa(["first"] * 6, ["first"] * 4 + ["second", "tie"]))
    assert [item["id"] for item in report["low_agreement"]] == ["p1", "p2"]

    # bad input: wrong kind, wrong token, unknown project; the pulled file is untouched
    code, out = cli("pull", "--project", "prefs", "--out", str(first), "--kind", "pointwise", *conn)
    assert code == 1 and "was created for --kind pairwise, not pointwise" in out
    code, out = cli("pull", "--project", "prefs", "--out", str(first), "--url", url, "--token", "wrong-token")
    assert code == 1 and "rejected the API token" in out
    code, out = cli("pull", "--project", "nope", "--out", str(first), *conn)
    assert code == 1 and "no project titled 'nope'" in out
    assert first.read_bytes() == again.read_bytes()


def test_pointwise_and_ranking_projects(label_studio, assets, tmp_path):
    from label_studio_sdk import LabelStudio

    url, admin_token, bob_token = label_studio
    conn = ["--url", url, "--token", admin_token]
    for kind, name in (("pointwise", "points"), ("ranking", "ranks")):
        code, out = cli("push", str(assets / "annotate" / f"{name}.jsonl"), "--project", name, "--kind", kind, *conn)
        assert code == 0, out
    bob = LabelStudio(base_url=url, api_key=bob_token)
    by_title = {p.title: p.id for p in bob.projects.list()}
    for task in bob.tasks.list(project=by_title["points"], fields="all"):
        bob.annotations.create(id=task.id, result=[
            {"from_name": attr, "to_name": "response", "type": "choices", "value": {"choices": [v]}}
            for attr, v in (("helpfulness", "2"), ("correctness", "3"))])
    for task in bob.tasks.list(project=by_title["ranks"], fields="all"):
        order = task.data["rmforge_order"]
        bob.annotations.create(id=task.id, result=[
            {"from_name": f"rank_{k}", "to_name": f"r{k}", "type": "choices", "value": {"choices": [str(order[k] + 1)]}}
            for k in range(3)])
    assert cli("pull", "--project", "points", "--out", str(tmp_path / "p.parquet"), *conn)[0] == 0
    points = load_samples(tmp_path / "p.parquet")
    assert len(points) == 4 and all(s.scores == {"helpfulness": 2.0, "correctness": 3.0} for s in points)
    assert cli("pull", "--project", "ranks", "--out", str(tmp_path / "r.jsonl"), *conn)[0] == 0
    assert [s.ranks for s in load_samples(tmp_path / "r.jsonl")] == [[1, 2, 3]] * 3
    code, out = cli("push", str(assets / "annotate" / "pairs.jsonl"), "--project", "points", "--kind", "pairwise", *conn)
    assert code == 1 and "was created for --kind pointwise, not pairwise" in out

