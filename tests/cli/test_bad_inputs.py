"""Bad-input corpus (issue 16, "Bad input and faults"): every malformed file, bad config, bad override
and bad output path in ``tests/assets/bad/`` gives exactly one error line on stderr, exit status 1 (data,
output and configuration errors alike, as issue 16 asks; ``ConfigError.exit_code`` was 2), no
traceback, no uncaught exception and no partial output.

The commands run in-process through typer's CliRunner (the real ``rmforge`` app), from the repository
root so that the recipes' relative source paths resolve.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmforge.cli import app

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "assets" / "bad"
FILES = BAD / "files"
CONFIGS = BAD / "configs"
OK_RECIPE = BAD / "ok.yaml"
runner = CliRunner()

# ------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)


def tree(folder: Path) -> set[str]:
    """Every path under ``folder`` (hidden temporary files included)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def invoke(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(res, code: int, pattern: str) -> str:
    """Exit ``code``, no uncaught exception, no traceback, one stderr line ``error: ...`` matching ``pattern``."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert res.exit_code == code, (res.exit_code, res.output)
    return lines[0]


def readonly_folder(tmp_path: Path) -> Path:
    """A folder nothing can be written into: chmod 0555, or (as root, who ignores modes) a sysfs folder."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except OSError:
        return ro
    (ro / "probe").unlink()
    for candidate in (Path("/sys/kernel"), Path("/proc/sys")):
        try:
            (candidate / "rmforge-probe").touch()
        except OSError:
            return candidate
    pytest.skip("no unwritable folder available (root without sysfs)")


# ------------------------------------------------------------------ malformed files

CONVERT = "convert"    # rmforge data convert --from preference FILE OUT.jsonl
POINTWISE = "pointwise"  # rmforge data convert --from pointwise FILE OUT.jsonl
VALIDATE = "validate"  # rmforge data validate FILE

FILE_CASES = [
    # jsonl
    ("truncated.jsonl", CONVERT, r"truncated\.jsonl, line 2: malformed JSON"),
    ("not_object.jsonl", CONVERT, r"not_object\.jsonl, line 2: expected a JSON object, got array"),
    ("null_line.jsonl", CONVERT, r"null_line\.jsonl, line 2: expected a JSON object, got null"),
    ("missing_rejected.jsonl", CONVERT, r"missing_rejected\.jsonl, line 2, field 'rejected': missing required"),
    ("chosen_int.jsonl", CONVERT, r"chosen_int\.jsonl, line 2, field 'chosen'"),
    ("prompt_object.jsonl", CONVERT, r"prompt_object\.jsonl, line 2, field 'prompt'"),
    ("bad_role.jsonl", CONVERT, r"bad_role\.jsonl, line 2, field 'chosen.*'"),
    ("message_no_content.jsonl", CONVERT, r"message_no_content\.jsonl, line 2, field 'chosen.*'"),
    ("negative_margin.jsonl", CONVERT, r"negative_margin\.jsonl, line 2, field 'margin'"),
    ("tie_not_bool.jsonl", CONVERT, r"tie_not_bool\.jsonl, line 2, field 'tie'"),
    ("bad_utf8.jsonl", CONVERT, r"bad_utf8\.jsonl, line 2: invalid UTF-8"),
    ("nested.jsonl", CONVERT, r"nested\.jsonl, line 2: JSON nested too deeply"),
    ("nested_line.jsonl", CONVERT, r"nested_line\.jsonl, line 2: JSON nested too deeply"),
    ("lone_surrogate.jsonl", CONVERT, r"lone_surrogate\.jsonl, line 2, field 'chosen.*lone surrogate \\ud800"),
    ("plain_as.jsonl.gz", CONVERT, r"plain_as\.jsonl\.gz: not a gzip file"),
    ("truncated.jsonl.gz", CONVERT, r"truncated\.jsonl\.gz.*: gzip data ends early"),
    ("empty.jsonl", CONVERT, r"empty\.jsonl: file is empty"),
    ("blank_lines.jsonl", CONVERT, r"blank_lines\.jsonl: file is empty"),
    ("unknown_extension.txt", CONVERT, r"unknown_extension\.txt: unknown file format 'txt'"),
    ("pointwise_score_text.jsonl", POINTWISE, r"pointwise_score_text\.jsonl, line 1, field 'score'"),
    # json
    ("truncated.json", CONVERT, r"truncated\.json, line 1: malformed JSON"),
    ("scalar.json", CONVERT, r"scalar\.json: expected a JSON array of objects, got number"),
    ("array_of_strings.json", CONVERT, r"array_of_strings\.json, item 1: expected a JSON object, got string"),
    ("empty.json", CONVERT, r"empty\.json.*: file is empty"),
    ("bad_utf8.json", CONVERT, r"bad_utf8\.json, line 1: invalid UTF-8"),
    ("nested.json", CONVERT, r"nested\.json: JSON nested too deeply"),
    ("lone_surrogate.json", CONVERT, r"lone_surrogate\.json, item 1, field 'prompt.*lone surrogate \\udfff"),
    # csv / tsv
    ("ragged.csv", CONVERT, r"ragged\.csv, line 3: row has 4 fields, header has 3"),
    ("ragged.tsv", CONVERT, r"ragged\.tsv, line 3: row has 4 fields, header has 3"),
    ("missing_column.csv", CONVERT, r"missing_column\.csv, line 2, field 'rejected': missing required"),
    ("header_only.csv", CONVERT, r"header_only\.csv: file is empty"),
    ("bad_utf8.csv", CONVERT, r"bad_utf8\.csv, line 3: invalid UTF-8"),
    ("margin_text.csv", CONVERT, r"margin_text\.csv, line 2, field 'margin'"),
    # parquet
    ("not_parquet.parquet", CONVERT, r"not_parquet\.parquet: not a readable parquet file"),
    ("not_parquet.parquet", VALIDATE, r"not_parquet\.parquet: not a readable parquet file"),
    # canonical files for `data validate`
    ("canonical_bad_kind.jsonl", VALIDATE, r"canonical_bad_kind\.jsonl, line 1: .*needs both 'chosen' and 'rejected'"),
    ("canonical_raw_layout.jsonl", VALIDATE,
     r"canonical_raw_layout\.jsonl, line 1, field 'id'.*not a canonical.*--from preference"),
    ("canonical_lone_surrogate.jsonl", VALIDATE,
     r"canonical_lone_surrogate\.jsonl, line 1, field 'chosen\.0\.content'.*lone surrogate"),
    ("canonical_extra_field.jsonl", VALIDATE, r"canonical_extra_field\.jsonl, line 1, field 'colour'"),
    ("canonical_nested.jsonl", VALIDATE, r"canonical_nested\.jsonl, line 2: JSON nested too deeply"),
    ("plain_as.jsonl.gz", VALIDATE, r"plain_as\.jsonl\.gz: not a gzip file"),
]


def _file_args(command: str, path, out: Path) -> list:
    if command == VALIDATE:
        return ["data", "validate", path]
    return ["data", "convert", "--from", "pointwise" if command == POINTWISE else "preference", path, out]


@pytest.mark.parametrize("name, command, pattern", FILE_CASES, ids=[f"{c}-{n}" for n, c, _ in FILE_CASES])
def test_malformed_file(tmp_path, name, command, pattern):
    res = invoke(*_file_args(command, FILES / name, tmp_path / "out.jsonl"))
    assert_one_line_error(res, 1, pattern)
    assert tree(tmp_path) == set()  # no output, no temporary file left behind


def _wrong_typed_parquet(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in" / "wrong_typed.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"id": ["a"], "chosen": pa.array([7], pa.int64()),
                             "rejected": [[{"role": "assistant", "content": "b"}]]}), path)
    return path


def _truncated_parquet(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in" / "truncated.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"prompt": ["p"] * 50, "chosen": ["a"] * 50, "rejected": ["b"] * 50}), path)
    path.write_bytes(path.read_bytes()[:-40])
    return path


def _missing_column_parquet(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in" / "no_rejected.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"prompt": ["p"], "chosen": ["a"]}), path)
    return path


def _empty_folder(tmp_path: Path) -> Path:
    (tmp_path / "in" / "data").mkdir(parents=True)
    return tmp_path / "in" / "data"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


def _typo_path(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return tmp_path / "in" / "trian.jsonl"


GENERATED_CASES = [
    (_wrong_typed_parquet, VALIDATE, r"wrong_typed\.parquet, row 1, field 'chosen'"),
    (_wrong_typed_parquet, CONVERT, r"wrong_typed\.parquet, row 1, field 'chosen'"),
    (_truncated_parquet, CONVERT, r"truncated\.parquet: not a readable parquet file"),
    (_missing_column_parquet, CONVERT, r"no_rejected\.parquet, row 1, field 'rejected': missing required"),
    (_empty_folder, CONVERT, r"data: no data files in this folder"),
    (_folder, VALIDATE, r"in: is a folder, not a file"),
    (_typo_path, CONVERT, r"trian\.jsonl: file or folder not found"),
    (_typo_path, VALIDATE, r"trian\.jsonl: file not found"),
]


@pytest.mark.parametrize("make, command, pattern", GENERATED_CASES,
                         ids=[f"{c}-{m.__name__.strip('_')}" for m, c, _ in GENERATED_CASES])
def test_generated_bad_file(tmp_path, make, command, pattern):
    path = make(tmp_path)
    before = tree(tmp_path)
    res = invoke(*_file_args(command, path, tmp_path / "out.jsonl"))
    assert_one_line_error(res, 1, pattern)
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ bad configs and recipes

SHOW, BUILD, TRAIN = "config show", "data build", "train bt"
CONFIG_CASES = [
    # YAML and the top level
    ("yaml_unclosed.yaml", SHOW, 1, r"yaml_unclosed\.yaml, line 3, column 1: invalid YAML: expected ',' or ']'"),
    ("yaml_tab_indent.yaml", SHOW, 1, r"yaml_tab_indent\.yaml, line 3, column 1: invalid YAML: found character '\\t'"),
    ("yaml_duplicate_colon.yaml", SHOW, 1, r"yaml_duplicate_colon\.yaml, line 2, column 8: invalid YAML: mapping"),
    ("top_list.yaml", SHOW, 1, r"top_list\.yaml: top level must be a mapping, got list"),
    ("top_scalar.yaml", SHOW, 1, r"top_scalar\.yaml: top level must be a mapping, got str"),
    ("empty.yaml", SHOW, 1, r"empty\.yaml: 'kind' must be one of .* \(got None\)"),
    ("no_kind.yaml", SHOW, 1, r"no_kind\.yaml: 'kind' must be one of"),
    ("kind_typo.yaml", SHOW, 1, r"kind_typo\.yaml: 'kind' must be one of .*did you mean 'data'"),
    ("kind_number.yaml", SHOW, 1, r"kind_number\.yaml: 'kind' must be one of .*\(got 5\)"),
    ("kind_list.yaml", SHOW, 1, r"kind_list\.yaml: 'kind' must be one of .*\(got \['data'\]\)"),
    ("bad_utf8.yaml", SHOW, 1, r"bad_utf8\.yaml: invalid UTF-8 at byte 20 \(line 2\)"),
    ("does_not_exist.yaml", SHOW, 1, r"does_not_exist\.yaml: file not found"),
    (".", SHOW, 1, r"is a folder, not a YAML file"),
    # data recipes: keys, types, ranges
    ("unknown_top_key.yaml", SHOW, 1, r"unknown_top_key\.yaml: \(top level\): unknown key 'sed'; did you mean 'seed'\?"),
    ("unknown_split_key.yaml", SHOW, 1, r"split: unknown key 'validaton'; did you mean 'validation'\?"),
    ("unknown_source_key.yaml", SHOW, 1, r"sources\.0: unknown key 'convertor'; did you mean 'converter'\?"),
    ("seed_text.yaml", SHOW, 1, r"seed: Input should be a valid integer"),
    ("sources_empty.yaml", SHOW, 1, r"sources: List should have at least 1 item"),
    ("sources_mapping.yaml", SHOW, 1, r"sources: Input should be a valid list"),
    ("sources_missing.yaml", SHOW, 1, r"sources: Field required"),
    ("source_two_origins.yaml", SHOW, 1, r"sources\.0: a source needs exactly one of .*\(got path and hf\)"),
    ("source_no_origin.yaml", SHOW, 1, r"sources\.0: a source needs exactly one of 'path', 'hf' or 'sql_url'$"),
    ("source_bad_file_format.yaml", SHOW, 1, r"sources\.0: file_format must be one of .*\(got 'xml'\)"),
    ("source_limit_negative.yaml", SHOW, 1, r"sources\.0\.limit: Input should be greater than or equal to 0"),
    ("source_batch_zero.yaml", SHOW, 1, r"sources\.0\.batch_size: Input should be greater than or equal to 1"),
    ("source_sql_no_table.yaml", SHOW, 1, r"exactly one of 'sql_table' or 'sql_query'"),
    ("source_hf_config_without_hf.yaml", SHOW, 1, r"'hf_config' only applies together with 'hf'"),
    ("split_negative.yaml", SHOW, 1, r"split\.validation: Input should be greater than or equal to 0"),
    ("split_sum_over_one.yaml", SHOW, 1, r"split: validation \+ test fractions add up to 1\.2 \(> 1\)"),
    ("split_ambiguous_float.yaml", SHOW, 1, r"'validation: 2\.0' is ambiguous"),
    ("split_bad_stratify.yaml", SHOW, 1, r"split\.stratify_by: Input should be 'none', 'subset'"),
    ("process_unknown_step.yaml", SHOW, 1, r"process\.0: Input tag 'shuffle' found using 'step' does not match"),
    ("process_no_step.yaml", SHOW, 1, r"process\.0: Unable to extract tag using discriminator 'step'"),
    ("process_bad_max_length.yaml", SHOW, 1, r"process\.0\.length_filter\.max_length: Input should be greater than 0"),
    ("process_bad_fraction.yaml", SHOW, 1, r"process\.0\.sample\.fraction: Input should be less than or equal to 1"),
    ("process_bad_probability.yaml", SHOW, 1, r"process\.0\.swap\.probability: Input should be less than or equal"),
    ("export_unknown_target.yaml", SHOW, 1, r"exports\.0\.to: Input should be 'bt', 'sft'"),
    ("export_bad_format.yaml", SHOW, 1, r"exports\.0\.format: Input should be 'jsonl' or 'parquet'"),
    ("sample_format_bad.yaml", SHOW, 1, r"sample_format: Input should be 'jsonl' or 'parquet'"),
    ("validate_not_bool.yaml", SHOW, 1, r"validate\.enabled: Input should be a valid boolean"),
    # the same kinds of mistakes reach `data build` unchanged
    ("unknown_top_key.yaml", BUILD, 1, r"\(top level\): unknown key 'sed'; did you mean 'seed'\?"),
    ("yaml_unclosed.yaml", BUILD, 1, r"yaml_unclosed\.yaml, line 3, column 1: invalid YAML"),
    ("bt_unknown_key.yaml", BUILD, 1, r"bt_unknown_key\.yaml: this is a 'kind: train-bt' recipe; this command reads 'kind: data'"),
    ("does_not_exist.yaml", BUILD, 1, r"does_not_exist\.yaml: file not found"),
    # valid recipes whose run fails (data errors: exit 1)
    ("source_missing_file.yaml", BUILD, 1, r"tests/assets/bad/no_such_file\.jsonl: file or folder not found"),
    ("source_unknown_converter.yaml", BUILD, 1, r"unknown converter 'hh-rlfh'.*did you mean 'hh-rlhf'\?"),
    ("source_bad_file.yaml", BUILD, 1, r"truncated\.jsonl, line 2: malformed JSON"),
    ("plugin_missing.yaml", BUILD, 1, r"cannot import plugin module 'no_such_rmforge_plugin'"),
    # train-bt recipes (refused while loading the config, before any model is built)
    ("bt_unknown_key.yaml", TRAIN, 1, r"bt_unknown_key\.yaml: \(top level\): unknown key 'modle'; did you mean 'model'\?"),
    ("bt_lr_text.yaml", TRAIN, 1, r"train\.lr: Input should be a valid number"),
    ("bt_epochs_zero.yaml", TRAIN, 1, r"train\.epochs: Input should be greater than 0"),
    ("bt_validation_fraction_one.yaml", TRAIN, 1, r"data\.validation_fraction: Input should be less than 1"),
    ("bt_limit_zero.yaml", TRAIN, 1, r"data\.limit: Input should be greater than or equal to 1"),
    ("bt_wrong_kind.yaml", TRAIN, 1, r"bt_wrong_kind\.yaml: this is a 'kind: data' recipe; this command reads 'kind: train-bt'"),
    ("does_not_exist.yaml", TRAIN, 1, r"does_not_exist\.yaml: file not found"),
]


@pytest.mark.parametrize("name, command, code, pattern", CONFIG_CASES,
                         ids=[f"{c.split()[-1]}-{n}" for n, c, _, _ in CONFIG_CASES])
def test_bad_config(tmp_path, name, command, code, pattern):
    path = CONFIGS / name if name != "." else CONFIGS
    extra = [f"output_dir={tmp_path / 'out'}"] if command != SHOW else []
    res = invoke(*command.split(), path, *extra)
    assert_one_line_error(res, code, pattern)
    assert tree(tmp_path) == set()


# ------------------------------------------------------------------ bad overrides

OVERRIDE_CASES = [
    (SHOW, ["novalue"], r"override 'novalue' is not of the form key=value"),
    (SHOW, ["=1"], r"override '=1' has an empty key part"),
    (SHOW, ["split..seed=1"], r"override 'split\.\.seed=1' has an empty key part"),
    (SHOW, ["seed=abc"], r"overrides?: seed: Input should be a valid integer|ok\.yaml: seed: Input should be"),
    (SHOW, ["seed=[1, 2"], r"seed: Input should be a valid integer"),
    (SHOW, ["seed.x=1"], r"ok\.yaml: seed: Input should be a valid integer"),
    (SHOW, ["name.first=x"], r"override key 'name\.first': 'name' is a string, not a section"),
    (SHOW, ["sources.0.path.x=1"], r"override key 'sources\.0\.path\.x': 'sources\.0\.path' is a string"),
    (SHOW, ["sources.5.path=x"], r"override key 'sources\.5': '5' is not an index of a list of 1"),
    (SHOW, ["sources.first.path=x"], r"override key 'sources\.first': 'first' is not an index of a list of 1"),
    (SHOW, ["split.validaton=0.1"], r"split: unknown key 'validaton'; did you mean 'validation'\?"),
    (SHOW, ["split.validation=-1"], r"split\.validation: Input should be greater than or equal to 0"),
    (SHOW, ["sources=5"], r"sources: Input should be a valid list"),
    (SHOW, ["exports.0.to=dpo"], r"exports\.0\.to: Input should be 'bt'"),
    (SHOW, ["process.0.step=dedup"], r"ok\.yaml: process: Input should be a valid list"),
    (SHOW, ["kind=train-bt"], r"ok\.yaml: \(top level\): unknown key 'name'; valid keys: "),
    (SHOW, ["sources.0.path=a.jsonl", "sources.0.hf=x/y"], r"sources\.0: a source needs exactly one of"),
    (TRAIN, ["train.lr=fast"], r"overrides: train\.lr: Input should be a valid number"),
    (TRAIN, ["nope=1"], r"overrides: \(top level\): unknown key 'nope'; valid keys: "),
    (TRAIN, ["train.batch_size=0"], r"train\.batch_size: Input should be greater than"),
    (TRAIN, ["data.format=[a, b]"], r"data\.format: Input should be a valid string"),
    (BUILD, ["seed=x"], r"seed: Input should be a valid integer"),
    (BUILD, ["sources.0.converter=prefrence"], r"unknown converter 'prefrence'.*did you mean 'preference'\?"),
    (BUILD, ["process=[{step: length_filter, tokenizer: tests/assets/bad, max_length: 10}]"],
     r"length_filter: cannot load tokenizer 'tests/assets/bad': "),
]


@pytest.mark.parametrize("command, overrides, pattern", OVERRIDE_CASES,
                         ids=[f"{c.split()[-1]}-{' '.join(o)}" for c, o, _ in OVERRIDE_CASES])
def test_bad_override(tmp_path, command, overrides, pattern):
    recipe = [] if command == TRAIN else [OK_RECIPE]
    extra = [f"output_dir={tmp_path / 'out'}"] if command == BUILD else []
    res = invoke(*command.split(), *recipe, *overrides, *extra)
    assert_one_line_error(res, 1, pattern)
    assert tree(tmp_path) == set()


# ------------------------------------------------------------------ bad output paths

GOOD = BAD / "good.jsonl"


def _out_existing_file(tmp):
    (tmp / "out.jsonl").write_text("keep me\n")
    return ["data", "convert", "--from", "preference", GOOD, tmp / "out.jsonl"], 1, r"out\.jsonl already exists"


def _out_is_folder(tmp):
    (tmp / "out.jsonl").mkdir()
    return ["data", "convert", "--from", "preference", GOOD, tmp / "out.jsonl"], 1, r"out\.jsonl is a folder"


def _out_parent_is_file(tmp):
    (tmp / "file").write_text("x")
    return (["data", "convert", "--from", "preference", GOOD, tmp / "file" / "out.jsonl"], 1,
            r"file is a file, not a folder")


def _out_bad_extension(tmp):
    return (["data", "convert", "--from", "preference", GOOD, tmp / "out.csv"], 1,
            r"output must end in \.jsonl, \.jsonl\.gz or \.parquet")


def _out_parquet_is_folder(tmp):
    (tmp / "out.parquet").mkdir()
    return ["data", "convert", "--from", "preference", GOOD, tmp / "out.parquet"], 1, r"out\.parquet is a folder"


def _export_is_folder(tmp):
    (tmp / "bt.jsonl").mkdir()
    return ["data", "export", "--to", "bt", FILES.parent / "canonical.jsonl", tmp / "bt.jsonl"], 1, r"bt\.jsonl is a folder"


def _export_existing(tmp):
    (tmp / "bt.jsonl").write_text("keep me\n")
    return (["data", "export", "--to", "bt", FILES.parent / "canonical.jsonl", tmp / "bt.jsonl"], 1,
            r"bt\.jsonl already exists")


def _export_unknown_target(tmp):
    return (["data", "export", "--to", "dpo", FILES.parent / "canonical.jsonl", tmp / "x.jsonl"], 1,
            r"unknown export format 'dpo' \(known: bt, pairwise, pointwise, sft, verl\)")


def _validate_json_is_folder(tmp):
    (tmp / "report.json").mkdir()
    return (["data", "validate", FILES.parent / "canonical.jsonl", "--json", tmp / "report.json"], 1,
            r"report\.json is a folder")


def _validate_json_parent_is_file(tmp):
    (tmp / "file").write_text("x")
    return (["data", "validate", FILES.parent / "canonical.jsonl", "--json", tmp / "file" / "r.json"], 1,
            r"file is a file, not a folder")


def _build_output_is_file(tmp):
    (tmp / "out").write_text("x")
    return ["data", "build", OK_RECIPE, f"output_dir={tmp / 'out'}"], 1, r"out is a file, not a folder"


def _build_output_not_ours(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return (["data", "build", OK_RECIPE, f"output_dir={tmp / 'out'}", "--overwrite"], 1,
            r"refusing to replace dataset folder .*out: rmforge did not create it")


def _build_output_exists(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return ["data", "build", OK_RECIPE, f"output_dir={tmp / 'out'}"], 1, r"out already exists and is not empty"


def _build_output_parent_is_file(tmp):
    (tmp / "file").write_text("x")
    return ["data", "build", OK_RECIPE, f"output_dir={tmp / 'file' / 'out'}"], 1, r"file is a file, not a folder"


OUTPUT_CASES = [_out_existing_file, _out_is_folder, _out_parent_is_file, _out_bad_extension, _out_parquet_is_folder,
                _export_is_folder, _export_existing, _export_unknown_target, _validate_json_is_folder,
                _validate_json_parent_is_file, _build_output_is_file, _build_output_not_ours, _build_output_exists,
                _build_output_parent_is_file]


@pytest.mark.parametrize("make", OUTPUT_CASES, ids=[m.__name__.strip("_") for m in OUTPUT_CASES])
def test_bad_output_path(tmp_path, make):
    args, code, pattern = make(tmp_path)
    before = {p: (tmp_path / p).read_bytes() if (tmp_path / p).is_file() else None for p in tree(tmp_path)}
    res = invoke(*args)
    assert_one_line_error(res, code, pattern)
    after = {p: (tmp_path / p).read_bytes() if (tmp_path / p).is_file() else None for p in tree(tmp_path)}
    assert after == before  # nothing created, nothing replaced


@pytest.mark.parametrize("command", ["convert", "convert-parquet", "export", "validate-json", "build"])
def test_output_into_readonly_folder(tmp_path, command):
    ro = readonly_folder(tmp_path)
    canonical = FILES.parent / "canonical.jsonl"
    args = {
        "convert": ["data", "convert", "--from", "preference", GOOD, ro / "h6-out.jsonl"],
        "convert-parquet": ["data", "convert", "--from", "preference", GOOD, ro / "h6-out.parquet"],
        "export": ["data", "export", "--to", "bt", canonical, ro / "h6-out.jsonl"],
        "validate-json": ["data", "validate", canonical, "--json", ro / "h6-out.json"],
        "build": ["data", "build", OK_RECIPE, f"output_dir={ro / 'h6-out'}"],
    }[command]
    before = sorted(os.listdir(ro))
    res = invoke(*args)
    assert_one_line_error(res, 1, re.escape(str(ro)) + r".*(not writable|permission denied)")
    assert sorted(os.listdir(ro)) == before
    assert res.stdout.strip() == "" or command == "build"


def test_overwrite_never_replaces_the_current_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep")
    monkeypatch.chdir(work)
    res = invoke("data", "build", OK_RECIPE, "output_dir=.", "--overwrite")
    assert_one_line_error(res, 1, r"refusing to replace dataset folder \.: it is the current folder")
    assert sorted(os.listdir(work)) == ["precious.txt"]


def test_corpus_size():
    """The issue's corpus: 36 malformed files and 73 bad configs, overrides and output paths (at least)."""
    files = len(FILE_CASES) + len(GENERATED_CASES)
    configs = len(CONFIG_CASES) + len(OVERRIDE_CASES) + len(OUTPUT_CASES) + 5 + 1
    assert files >= 36 and configs >= 73, (files, configs)
