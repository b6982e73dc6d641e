"""`rmforge data ...` end to end through the real command: contract forms, exit codes, no partial outputs."""

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rmforge.cli import app
from rmforge.data.io import load_samples

runner = CliRunner()
PAIRS = [{"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}", "subset": "s"}
         for i in range(6)]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_convert_follows_output_extension_and_refuses_overwrite(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", PAIRS)
    for name in ("out.jsonl", "out.parquet"):
        res = invoke("data", "convert", "--from", "preference", src, tmp_path / name)
        assert res.exit_code == 0, res.output
        assert "converted 6 samples (6 pair)" in res.output
        assert [s.chosen[0].content for s in load_samples(tmp_path / name)] == [r["chosen"] for r in PAIRS]
    res = invoke("data", "convert", "--from", "preference", src, tmp_path / "out.jsonl")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert invoke("data", "convert", "--from", "preference", src, tmp_path / "out.jsonl", "--overwrite").exit_code == 0


def test_convert_field_mapping(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"q": "x", "good": "a", "bad": "b"}])
    res = invoke("data", "convert", "--from", "preference", src, tmp_path / "o.jsonl",
                 "--field", "prompt=q", "--field", "chosen=good", "--field", "rejected=bad")
    assert res.exit_code == 0, res.output
    s = load_samples(tmp_path / "o.jsonl")[0]
    assert (s.prompt[0].content, s.chosen[0].content, s.rejected[0].content) == ("x", "a", "b")


@pytest.mark.parametrize("content, fmt, expected", [
    (b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"\n', "preference",
     r"in.jsonl, line 2: malformed JSON"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n', "preference",
     r"in.jsonl, line 2, field 'rejected'"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": 5, "rejected": "b"}\n',
     "preference", r"in.jsonl, line 2, field 'chosen'"),
    (b'{"prompt": "p", "chosen": "a", "rejected": "\xff"}\n', "preference", r"in.jsonl, line 1: invalid UTF-8"),
    (b"", "preference", r"in.jsonl: file is empty"),
    (b'{"chosen": "x", "rejected": "y"}\n', "hh-rlfh", r"unknown converter 'hh-rlfh'.*did you mean 'hh-rlhf'"),
    (b'{"chosen": "\\n\\nHuman: hi", "rejected": "\\n\\nHuman: hi"}\n', "hh-rlhf", r"in.jsonl, line 1, field 'chosen'"),
])
def test_bad_input_names_file_line_field_and_leaves_no_output(tmp_path, content, fmt, expected):
    import re

    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out.jsonl"
    res = invoke("data", "convert", "--from", fmt, src, out)
    assert res.exit_code == 1, res.output
    assert re.search(expected, " ".join(res.output.split())), res.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_validate_exit_codes_and_json(tmp_path):
    good = write_jsonl(tmp_path / "in.jsonl", PAIRS)
    invoke("data", "convert", "--from", "preference", good, tmp_path / "good.jsonl")
    res = invoke("data", "validate", tmp_path / "good.jsonl", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
    bad = write_jsonl(tmp_path / "bad_in.jsonl", PAIRS + [{"prompt": "q", "chosen": "same", "rejected": "same"}])
    invoke("data", "convert", "--from", "preference", bad, tmp_path / "bad.jsonl")
    res = invoke("data", "validate", tmp_path / "bad.jsonl", "--json", tmp_path / "r2.json")
    assert res.exit_code == 1
    codes = {i["code"] for i in json.loads((tmp_path / "r2.json").read_text())["issues"]}
    assert "chosen_equals_rejected" in codes


@pytest.mark.parametrize("to, columns", [
    ("bt", {"prompt", "chosen", "rejected", "prompt_text", "chosen_text", "rejected_text", "margin", "tie"}),
    ("sft", {"messages"}),
    ("pairwise", {"input", "output", "metadata"}),
    ("verl", {"data_source", "prompt", "ability", "reward_model", "extra_info"}),
])
def test_export_contract(tmp_path, to, columns):
    src = write_jsonl(tmp_path / "in.jsonl", PAIRS)
    invoke("data", "convert", "--from", "preference", src, tmp_path / "s.parquet")
    res = invoke("data", "export", "--to", to, tmp_path / "s.parquet", tmp_path / f"{to}.parquet")
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / f"{to}.parquet")
    assert columns <= set(table.column_names) and table.num_rows == 6


def test_export_pointwise(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p", "response": "r", "score": 3}])
    invoke("data", "convert", "--from", "pointwise", "--option", "scale=0,4", src, tmp_path / "s.jsonl")
    res = invoke("data", "export", "--to", "pointwise", tmp_path / "s.jsonl", tmp_path / "pw.jsonl")
    assert res.exit_code == 0, res.output
    row = json.loads((tmp_path / "pw.jsonl").read_text())
    assert row["output"] == "<score>3</score>" and row["label"] == 3


def recipe(tmp_path, rows, extra=""):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    path = tmp_path / "r.yaml"
    path.write_text(f"kind: data\nsources: [{{path: {src}}}]\nsplit: {{validation: 0.5, seed: 1}}\n"
                    f"exports: [{{to: bt, format: jsonl}}]\noutput_dir: {tmp_path / 'out'}\n{extra}")
    return path


def test_build_with_overrides_and_overwrite(tmp_path):
    path = recipe(tmp_path, PAIRS)
    res = invoke("data", "build", path, "split.validation=2", "name=demo")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["name"] == "demo" and summary["splits"] == {"train": 4, "validation": 2}
    assert len((tmp_path / "out" / "bt" / "validation.jsonl").read_text().splitlines()) == 2
    assert invoke("data", "build", path).exit_code == 1  # existing output, no --overwrite
    assert invoke("data", "build", path, "--overwrite").exit_code == 0


def test_build_failing_validation_writes_nothing(tmp_path):
    path = recipe(tmp_path, PAIRS + [{"prompt": "q", "chosen": "same", "rejected": "same"}])
    res = invoke("data", "build", path)
    assert res.exit_code == 1 and "validation found errors" in res.output
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_build_unknown_key_suggests(tmp_path):
    path = recipe(tmp_path, PAIRS)
    res = invoke("data", "build", path, "splitt.seed=3")
    assert res.exit_code == 1 and "did you mean 'split'" in res.output


def test_converters_listed():
    res = invoke("data", "converters")
    for name in ("hh-rlhf", "helpsteer2-pointwise", "helpsteer2-pairwise", "ultrafeedback", "rewardbench",
                 "rewardbench2", "rm-bench", "judgebench", "preference", "pointwise"):
        assert name in res.output


def test_real_hh_rlhf_convert_and_build(tmp_path, shared_data):
    res = invoke("data", "convert", "--from", "hh-rlhf", shared_data / "hh-rlhf-harmless-base.eval.jsonl.gz",
                 tmp_path / "eval.parquet")
    assert res.exit_code == 0, res.output
    samples = load_samples(tmp_path / "eval.parquet")
    assert len(samples) == 512 and all(s.prompt and s.chosen != s.rejected for s in samples)
    res = invoke("data", "build", "recipes/data/hh-rlhf.yaml", f"output_dir={tmp_path / 'hh'}")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "hh" / "summary.json").read_text())
    assert summary["loaded"][0]["samples"] == 1800 and sum(summary["splits"].values()) > 1700


# ---------------------------------------------------------------- feedback (issue 16)

def test_convert_accepts_a_utf8_bom(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in PAIRS).encode())
    res = invoke("data", "convert", "--from", "preference", src, tmp_path / "out.jsonl")
    assert res.exit_code == 0, res.output
    assert [s.prompt[0].content for s in load_samples(tmp_path / "out.jsonl")] == [r["prompt"] for r in PAIRS]


def test_convert_warns_about_empty_responses(tmp_path):
    rows = PAIRS[:3] + [{"prompt": "q", "chosen": "", "rejected": "b"},
                        {"prompt": "r", "chosen": "a", "rejected": [{"role": "assistant", "content": "  "}]}]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    res = invoke("data", "convert", "--from", "preference", src, tmp_path / "out.jsonl")
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "warning: 2 samples have an empty response (first: preference-4, preference-5)" in text
    clean = invoke("data", "convert", "--from", "preference", write_jsonl(tmp_path / "ok.jsonl", PAIRS),
                   tmp_path / "ok_out.jsonl")
    assert "empty response" not in clean.output


def test_build_summary_warns_about_kept_empty_responses(tmp_path):
    path = recipe(tmp_path, PAIRS + [{"prompt": "q", "chosen": "", "rejected": "b"}],
                  extra="validate: {fail_on_error: false}\n")
    res = invoke("data", "build", path)
    assert res.exit_code == 0, res.output
    assert "warning: 1 samples have an empty response (first: preference-7)" in " ".join(res.stdout.split())


def test_square_brackets_survive_in_messages(tmp_path):
    """Rich markup swallowed '[...]' in paths, subset names and errors."""
    folder = tmp_path / "run[1]"
    folder.mkdir()
    src = write_jsonl(folder / "in[2].jsonl", [dict(r, subset="[chat]") for r in PAIRS])
    out = folder / "out[3].jsonl"
    res = invoke("data", "convert", "--from", "preference", src, out)
    assert res.exit_code == 0, res.output
    assert f"converted 6 samples (6 pair) from {src} -> {out}\n" == res.stdout  # one line, not wrapped
    res = invoke("data", "validate", out, "--json", folder / "r[4].json")
    assert res.exit_code == 0, res.output
    assert "[chat]" in res.stdout and "r[4].json" in res.stdout
    res = invoke("data", "convert", "--from", "[bold]x[/bold]", src, folder / "o2.jsonl")
    assert res.exit_code == 1 and "unknown converter '[bold]x[/bold]'" in res.stderr


def test_validate_on_a_raw_file_names_the_converter_to_use(tmp_path):
    src = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    res = invoke("data", "validate", src)
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: {src}, line 1, field 'id': not a canonical rmforge sample: Field required; "
                                 "if the file has another layout, pass data.format=preference (one of: ")
    assert res.stderr.rstrip().endswith("or convert it first: rmforge data convert --from preference FILE OUT.jsonl")


def test_train_bt_on_a_generic_file_hints_data_format(tmp_path):
    """`rmforge train bt data.train=pairs.jsonl` without data.format: the error names the flag and its values."""
    from rmforge.data.registry import CONVERTERS

    src = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    res = invoke("train", "bt", f"data.train={src}", f"output_dir={tmp_path / 'run'}")
    assert res.exit_code == 1, res.output
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.output
    assert f"pass data.format=preference (one of: {', '.join(sorted(CONVERTERS))})" in res.stderr
    assert not (tmp_path / "run").exists()
    hh = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: hi\n\nAssistant: a",
                                              "rejected": "\n\nHuman: hi\n\nAssistant: b"}])
    res = invoke("train", "bt", f"data.train={hh}", f"output_dir={tmp_path / 'run'}")
    assert "pass data.format=hh-rlhf (one of:" in res.stderr


def test_build_summary_keeps_square_brackets_and_refuses_foreign_folder(tmp_path):
    path = recipe(tmp_path, PAIRS, "name: '[red]demo[/red]'\n")
    res = invoke("data", "build", path)
    assert res.exit_code == 0, res.output
    assert "[red]demo[/red]" in res.output  # rich markup used to swallow it
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    res = invoke("data", "build", path, f"output_dir={foreign}", "--overwrite")
    assert res.exit_code == 1 and "rmforge did not create it" in res.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
