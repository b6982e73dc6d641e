"""Preference evaluation on tiny random models and a tiny trained run directory (fp32, CPU)."""

import json
import re
import shutil

import pytest
import torch

from rmforge.config import load_config
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.data.schema import Sample, assistant, user
from rmforge.errors import RmforgeError
from rmforge.evaluate import evaluate, evaluate_preference, load_scorer
from rmforge.train.config import BTConfig
from rmforge.train.tiny import tiny_model
from rmforge.reward_model.tokenize import EncodeStats, RewardEncoder
from rmforge.train.trainer import train_bt


def pair(i, chosen, rejected, subset="s1", **kw):
    return Sample(id=f"p{i}", prompt=[user(f"Question number {i}: what is the answer?")], chosen=[assistant(chosen)],
                  rejected=[assistant(rejected)], subset=subset, **kw)


def crafted():
    return [pair(0, "The answer is four.", "It is five, I think, or maybe six."),
            pair(1, "Yes.", "No, that is wrong because the data says so.", subset="s2", category="c"),
            pair(2, "Blue sky today.", "Red", category="c"),
            pair(3, "same", "same", tie=True),
            Sample(id="n0", prompt=[user("Rank these")], candidates=[[assistant("first one")], [assistant("b")],
                                                                       [assistant("third answer here")]],
                   ranks=[2, 1, 3], subset="s2"),
            Sample(id="w0", prompt=[user("Rate")], response=[assistant("ok")], scores={"helpful": 1.0})]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    tiny_model("llama", root / "llama")
    tiny_model("bert", root / "bert")
    demo = generate_demo(40, seed=0)
    write_samples(root / "train.jsonl", demo[:20])
    write_samples(root / "test.jsonl", demo[20:])
    cfg = load_config(None, [f"model={root / 'llama'}", f"data.train={root / 'train.jsonl'}", f"output_dir={root / 'run'}",
                             "train.max_steps=2", "train.batch_size=4", "train.precision=fp32", "train.lr=1e-3",
                             "logging.progress=false", "max_length=200", "seed=0"], cls=BTConfig)
    train_bt(cfg)
    return root


def plain_rewards(model, encoder, samples):
    """One unbatched forward per response through the shared encoder (None for dropped samples)."""
    out = []
    with torch.no_grad():
        for s in samples:
            encs = encoder.encode_sample(s)
            out.append(None if encs is None else [model(
                input_ids=torch.tensor([e.input_ids]),
                **({"token_type_ids": torch.tensor([e.token_type_ids])} if e.token_type_ids else {})).logits[0, 0].item()
                for e in encs])
    return out


class FakeScorer:
    """Returns fixed rewards (None = dropped) to test the rules without a model."""

    name, info = "fake", {}

    def __init__(self, rewards):
        self.rewards = rewards

    def score_samples(self, samples):
        stats = EncodeStats(kept=sum(r is not None for r in self.rewards), dropped={"too long": self.rewards.count(None)})
        return [self.rewards[s.id] for s in samples], stats


class DictList(dict):
    def count(self, value):
        return sum(v is value for v in self.values())


def test_rules_without_a_model():
    rewards = DictList(p0=[1.0, 0.0], p1=[0.5, 0.5], p2=None, n0=[0.1, 0.9, 0.3])
    result = evaluate_preference(FakeScorer(rewards), crafted(), group_by="subset")
    assert (result.accuracy, result.n) == (2 / 3, 3)  # p0 right, p1 reward tie = wrong, n0 right; p2 dropped
    c = result.counts
    assert (c["data_ties"], c["pointwise"], c["dropped"], c["reward_ties"], c["samples"]) == (1, 1, 1, 1, 6)
    assert {k: (v.accuracy, v.n) for k, v in result.groups.items()} == {"s1": (1.0, 1), "s2": (0.5, 2)}
    assert result.mean_margin == pytest.approx(0.5)  # pairs p0 (1.0) and p1 (0.0)
    # longer wins: p0 chosen shorter (0), p1 chosen shorter (0)
    assert result.baselines["longer_wins"].accuracy == 0.0 and result.baselines["shorter_wins"].accuracy == 1.0
    by_id = {r["id"]: r for r in result.per_sample}
    assert by_id["p2"]["correct"] is None and by_id["p3"]["tie"] and by_id["n0"]["correct"] is True
    tied_top = DictList(p0=[1.0, 0.0], p1=[1.0, 0.0], p2=[1.0, 0.0], n0=[0.1, 0.9, 0.9])
    assert evaluate_preference(FakeScorer(tied_top), crafted()).per_sample[3]["correct"] is False
    by_cat = evaluate_preference(FakeScorer(rewards), crafted(), group_by="category")
    assert set(by_cat.groups) == {"(none)", "c"}


def test_accuracy_matches_plain_forward(root):
    scorer = load_scorer(str(root / "llama"), batch_size=4)
    assert scorer.info["head_initialised"]
    samples = crafted()
    result = evaluate_preference(scorer, samples)
    ref = plain_rewards(scorer.model, RewardEncoder(scorer.tokenizer, 512), samples[:5])
    correct = [r[0] > r[1] for r in ref[:3]] + [max(range(3), key=lambda i: ref[4][i]) == 1]
    assert result.accuracy == pytest.approx(sum(correct) / 4) and result.n == 4
    by_id = {r["id"]: r for r in result.per_sample}
    for s, r in zip(samples, ref):
        if not s.tie:
            assert by_id[s.id]["rewards"] == pytest.approx(r, abs=1e-5)
    # the untrained head is seeded: a second load scores identically, the global RNG is untouched
    state = torch.random.get_rng_state()
    again, _ = load_scorer(str(root / "llama")).score_samples(samples[:3])
    assert torch.equal(state, torch.random.get_rng_state())
    for a, s in zip(again, samples[:3]):
        assert a == pytest.approx(by_id[s.id]["rewards"], abs=1e-6)


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_batch_size_invariance(root, kind):
    samples = generate_demo(30, seed=3)[:15]
    one, _ = load_scorer(str(root / kind), batch_size=1).score_samples(samples)
    seven, _ = load_scorer(str(root / kind), batch_size=7).score_samples(samples)
    for a, b in zip(one, seven):
        assert a == pytest.approx(b, abs=1e-6)


def test_dropped_counts_surface(root):
    samples = generate_demo(30, seed=3)[:12]
    result = evaluate_preference(load_scorer(str(root / "llama"), max_length=48), samples)
    c = result.counts
    assert c["dropped"] > 0 and c["dropped_by_reason"] and result.n + c["dropped"] == 12
    assert sum(r["correct"] is None for r in result.per_sample) == c["dropped"] and c["truncated"] > 0
    assert f"dropped {c['dropped']}" in result.markdown()
    with pytest.raises(RmforgeError, match="every sample was dropped"):
        evaluate_preference(load_scorer(str(root / "llama"), max_length=4, length_policy="drop"), samples)


def test_run_dir_scores_like_plain_from_pretrained(root):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = root / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    scorer = load_scorer(str(run), batch_size=3)
    assert not scorer.info["head_initialised"] and scorer.encoder.info() == manifest["encoding"]
    model = AutoModelForSequenceClassification.from_pretrained(run).eval()
    tok = AutoTokenizer.from_pretrained(run)
    samples = generate_demo(30, seed=4)[:8]
    ref = plain_rewards(model, RewardEncoder(tok, manifest["max_length"]), samples)
    got, stats = scorer.score_samples(samples)
    assert stats.kept == 8
    for a, b in zip(got, ref):
        assert a == pytest.approx(b, abs=1e-5)


def test_run_dir_chat_template_is_checked(root, tmp_path):
    import yaml

    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    template = "{% for m in messages %}<|im_start|>{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n{% endfor %}" \
               "{% if add_generation_prompt %}<|im_start|>assistant: {% endif %}"
    (tmp_path / "custom.jinja").write_text(template)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model_options"]["chat_template"] = str(tmp_path / "custom.jinja")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    manifest = json.loads((run / "manifest.json").read_text())
    import hashlib

    manifest["encoding"]["chat_template_sha256"] = hashlib.sha256(template.encode()).hexdigest()
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert load_scorer(str(run)).encoder.template == template
    (tmp_path / "custom.jinja").unlink()
    with pytest.raises(RmforgeError, match="chat template used in training"):
        load_scorer(str(run))


def test_evaluate_api_and_outputs(root, tmp_path):
    import rmforge.evaluate

    result = rmforge.evaluate(str(root / "run"), data=root / "test.jsonl", group_by="category", n_boot=200)
    assert result.n == 20 and set(result.groups) <= {s.category for s in generate_demo(40, seed=0)}
    result.to_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert {"accuracy", "n", "ci_low", "ci_high", "groups", "baselines", "counts", "samples"} <= set(data)
    assert data["accuracy"] == result.accuracy and len(data["samples"]) == 20
    assert "| overall |" in result.markdown() and result.table().row_count == len(result.rows())
    with pytest.raises(RmforgeError, match="unknown subset 'dates'"):  # demo pairs are not RewardBench data
        evaluate(str(root / "run"), benchmark="rewardbench", data=root / "test.jsonl")
    with pytest.raises(RmforgeError, match="unknown option"):
        evaluate(str(root / "run"), data=root / "test.jsonl", bogus=1)


def test_cli(root, tmp_path):
    from typer.testing import CliRunner

    from rmforge.cli.eval import app

    out = tmp_path / "res.json"
    res = CliRunner().invoke(app, ["preference", str(root / "run"), str(root / "test.jsonl"), "--json", str(out),
                                   "--group-by", "category", "--baseline", str(root / "llama"), "--n-boot", "100"])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert re.fullmatch(r"accuracy: \d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\] \(n=20\)", last)
    data = json.loads(out.read_text())
    assert data["n"] == 20 and data["ci_low"] <= data["accuracy"] <= data["ci_high"]
    assert data["baseline"]["scorer"]["head_initialised"] and "baseline accuracy:" in res.output
    bad = CliRunner().invoke(app, ["preference", str(root / "run"), str(root / "test.jsonl"), "--group-by", "x"])
    assert bad.exit_code == 1 and "group-by" in bad.output
    missing = CliRunner().invoke(app, ["preference", str(root / "run"), str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_cli_length_policy_truncate_response_keeps_every_pair(root, tmp_path):
    from typer.testing import CliRunner

    from rmforge.cli.eval import app

    runs = {}
    for policy in ("truncate_prompt", "truncate_response"):
        out = tmp_path / f"{policy}.json"
        res = CliRunner().invoke(app, ["preference", str(root / "bert"), str(root / "test.jsonl"), "--max-length", "24",
                                       "--length-policy", policy, "--n-boot", "10", "--json", str(out)])
        assert res.exit_code == 0, res.output
        runs[policy] = json.loads(out.read_text())
    assert runs["truncate_prompt"]["n"] < 20  # responses longer than 24 tokens are dropped ...
    assert runs["truncate_response"]["n"] == 20  # ... or cut
    assert runs["truncate_response"]["counts"]["response_truncated"] > 0
