"""Processing steps: length_filter, dedup, filter, sample, swap and the apply_steps dispatcher."""

import pytest
import yaml

from rmforge.data.process import (DedupStep, FilterStep, LengthFilterStep, SampleStep, SwapStep, apply_steps,
                                  dedup, filter_samples, length_filter, parse_steps, sample_subset,
                                  swap_positions)
from rmforge.data.schema import Message, Sample, Scale, assistant, text, user
from rmforge.data.textnorm import compile_expr, load_tokenizer_cached, normalize_text
from rmforge.errors import ConfigError, DataError


def pair(id, prompt, chosen, rejected, **kw):
    prompt = [user(prompt)] if isinstance(prompt, str) else prompt
    return Sample(id=id, prompt=prompt, chosen=[assistant(chosen)], rejected=[assistant(rejected)], **kw)


def ntok(value: str) -> int:
    return len(load_tokenizer_cached("minilm")(value, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------- length_filter

SYSTEM = Message(role="system", content="be nice")  # 2 tokens
LONG_CHAT = [SYSTEM, user("hello " * 10), assistant("world " * 10), user("tell me " * 15)]  # 2 + 10 + 10 + 30


def test_length_filter_drop_counts():
    samples = [pair("short", "yes " * 5, "answer one two three four", "no"),  # 5 + 5 + 3 = 13
               pair("long", "yes " * 15, "answer one two three four", "no"),  # 15 + 5 + 3 = 23
               pair("edge", "yes " * 12, "answer one two three four", "no")]  # 12 + 5 + 3 = 20
    out, rep = length_filter(samples, tokenizer="minilm", max_length=20)
    assert [s.id for s in out] == ["short", "edge"]
    assert rep.counts == {"kept": 2, "dropped": 1, "truncated": 0, "too long": 1}
    assert (rep.rows_in, rep.rows_out) == (3, 2)
    _, rep0 = length_filter(samples, tokenizer="minilm", max_length=20, reserve=0)
    assert rep0.rows_out == 3


def test_truncate_prompt_removes_leading_turns_then_cuts_left():
    samples = [
        pair("fit-by-removal", [SYSTEM, user("hello " * 10), assistant("world " * 10), user("yes " * 5)],
             "yes " * 5, "no"),
        pair("cut", LONG_CHAT, "yes " * 5, "no"),
        pair("resp-too-long", "hi", "yes " * 40, "no"),
        pair("fits", "hi", "yes", "no"),
    ]
    out, rep = length_filter(samples, tokenizer="minilm", max_length=30, policy="truncate_prompt")
    assert [s.id for s in out] == ["fit-by-removal", "cut", "fits"]
    assert rep.counts == {"kept": 3, "dropped": 1, "truncated": 2, "responses too long": 1,
                          "prompt too long after truncation": 0}
    budget = 30 - 3 - 5
    removal, cut, fits = out
    assert [m.role for m in removal.prompt] == ["system", "user"]
    assert removal.prompt[0] == SYSTEM and removal.prompt[1].content == "yes " * 5  # last user turn intact
    assert [m.role for m in cut.prompt] == ["system", "user"]
    last = cut.prompt[-1].content
    assert LONG_CHAT[-1].content.endswith(last) and 0 < len(last) < len(LONG_CHAT[-1].content)
    assert ntok(text(cut.prompt)) <= budget and ntok(last) == budget - 2
    for new, old in ((removal, samples[0]), (cut, samples[1])):
        assert new.chosen == old.chosen and new.rejected == old.rejected
        assert new.metadata == {"truncated_prompt": True}
    assert fits is samples[3] and "truncated_prompt" not in fits.metadata
    assert samples[1].prompt == LONG_CHAT  # input untouched


def test_truncate_prompt_batching_is_invisible_and_system_too_long_drops():
    samples = [pair(f"s{i}", LONG_CHAT, "yes " * (i + 1), "no") for i in range(5)]
    a, rep_a = length_filter(samples, tokenizer="minilm", max_length=30, policy="truncate_prompt", batch_size=2)
    b, rep_b = length_filter(samples, tokenizer="minilm", max_length=30, policy="truncate_prompt")
    assert a == b and rep_a.counts == rep_b.counts and rep_a.counts["truncated"] == 5
    huge_system = [Message(role="system", content="rule " * 40), user("question here")]
    out, rep = length_filter([pair("sys", huge_system, "yes", "no")], tokenizer="minilm", max_length=30,
                             policy="truncate_prompt")
    assert out == [] and rep.counts["prompt too long after truncation"] == 1


def test_length_filter_chat_template_counts_markup():
    tok = load_tokenizer_cached("minilm")
    assert not tok.chat_template  # MiniLM has none: flag falls back to plain counts
    s = [pair("a", "yes " * 12, "answer one two three four", "no")]
    out, rep = length_filter(s, tokenizer=tok, max_length=20, chat_template=True)
    assert len(out) == 1 and "no chat template" in rep.message
    from rmforge.models import load_tokenizer

    templ = load_tokenizer("minilm")  # a private copy we may modify
    templ.chat_template = ("{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}"
                           "{% if add_generation_prompt %}[assistant]{% endif %}")
    out, rep = length_filter(s, tokenizer=templ, max_length=20, chat_template=True, reserve=3)
    assert out == [] and rep.counts["too long"] == 1  # "[user]" and "[assistant]" count now
    out, rep = length_filter(s, tokenizer=templ, max_length=20, chat_template=True, reserve=3,
                             policy="truncate_prompt")
    rendered = templ.apply_chat_template([{"role": "user", "content": out[0].prompt[0].content}],
                                         tokenize=False, add_generation_prompt=True)
    assert rep.counts["truncated"] == 1 and ntok(rendered) <= 20 - 3 - 5


# ---------------------------------------------------------------- dedup


def test_dedup_exact_vs_normalized():
    samples = [pair("1", "What is 2+2?", "Four.", "Five"),
               pair("2", "what is   2+2", "four", "five!"),
               pair("3", "What is 2+2?", "Four.", "Five"),
               pair("4", "Other", "Four.", "Five")]
    out, rep = dedup(samples, mode="exact")
    assert [s.id for s in out] == ["1", "2", "4"] and rep.counts["duplicate"] == 1
    out, rep = dedup(samples, mode="normalized")
    assert [s.id for s in out] == ["1", "4"]
    assert rep.counts == {"kept": 2, "dropped": 2, "duplicate": 2, "contradictory": 0}
    assert normalize_text("  ¡Ｈｅｌｌｏ,\n\tWORLD!! ") == "hello, world"


def test_dedup_contradictory_pairs_and_ties():
    samples = [pair("ab", "q", "a", "b"), pair("ba", "q", "b", "a"),
               pair("tie1", "t", "x", "y", tie=True), pair("tie2", "t", "y", "x", tie=True),
               pair("nontie", "t", "x", "y")]
    out, rep = dedup(samples, mode="exact")
    assert [s.id for s in out] == ["ab", "tie1"]
    assert rep.counts["contradictory"] == 2 and rep.counts["duplicate"] == 1


def test_dedup_by_prompt_keeps_promptless_samples():
    point = Sample(id="p", response=[assistant("r")], scores={"h": 1.0})
    samples = [pair("1", "q", "a", "b"), pair("2", "Q!", "c", "d"), point,
               point.model_copy(update={"id": "p2"})]
    out, rep = dedup(samples, by="prompt")
    assert [s.id for s in out] == ["1", "p", "p2"] and rep.counts["duplicate"] == 1
    out, _ = dedup(samples)  # by sample: the pointwise twins are duplicates
    assert [s.id for s in out] == ["1", "2", "p"]


# ---------------------------------------------------------------- filter


def test_filter_reasons_and_counts():
    samples = [pair("ok", "q", "good answer", "bad", subset="a"),
               pair("other-subset", "q", "good", "bad", subset="c"),
               pair("short", "q", "x", "bad", subset="b"),
               pair("empty", "q", "   ", "bad", subset="a"),
               pair("same", "q", "same", "same ", subset="a"),
               pair("tie", "q", "one", "two", subset="a", tie=True)]
    out, rep = filter_samples(samples, where={"subset": ["a", "b"]}, min_chars=2)
    assert [s.id for s in out] == ["ok", "tie"]
    assert rep.counts == {"kept": 2, "dropped": 4, "where.subset": 1, "min_chars": 1, "empty response": 1,
                          "identical responses": 1}
    out, rep = filter_samples(samples, drop_ties=True, drop_identical=False, drop_empty=True)
    assert [s.id for s in out] == ["ok", "other-subset", "short", "same"]
    assert rep.counts == {"kept": 4, "dropped": 2, "empty response": 1, "tie": 1}
    out, _ = filter_samples(samples, where={"tie": True, "kind": "pair"}, max_chars=3)
    assert [s.id for s in out] == ["tie"]


def test_filter_expr():
    samples = [pair("a", [user("hi"), assistant("yo"), user("q")], "long answer", "no", margin=2.0,
                    metadata={"lang": "en"}),
               pair("b", "q", "short", "no", metadata={"lang": "de"}),
               Sample(id="c", prompt=[user("q")], response=[assistant("r")], scores={"h": 3.0},
                      scale=Scale(min=0, max=4), metadata={"lang": "en"})]
    out, rep = filter_samples(samples, expr="metadata['lang'] == 'en' and (kind != 'pair' or n_turns > 1)")
    assert [s.id for s in out] == ["a", "c"] and rep.counts["expr"] == 1
    out, _ = filter_samples(samples, expr="kind == 'pointwise' and scores['h'] / scale.max > 0.5")
    assert [s.id for s in out] == ["c"]
    out, _ = filter_samples(samples[:2], expr="len(chosen) > 2 * len(rejected) and 'answer' in chosen")
    assert [s.id for s in out] == ["a"]
    with pytest.raises(DataError, match=r"filter expr 'margin > 1' failed on sample 'b'"):
        filter_samples(samples, expr="margin > 1")


@pytest.mark.parametrize("expr, message", [
    ("__import__('os')", "only call allowed is len"),
    ("id.__class__", "private attribute '__class__'"),
    ("scale.__class__.__subclasses__()", "private attribute"),
    ("(lambda: 1)()", "Lambda is not allowed"),
    ("open('x')", "only call allowed is len"),
    ("chosen.upper()", "only call allowed is len"),
    ("[x for x in ranks]", "ListComp is not allowed"),
    ("2 ** 100000", "Pow is not allowed"),
    ("foo == 1", "unknown name 'foo'"),
    ("len(", "invalid syntax"),
])
def test_expr_rejects_unsafe_code(expr, message):
    with pytest.raises(ConfigError, match="filter expr") as info:
        compile_expr(expr)
    assert message in str(info.value) and repr(expr) in str(info.value)
    with pytest.raises(ConfigError, match="process.0.filter.expr"):
        parse_steps([{"step": "filter", "expr": expr}])


# ---------------------------------------------------------------- sample / swap


def many(n):
    return [pair(f"s{i}", f"q{i}", f"a{i}", f"b{i}") for i in range(n)]


def test_sample_is_seeded_and_ordered():
    samples = many(50)
    a, rep = sample_subset(samples, n=10, seed=3)
    b, _ = sample_subset(samples, n=10, seed=3)
    c, _ = sample_subset(samples, n=10, seed=4)
    assert a == b and a != c and len(a) == 10 and rep.counts == {"kept": 10, "dropped": 40}
    assert [samples.index(s) for s in a] == sorted(samples.index(s) for s in a)
    assert len(sample_subset(samples, fraction=0.3, seed=0)[0]) == 15
    assert len(sample_subset(samples, n=500, seed=0)[0]) == 50


def test_swap_replace_and_add():
    samples = many(10) + [Sample(id="pt", response=[assistant("r")], scores={"h": 1.0})]
    out, rep = swap_positions(samples, probability=0.3, mode="replace", seed=1)
    again, _ = swap_positions(samples, probability=0.3, mode="replace", seed=1)
    other, _ = swap_positions(samples, probability=0.3, mode="replace", seed=2)
    swapped = [s.id for s in out if s.metadata.get("position_of_chosen") == "B"]
    assert len(out) == 11 and len(swapped) == 3 and out == again and other != out
    assert all(s.metadata["order"] == "swapped" for s in out if s.id in swapped)
    assert all(s.metadata == {"position_of_chosen": "A", "order": "original"} for s in out[:10] if s.id not in swapped)
    assert out[-1] is samples[-1] and samples[0].metadata == {}
    assert rep.counts == {"kept": 11, "dropped": 0, "swapped": 3, "position_A": 7, "position_B": 3, "not a pair": 1}
    flipped, _ = swap_positions(out, probability=1.0, mode="replace", seed=0)
    assert sorted(s.id for s in flipped if s.metadata.get("position_of_chosen") == "A") == sorted(swapped)
    added, rep = swap_positions(samples, probability=0.5, mode="add", seed=1)
    assert len(added) == 16 and rep.rows_out == 16 and rep.counts["position_B"] == 5
    for i, s in enumerate(added):
        if s.id.endswith("#swapped"):
            orig = added[i - 1]
            assert s.id == orig.id + "#swapped" and s.chosen == orig.chosen
            assert s.metadata == {"position_of_chosen": "B", "order": "swapped"}


# ---------------------------------------------------------------- dispatcher

RECIPE = """
process:
  - {step: length_filter, tokenizer: minilm, max_length: 64, policy: truncate_prompt}
  - {step: dedup, mode: normalized}
  - {step: filter, where: {subset: [a, b]}, min_chars: 1}
  - {step: sample, n: 20}
  - {step: swap, probability: 0.5, seed: 9}
"""


def test_apply_steps_from_yaml():
    steps = parse_steps(yaml.safe_load(RECIPE)["process"])
    assert [type(s) for s in steps] == [LengthFilterStep, DedupStep, FilterStep, SampleStep, SwapStep]
    samples = [pair(f"s{i}", f"question {i % 40}", f"answer {i}", f"other {i}", subset="abc"[i % 3])
               for i in range(80)]
    samples.append(pair("long", "word " * 100, "a", "b", subset="a"))
    out, reports = apply_steps(samples, steps, seed=5)
    assert [r.step for r in reports] == ["length_filter", "dedup", "filter", "sample", "swap"]
    assert [(r.rows_in, r.rows_out) for r in reports] == [(81, 81), (81, 81), (81, 55), (55, 20), (20, 20)]
    assert reports[0].counts["truncated"] == 1 and reports[2].counts["where.subset"] == 26
    assert sum(s.metadata["position_of_chosen"] == "B" for s in out) == 10
    again, _ = apply_steps(samples, steps, seed=5)
    other, _ = apply_steps(samples, steps, seed=6)
    assert again == out and [s.id for s in other] != [s.id for s in out]
    raw, _ = apply_steps(samples, yaml.safe_load(RECIPE)["process"], seed=5)  # plain dicts work too
    assert raw == out
    assert all(r.message for r in reports) and reports[1].to_dict()["step"] == "dedup"


def test_step_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'max_length'"):
        parse_steps([{"step": "length_filter", "tokenizer": "minilm", "max_lenght": 5}])
    with pytest.raises(ConfigError, match="exactly one of 'n' or 'fraction'"):
        parse_steps([{"step": "sample", "n": 3, "fraction": 0.5}])
    with pytest.raises(ConfigError, match="where key 'lang'"):
        parse_steps([{"step": "filter", "where": {"lang": "en"}}])
    with pytest.raises(ConfigError, match="does not match any of the expected tags"):
        parse_steps([{"step": "shuffle"}])


def test_length_filter_tokenizer_folder_without_tokenizer_files(tmp_path):
    """transformers raises a multi-line ValueError for a folder holding no tokenizer: one RmforgeError line."""
    from rmforge.errors import RmforgeError

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RmforgeError) as info:
        length_filter([], tokenizer=str(tmp_path), max_length=10)
    assert str(info.value).startswith(f"length_filter: cannot load tokenizer '{tmp_path}': ")
    assert "\n" not in str(info.value)


def test_parse_steps_errors_are_one_line():
    with pytest.raises(ConfigError) as info:
        parse_steps([{"step": "length_filter", "max_length": 0}])
    assert str(info.value) == ("process.0.length_filter.tokenizer: Field required (and 1 more: "
                               "process.0.length_filter.max_length: Input should be greater than 0)")
