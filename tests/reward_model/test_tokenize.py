"""Tests for rmforge.reward_model.tokenize: golden ids, prompt sharing, EOS, length policy, encoder pairs."""

import math

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from rmforge.data.schema import Message, Sample, assistant, user
from rmforge.reward_model.tokenize import (
    CHUNK_SAMPLES,
    Encoded,
    RewardEncoder,
    attribute_names,
    resolve_template,
)

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
            "<think>", "</think>"]
WORDS = ("System User Assistant : hello there hi friend be brief what is the answer think about it yes no".split()
         + [f"w{i}" for i in range(300)])
VOCAB = {t: i for i, t in enumerate(SPECIALS + WORDS)}
# <s>=2 </s>=3 <|system|>=4 <|user|>=5 <|assistant|>=6 <|end|>=7 <think>=8 </think>=9
# System=10 User=11 Assistant=12 :=13 hello=14 there=15 hi=16 friend=17 be=18 brief=19 ... yes=27 no=28 w0=29
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|> {% endif %}")
REASONING_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> "
                      "{% if m.reasoning_content %}<think> {{ m.reasoning_content }} </think> {% endif %}"
                      "{{ m['content'] }} <|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}")


def tiny_tokenizer(template: str | None = TEMPLATE, add_bos: bool = False) -> PreTrainedTokenizerFast:
    tk = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=SPECIALS[4:], chat_template=template)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def minilm():
    from rmforge.models import load_tokenizer

    try:
        return load_tokenizer("minilm")
    except Exception as exc:  # the embedded model package is missing
        pytest.skip(f"MiniLM tokenizer unavailable: {exc}")


SYSTEM = Message(role="system", content="be brief")
PROMPT = [SYSTEM, user("hello there")]


def words(lo: int, hi: int) -> str:
    return " ".join(f"w{i}" for i in range(lo, hi))


def pair(prompt_words: int, chosen: str = "yes yes yes", rejected: str = "no", sid: str = "s", **kw) -> Sample:
    return Sample(id=sid, prompt=[user(words(0, prompt_words))], chosen=[assistant(chosen)],
                  rejected=[assistant(rejected)], **kw)


# ----------------------------------------------------------------------------- golden ids
def test_golden_chat_ids(tok):
    enc = RewardEncoder(tok, 64)
    assert enc.mode == "chat"
    e = enc.encode(PROMPT, [assistant("hi friend")])
    assert e == Encoded([2, 4, 18, 19, 7, 5, 14, 15, 7, 6, 16, 17, 7, 3], None, 10, False)


def test_golden_plain_ids():
    e = RewardEncoder(tiny_tokenizer(), 64, chat_template="none").encode(PROMPT, [assistant("hi friend")])
    # "System: be brief\n\nUser: hello there\n\nAssistant: hi friend" + EOS
    assert e == Encoded([10, 13, 18, 19, 11, 13, 14, 15, 12, 13, 16, 17, 3], None, 10, False)
    # a tokenizer that adds BOS itself gets it in the plain format too (once)
    e = RewardEncoder(tiny_tokenizer(None, add_bos=True), 64).encode([user("hi")], [assistant("yes")])
    assert e.input_ids == [2, 11, 13, 16, 12, 13, 27, 3] and e.prompt_len == 6


def test_matches_apply_chat_template(tok):
    """Train/serve parity: the row is exactly the template's own tokenisation plus EOS."""
    conv = PROMPT + [assistant("hi friend")]
    ref = tok.apply_chat_template([m.model_dump(exclude={"reasoning"}) for m in conv], tokenize=True,
                                  return_dict=False)
    assert RewardEncoder(tok, 64).encode(PROMPT, conv[-1:]).input_ids == list(ref) + [tok.eos_token_id]


# ----------------------------------------------------------------------------- prompt sharing, EOS
def test_pair_shares_prompt_tokens(tok):
    enc = RewardEncoder(tok, 128)
    c, r = enc.encode_sample(pair(12, chosen="hi friend", rejected="no no"))
    assert c.prompt_len == r.prompt_len
    assert c.input_ids[:c.prompt_len] == r.input_ids[:r.prompt_len]
    assert c.input_ids[c.prompt_len - 1] == VOCAB["<|assistant|>"]  # the generation prefix closes the prompt
    assert c.input_ids[c.prompt_len:] == [16, 17, 7, 3] and r.input_ids[r.prompt_len:] == [28, 28, 7, 3]


def test_eos_appended_exactly_once():
    # the default template ends a turn with <|end|>: one EOS appended; a template that ends every
    # turn with </s> (system, user, assistant) gets none
    for template, count in ((TEMPLATE, 1), (TEMPLATE.replace("<|end|>", "</s>"), 3)):
        e = RewardEncoder(tiny_tokenizer(template), 64).encode(PROMPT, [assistant("hi")])
        assert e.input_ids[-1] == 3 and e.input_ids[-2] != 3 and e.input_ids.count(3) == count
    e = RewardEncoder(tiny_tokenizer(), 64, append_eos=False).encode(PROMPT, [assistant("hi")])
    assert 3 not in e.input_ids and e.input_ids[-1] == VOCAB["<|end|>"]


# ----------------------------------------------------------------------------- length policy
def test_truncate_prompt_from_left_keeps_response(tok):
    enc = RewardEncoder(tok, 20)
    full = RewardEncoder(tok, 1000).encode_sample(pair(30))
    c, r = enc.encode_sample(pair(30))
    assert len(c.input_ids) == 20 and c.truncated and r.truncated
    assert c.input_ids[c.prompt_len:] == full[0].input_ids[full[0].prompt_len:]  # response intact
    assert r.input_ids[r.prompt_len:] == full[1].input_ids[full[1].prompt_len:]
    assert c.input_ids[:c.prompt_len] == r.input_ids[:r.prompt_len]  # identical prompt, sized for chosen
    # leading <s><|user|> kept, words cut from the left, closing <|end|> <|assistant|> kept
    w = VOCAB["w0"]
    assert c.input_ids[:c.prompt_len] == [2, 5] + list(range(w + 19, w + 30)) + [7, 6]


def test_response_too_long_and_drop_policy_counts(tok):
    samples = [pair(2, sid="fits"), pair(30, sid="cut"), pair(2, chosen=words(0, 40), sid="long")]
    enc = RewardEncoder(tok, 20)
    assert enc.encode_sample(samples[2]) is None
    kept, stats = enc.encode_dataset(samples)
    assert [k.index for k in kept] == [0, 1]
    assert (stats.kept, stats.truncated, stats.dropped) == (2, 1, {"response too long": 1})
    assert stats.as_dict()["dropped"] == 1 and "response too long: 1" in str(stats)

    drop = RewardEncoder(tok, 20, length_policy="drop")
    assert drop.encode_sample(samples[1]) is None
    kept, stats = drop.encode_dataset(samples)
    assert [k.index for k in kept] == [0]
    assert (stats.kept, stats.truncated, stats.dropped) == (1, 0, {"too long": 2})


def test_response_fits_only_with_protected_tokens(tok):
    # prompt part <s> <|user|> ... <|end|> <|assistant|>: 4 protected tokens; response "yes*k <|end|> </s>"
    enc = RewardEncoder(tok, 10)
    assert enc.encode([user(words(0, 20))], [assistant("yes yes yes yes")]).input_ids[:4] == [2, 5, 7, 6]
    assert enc.encode([user(words(0, 20))], [assistant("yes yes yes yes yes")]) is None


def test_truncate_response_cuts_only_what_does_not_fit(tok):
    samples = [pair(2, sid="fits"), pair(30, sid="cut"), pair(2, chosen=words(0, 40), sid="long")]
    enc = RewardEncoder(tok, 20, length_policy="truncate_response")
    ref = RewardEncoder(tok, 20)
    for s in samples[:2]:  # where the prompt cut suffices, exactly truncate_prompt's rows
        assert enc.encode_sample(s) == ref.encode_sample(s)
    c, r = enc.encode_sample(samples[2])
    assert len(c.input_ids) == 20 and c.truncated and c.response_cut > 0 and r.response_cut == 0
    assert c.input_ids[:c.prompt_len] == r.input_ids[:r.prompt_len] == [2, 5, 7, 6]  # prompt: only protected
    full = RewardEncoder(tok, 1000).encode_sample(samples[2])[0]
    assert c.input_ids[-2:] == [VOCAB["<|end|>"], VOCAB["</s>"]] == full.input_ids[-2:]  # closing tokens kept
    body = c.input_ids[c.prompt_len:-2]
    assert body == full.input_ids[full.prompt_len:full.prompt_len + len(body)]  # text cut from the right
    assert len(full.input_ids) - len(c.input_ids) == c.response_cut + full.prompt_len - c.prompt_len
    kept, stats = enc.encode_dataset(samples)
    assert (stats.kept, stats.truncated, stats.response_truncated, stats.dropped) == (3, 2, 1, {})
    assert stats.as_dict()["response_truncated"] == 1 and "responses cut in 1" in str(stats)


def test_truncate_response_keeps_bert_sep(minilm):
    enc = RewardEncoder(minilm, 16, length_policy="truncate_response")
    c, r = enc.encode_sample(pair(3, chosen=words(0, 30), rejected="no"))
    assert len(c.input_ids) == len(c.token_type_ids) == 16 and c.input_ids[-1] == minilm.sep_token_id
    assert c.input_ids[:c.prompt_len] == r.input_ids[:r.prompt_len]
    assert c.token_type_ids == [0] * c.prompt_len + [1] * (16 - c.prompt_len)
    assert minilm.decode(c.input_ids[c.prompt_len:], skip_special_tokens=True).startswith("w0 w1")


# ----------------------------------------------------------------------------- encoder pairs
def test_bert_pair_format(minilm):
    enc = RewardEncoder(minilm, 128)
    assert enc.mode == "pair" and not enc.append_eos
    e = enc.encode([user("What is the capital of France?")], [assistant("Paris.")])
    ref = minilm("What is the capital of France?", "Paris.")
    assert e.input_ids == ref["input_ids"] and e.token_type_ids == ref["token_type_ids"]
    assert e.input_ids[0] == minilm.cls_token_id and e.input_ids[-1] == minilm.sep_token_id
    assert e.input_ids[e.prompt_len - 1] == minilm.sep_token_id and e.token_type_ids[e.prompt_len] == 1
    # several messages: "role: content" lines
    e2 = enc.encode(PROMPT, [assistant("Paris.")])
    assert e2.input_ids == minilm("system: be brief\nuser: hello there", "Paris.")["input_ids"]


def test_bert_truncation_keeps_cls_and_sep(minilm):
    enc = RewardEncoder(minilm, 16)
    c, r = enc.encode_sample(pair(40, chosen="yes indeed it is", rejected="no"))
    assert len(c.input_ids) == 16 and len(c.token_type_ids) == 16 and c.truncated
    assert c.input_ids[0] == minilm.cls_token_id and c.input_ids[c.prompt_len - 1] == minilm.sep_token_id
    assert c.input_ids[:c.prompt_len] == r.input_ids[:r.prompt_len]
    assert minilm.decode(c.input_ids[c.prompt_len:], skip_special_tokens=True) == "yes indeed it is"
    assert c.token_type_ids == [0] * c.prompt_len + [1] * (16 - c.prompt_len)


# ----------------------------------------------------------------------------- conversations
def test_multi_turn_and_system_prompt(tok):
    turns = [user("hello"), assistant("hi"), user("what is it")]
    e = RewardEncoder(tok, 64, system_prompt="be brief").encode(turns, [assistant("yes")])
    assert e.input_ids == [2, 4, 18, 19, 7, 5, 14, 7, 6, 16, 7, 5, 20, 21, 26, 7, 6, 27, 7, 3]
    assert e.prompt_len == 17
    # an explicit system message wins over system_prompt
    e2 = RewardEncoder(tok, 64, system_prompt="hello").encode(PROMPT, [assistant("yes")])
    assert e2.input_ids[:5] == [2, 4, 18, 19, 7]


def test_reasoning_prefix_or_template_field(tok):
    resp = [assistant("yes", reasoning="think about it")]
    e = RewardEncoder(tok, 64).encode([user("hi")], resp)
    assert e.input_ids[e.prompt_len:] == [8, 24, 25, 26, 9, 27, 7, 3]  # <think> ... </think> yes
    aware = RewardEncoder(tiny_tokenizer(REASONING_TEMPLATE), 64)
    assert aware.template_reasoning
    e = aware.encode([user("hi")], resp)
    assert e.input_ids[e.prompt_len:] == [8, 24, 25, 26, 9, 27, 7, 3]  # rendered by the template itself
    plain = RewardEncoder(tok, 64, chat_template="none").encode([user("hi")], resp)
    assert plain.input_ids[plain.prompt_len:] == [8, 24, 25, 26, 9, 27, 3]


def test_template_renders_prompt_differently(tok):
    # the generation prompt opens a <think> block that the full render does not contain
    odd = TEMPLATE.replace("<|assistant|> {% endif %}", "<|assistant|> <think> {% endif %}")
    enc = RewardEncoder(tiny_tokenizer(odd), 64)
    c, r = enc.encode_sample(pair(3, chosen="hi", rejected="no"))
    ref = tok.apply_chat_template([{"role": "user", "content": words(0, 3)}, {"role": "assistant", "content": "hi"}],
                                  tokenize=True, return_dict=False)
    assert c.input_ids == list(ref) + [3]  # the text of the row is still the full render
    assert c.input_ids[:c.prompt_len] == r.input_ids[:r.prompt_len]
    assert c.input_ids[c.prompt_len - 1] == VOCAB["<|assistant|>"]


def test_token_merge_across_boundary():
    # "hi :" + ": no" pre-tokenises "::" as one (unknown) token, so the full ids do not start with
    # the prompt ids: the row is prompt ids + ids of the rest of the text
    template = ("{% for m in messages %}{% if m.role == 'assistant' %}hi :{% endif %}{{ m['content'] }} "
                "{% endfor %}{% if add_generation_prompt %}hi :{% endif %}")
    e = RewardEncoder(tiny_tokenizer(template), 64).encode([user("yes")], [assistant(": no")])
    assert e.input_ids == [27, 16, 13, 13, 28, 3] and e.prompt_len == 3


def test_template_sources_and_errors(tok, tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text(TEMPLATE)
    assert resolve_template(tok, str(path)) == TEMPLATE
    assert resolve_template(tok, "none") is None and resolve_template(tok, None) == TEMPLATE
    with pytest.raises(ValueError):
        resolve_template(tok, "no/such/file.jinja")
    with pytest.raises(ValueError):
        RewardEncoder(tok, 64, length_policy="cut")
    strict = TEMPLATE.replace("{% for m", "{% if messages[-1].content == 'boom' %}{{ raise_exception('no') }}"
                              "{% endif %}{% for m")
    enc = RewardEncoder(tiny_tokenizer(strict), 64)
    with pytest.raises(ValueError, match="chat template"):
        enc.encode([user("hi")], [assistant("boom")])
    kept, stats = enc.encode_dataset([pair(2), pair(2, chosen="boom")])
    assert stats.kept == 1 and stats.dropped == {"chat template error": 1}


# ----------------------------------------------------------------------------- dataset path
def _mixed(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        k = i % 4
        if k == 0:
            out.append(pair(3 + i % 37, chosen=words(0, 1 + i % 5), sid=f"p{i}", margin=0.5, tie=i % 8 == 0))
        elif k == 1:
            out.append(pair(2, chosen=words(0, 1 + i % 40), sid=f"l{i}"))  # some responses too long
        elif k == 2:
            cands = [[assistant(words(0, 1 + j))] for j in range(2 + i % 3)]
            out.append(Sample(id=f"n{i}", prompt=[SYSTEM, user(words(0, i % 30))], candidates=cands,
                              candidate_scores=[float(j % 2) for j in range(len(cands))]))
        else:
            out.append(Sample(id=f"q{i}", prompt=[user("hi")], response=[assistant("yes", reasoning="think")],
                              scores={"b": 1.0} if i % 8 == 3 else {"a": 2.0, "b": 3.0}))
    return out


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_encode_dataset_equals_per_sample(which, tok, request):
    encoder = RewardEncoder(request.getfixturevalue("minilm") if which == "minilm" else tok, 24)
    samples = _mixed(CHUNK_SAMPLES + 40)  # crosses a chunk boundary
    kept, stats = encoder.encode_dataset(samples)
    single = [encoder.encode_sample(s) for s in samples]
    assert [k.index for k in kept] == [i for i, e in enumerate(single) if e is not None]
    assert all(k.encodings == single[k.index] for k in kept)
    assert stats.kept == len(kept) and stats.total == len(samples)
    assert stats.truncated == sum(e[0].truncated for e in single if e) > 0
    assert stats.dropped.get("response too long", 0) > 0
    batch = encoder.encode_batch([(s.prompt, s.responses()[0]) for s in samples[:50]])
    assert batch == [encoder.encode(s.prompt, s.responses()[0]) for s in samples[:50]]


def test_labels(tok):
    samples = _mixed(8)
    assert attribute_names(samples) == ["b", "a"]  # order of first appearance
    kept, _ = RewardEncoder(tok, 256).encode_dataset(samples, attributes=["b", "a", "c"])
    by = {k.index: k for k in kept}
    assert (by[0].kind, by[0].margin, by[0].tie, by[4].tie) == ("pair", 0.5, True, False)
    assert by[2].kind == "nway" and by[2].ranks == [3, 1, 3, 1] and len(by[2].encodings) == 4
    assert by[3].scores[0] == 1.0 and math.isnan(by[3].scores[1]) and math.isnan(by[3].scores[2])
    assert by[7].scores[:2] == [3.0, 2.0]


# ----------------------------------------------------------------------------- rendered texts (issue 16)
@pytest.mark.parametrize("template", [TEMPLATE, REASONING_TEMPLATE])
def test_rendered_text_cut_at_the_end_token_encodes_like_its_conversation(template):
    """The template's turn suffix is " <|end|>\\n" and EOS is a different token (</s>), as in Llama-3's
    <|eot_id|> / <|end_of_text|>: a generation stopped at <|end|> (with or without EOS after it), pad
    text, repeated EOS and no prompt text all give the conversation's own ids."""
    tok = tiny_tokenizer(template)
    enc = RewardEncoder(tok, 64)
    assert enc.turn_suffix == " <|end|>\n"
    response = [assistant("hi friend", reasoning="think about it")]
    want = enc.encode(PROMPT, response)
    full = tok.apply_chat_template([m.model_dump(exclude_none=True) | (
        {"reasoning_content": m.reasoning} if m.reasoning else {}) for m in PROMPT + response], tokenize=False)
    if template == TEMPLATE:  # no reasoning field: <think> text goes into the content
        full = full.replace("<|assistant|> ", "<|assistant|> <think>think about it</think>\n")
    ptext = tok.apply_chat_template([m.model_dump(exclude_none=True) for m in PROMPT], tokenize=False,
                                    add_generation_prompt=True)
    cut = full.removesuffix("\n")
    assert cut.endswith("friend <|end|>")
    for text in (full, full + "</s>", cut, cut + "</s>", cut + "</s></s></s>", "<pad><pad>" + cut + "</s><pad>"):
        for prompt in (ptext, None):
            got = enc.encode_rendered([text], [prompt])[0]
            assert (got.input_ids, got.prompt_len) == (want.input_ids, want.prompt_len), (text, prompt)
    assert enc.complete_rendered("hi friend <|") == "hi friend <|"  # only a whole special token is a cut
    assert enc.complete_rendered(cut + "</s>") == full
    # a text that is not a render (no generation prompt) is never completed, even when it ends at <|end|>
    for other in ("hi friend <|end|>", "hi friend <|end|></s>"):
        assert enc.complete_rendered(other) == other
        assert enc.encode_rendered([other])[0].input_ids[-1] == tok.eos_token_id
        assert "\n" not in tok.decode(enc.encode_rendered([other])[0].input_ids)


def test_rendered_text_truncation_and_plain_format(tok):
    long = [user(words(0, 80))]
    resp = [assistant("hi friend")]
    for policy in ("truncate_prompt", "truncate_response"):
        enc = RewardEncoder(tok, 40, policy)
        full = tok.apply_chat_template([m.model_dump(exclude_none=True) for m in long + resp], tokenize=False)
        want = enc.encode(long, resp)
        got = enc.encode_rendered([full.removesuffix("\n")])[0]
        assert got == want and got.truncated
    drop = RewardEncoder(tok, 40, "drop")
    assert drop.encode_rendered([full]) == ["too long"]
    plain = RewardEncoder(tok, 64, chat_template="none")
    want = plain.encode(PROMPT, resp)
    text = "System: be brief\n\nUser: hello there\n\nAssistant: hi friend"
    for t in (text, text + "</s>", text + "</s></s>"):
        got = plain.encode_rendered([t])[0]
        assert (got.input_ids, got.prompt_len) == (want.input_ids, want.prompt_len)


def test_tool_calls_and_names_reach_the_template():
    template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}"
                "{% for c in m.tool_calls or [] %} {{ c.function.name }}{% endfor %}"
                "{% if m.name %} {{ m.name }}{% endif %} <|end|>\n{% endfor %}")
    enc = RewardEncoder(tiny_tokenizer(template), 64)
    call = [{"type": "function", "function": {"name": "hello", "arguments": {}}}]
    response = [Message(role="assistant", content="", tool_calls=call), Message(role="tool", name="friend", content="yes")]
    row = enc.encode([user("hi")], response)
    # <|user|> hi <|end|> | <|assistant|> hello(the call) <|end|> <|tool|>(3 unk) yes friend(the name) <|end|> </s>
    assert row.input_ids == [5, 16, 7, 6, 14, 7, 1, 1, 1, 27, 17, 7, 3] and row.prompt_len == 3
    ignore = RewardEncoder(tiny_tokenizer(TEMPLATE), 64)  # a template without the keys renders as before
    assert ignore.encode([user("hi")], [Message(role="assistant", content="yes", tool_calls=call)]) == \
        ignore.encode([user("hi")], [assistant("yes")])


def test_rendered_text_gets_the_run_system_prompt_like_training():
    """A template without a default system block: a render without a system message gets the encoder's
    system_prompt inserted after BOS (as training's conversation has it); one with its own keeps it."""
    tok = tiny_tokenizer(TEMPLATE)
    enc = RewardEncoder(tok, 64, system_prompt="w1 w2")
    response = [assistant("hi friend")]
    for prompt in ([user("hello there")], PROMPT):
        want = enc.encode(prompt, response)
        conv = [m.model_dump(exclude_none=True) for m in prompt]
        full = tok.apply_chat_template(conv + [{"role": "assistant", "content": "hi friend"}], tokenize=False)
        ptext = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        for text in (full, full.removesuffix("\n")):
            for p in (ptext, None):
                got = enc.encode_rendered([text], [p])[0]
                assert (got.input_ids, got.prompt_len) == (want.input_ids, want.prompt_len), (text, p)
    assert RewardEncoder(tok, 64).encode_rendered([full])[0].input_ids == RewardEncoder(tok, 64).encode(
        PROMPT, response).input_ids


def test_rendered_text_system_prompt_with_a_shared_system_header():
    """Llama 3.1 style: the template always writes a system block ("be brief" here, its dates there) and
    appends a given system message inside it. A render with its own system message is left alone (the run's
    system prompt must not be put in front of it); one without gets the run's."""
    template = ("{{ bos_token }}<|system|> be brief{% if messages[0]['role'] == 'system' %} "
                "{{ messages[0]['content'] }}{% endif %} <|end|>\n{% for m in messages %}{% if m['role'] != 'system' %}"
                "<|{{ m['role'] }}|> {{ m['content'] }} <|end|>\n{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|> {% endif %}")
    tok = tiny_tokenizer(template)
    enc = RewardEncoder(tok, 64, system_prompt="w1 w2")
    response = [assistant("hi friend")]
    for prompt in ([user("hello there")], [Message(role="system", content="w3"), user("hello there")]):
        want = enc.encode(prompt, response)
        conv = [m.model_dump(exclude_none=True) for m in prompt + response]
        full = tok.apply_chat_template(conv, tokenize=False)
        for p in (tok.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True), None):
            got = enc.encode_rendered([full.removesuffix("\n")], [p])[0]
            assert got.input_ids == want.input_ids, (prompt, p, tok.decode(got.input_ids))
