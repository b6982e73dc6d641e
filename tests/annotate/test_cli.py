"""``rmforge annotate`` without a server: agreement on a pulled file, connection errors, option checks."""

import json

from typer.testing import CliRunner

from rmforge.annotate.configs import ConfigSpec
from rmforge.annotate.pull import aggregate_samples, export_to_samples
from rmforge.annotate.server import free_port
from rmforge.annotate.tasks import build_tasks
from rmforge.cli import app
from rmforge.data.io import load_samples, write_samples

runner = CliRunner()


def invoke(*argv):
    result = runner.invoke(app, ["annotate", *argv], env={"LABEL_STUDIO_URL": "", "LABEL_STUDIO_API_KEY": ""})
    return result.exit_code, result.output


def test_agreement_cli_writes_json(assets, tmp_path):
    pairs = load_samples(assets / "annotate" / "pairs.jsonl")
    tasks, _ = build_tasks(pairs, "pairwise", seed=1)
    rows = [{"id": i, "data": t["data"], "annotations": [
        {"id": 10 * i + u, "completed_by": u, "lead_time": 1.0, "result": [
            {"from_name": "choice", "type": "choices", "value": {"choices": ["A" if (u == 1 or i % 2) else "B"]}}]}
        for u in (1, 2)]} for i, t in enumerate(tasks)]
    samples, _ = export_to_samples(rows, ConfigSpec("pairwise"), {1: "u1", 2: "u2"})
    samples, _ = aggregate_samples(samples, "pairwise")
    write_samples(tmp_path / "pulled.jsonl", samples)
    code, out = invoke("agreement", str(tmp_path / "pulled.jsonl"), "--json", str(tmp_path / "a.json"))
    assert code == 0, out
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["position_bias"]["u1"] == {"a": 6, "b": 0, "tie": 0, "a_share": 1.0, "p_value": 0.03125}
    assert report["measures"]["preference"]["units"] == 6 and "position bias" in out


def test_agreement_cli_needs_annotations(assets):
    code, out = invoke("agreement", str(assets / "annotate" / "pairs.jsonl"))
    assert code == 1 and "no sample carries metadata.annotations" in out


def test_unreachable_server_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    code, out = invoke("pull", "--project", "x", "--out", str(tmp_path / "o.jsonl"), "--url", url, "--token", "t")
    assert code == 1 and f"cannot reach Label Studio at {url}" in out
    assert not (tmp_path / "o.jsonl").exists()


def test_missing_connection_and_bad_options(assets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = invoke("pull", "--project", "x", "--out", "o.jsonl")
    assert code == 1 and "no Label Studio server given" in out
    code, out = invoke("push", str(assets / "annotate" / "pairs.jsonl"), "--project", "x", "--kind", "pairs")
    assert code == 1 and "--kind must be one of pairwise, pointwise, ranking (got 'pairs')" in out


def test_server_without_label_studio(tmp_path, monkeypatch):
    monkeypatch.setenv("RMFORGE_LABEL_STUDIO_BIN", str(tmp_path / "missing"))
    code, out = invoke("server", "--data-dir", str(tmp_path / "d"))
    assert code == 1 and "label-studio executable from RMFORGE_LABEL_STUDIO_BIN is not an executable file" in out
