"""``rmforge eval`` feedback and outputs: progress, dropped count, output checks before work, --overwrite,
the report's "longer wins" column, rich markup."""

import io
import json
import re

import pytest
from typer.testing import CliRunner

from rmforge.cli import app
from rmforge.data.io import write_samples
from rmforge.data.schema import Sample, assistant, user
from rmforge.evaluate import evaluate_preference, load_scorer
from rmforge.reward_model import scorer as scorer_mod
from rmforge.evaluate.report import write_report
from rmforge.train.tiny import tiny_model
from rmforge.reward_model.tokenize import EncodeStats

runner = CliRunner()


def pair(i, chosen, rejected, subset="s1"):
    return Sample(id=f"p{i}", prompt=[user(f"Question {i}?")], chosen=[assistant(chosen)],
                  rejected=[assistant(rejected)], subset=subset)


PAIRS = [pair(0, "a long and careful answer", "no", "[draft]"), pair(1, "yes", "a much longer wrong answer"),
         pair(2, "same len", "same len"), pair(3, "x" * 300, "short", "[draft]")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_samples(root / "pairs.jsonl", PAIRS)
    return root, tiny_model("llama", root / "llama")


def flat(output):
    return " ".join(output.split())


def test_progress_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr(scorer_mod, "PROGRESS_EVERY_S", 0.0)
    stream = io.StringIO()
    with scorer_mod.ScoringProgress(10, "m", stream=stream) as bar:
        bar.update(4)
        bar.update(6)  # the last update prints nothing: the table follows
    assert stream.getvalue() == "scoring m: 4/10 responses (40%)\n"


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    with scorer_mod.ScoringProgress(8, "m", stream=stream) as bar:
        bar.update(8)
    assert "score:" in stream.getvalue() and "/8" in stream.getvalue()  # tqdm drew the bar


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_progress_does_not_change_rewards(files, monkeypatch, precision):
    """With progress the forwards are the same batches as without, so the rewards are equal to the bit, in bf16
    too (progress used to re-chunk the samples: bf16 rewards then moved by up to one bf16 step, and `rmforge eval`
    could disagree with the API on near-ties). The progress counts every response once."""
    import random

    _, model = files
    rng = random.Random(0)
    words = "the a cat dog runs fast slow blue red green is was".split()

    def text(n):
        return " ".join(rng.choice(words) for _ in range(n))

    pairs = [Sample(id=str(i), prompt=[user(text(rng.randint(2, 40)))], chosen=[assistant(text(rng.randint(1, 60)))],
                    rejected=[assistant(text(rng.randint(1, 60)))]) for i in range(120)]
    counted = []
    monkeypatch.setattr(scorer_mod.ScoringProgress, "update", lambda self, n: counted.append(n))
    plain = load_scorer(str(model), batch_size=8, precision=precision).score_samples(pairs)[0]
    shown = load_scorer(str(model), batch_size=8, precision=precision, progress=True).score_samples(pairs)[0]
    assert shown == plain
    assert sum(counted) == 2 * len(pairs) and len(counted) == 30  # 240 responses, 8 per forward


def test_dropped_count_beside_the_accuracy(files):
    root, model = files
    result = runner.invoke(app, ["eval", "preference", str(model), str(root / "pairs.jsonl"), "--max-length", "40",
                                 "--n-boot", "10"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"accuracy: \d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\] "
                        r"\(n=3; 1 dropped: response too long, max_length 40\)", last), last


def test_json_output_checked_before_any_work(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    # the model does not exist: the output error comes first, so nothing was loaded or scored
    result = runner.invoke(app, ["eval", "rewardbench", "no-such-model", "no-such-data.jsonl", "--json", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert flat(result.output) == f"error: {folder} is a folder; give a file path for this output"


def test_unwritable_output_folder_fails_before_work(read_only_dir):
    """A probe write decides (root passes os.access even on read-only mounts)."""
    ro = read_only_dir
    for flag, target, message in (
            ("--json", ro / "r.json", f"error: cannot write {ro / 'r.json'}: folder {ro} is not writable "
                                      "(Read-only file system)"),
            ("--report", ro / "rep", f"error: cannot write {ro / 'rep'}: folder {ro} is not writable "
                                     "(Read-only file system)")):
        result = runner.invoke(app, ["eval", "preference", "no-such-model", "no-data.jsonl", flag, str(target)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert flat(result.output) == message


def test_json_needs_overwrite(files, tmp_path):
    root, model = files
    out = tmp_path / "r.json"
    out.write_text("keep me")
    args = ["eval", "preference", str(model), str(root / "pairs.jsonl"), "--json", str(out), "--n-boot", "10"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and out.read_text() == "keep me"
    assert flat(result.output) == (f"error: {out} already exists; pass --overwrite (or overwrite=true) or "
                                   f"choose a new path")
    result = runner.invoke(app, args + ["--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["n"] == 4
    rep = tmp_path / "rep"
    assert runner.invoke(app, args[:4] + ["--report", str(rep), "--n-boot", "10"]).exit_code == 0
    again = runner.invoke(app, args[:4] + ["--report", str(rep), "--n-boot", "10"])
    assert again.exit_code == 1 and "report folder" in again.output and "--overwrite" in again.output


class Fixed:
    name, info = "fixed", {}

    def score_samples(self, samples):
        return [[1.0, 0.0] for _ in samples], EncodeStats(kept=len(samples))


def test_html_report_fills_the_longer_wins_column(tmp_path):
    res = evaluate_preference(Fixed(), PAIRS, n_boot=10)
    write_report(res, tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    cells = dict(re.findall(r"<tr><td>([^<]*)</td>(?:<td>[^<]*</td>){3}<td>([^<]*)</td></tr>", page))
    # longer wins: p0 1, p1 0, p2 0.5 (equal), p3 1 -> 0.625; group [draft] = p0, p3 -> 1.0; s1 -> 0.25
    assert cells["overall"] == "0.6250" == f"{res.baselines['longer_wins'].accuracy:.4f}"
    assert cells["subset: [draft]"] == "1.0000" and cells["subset: s1"] == "0.2500"
    assert cells["length-matched pairs"] == "0.5000"  # only p2 is length-matched


def test_bracketed_text_survives_rich_markup(files):
    root, model = files
    result = runner.invoke(app, ["eval", "preference", str(model), str(root / "pairs.jsonl"), "--n-boot", "10"])
    assert result.exit_code == 0, result.output
    assert "subset: [draft]" in result.output
