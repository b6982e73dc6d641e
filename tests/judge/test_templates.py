"""Judge templates: built-ins match the exporter's prompts, placeholder validation, rubric, enable_thinking."""

import pytest

from rmforge.data.export import ExportContext, PairwiseOptions, ScoreOptions, export_pairwise, export_pointwise
from rmforge.data.schema import Sample, Scale
from rmforge.errors import ConfigError
from rmforge.judge.templates import BUILTIN, chat_template_kwargs, load_template, render_chat, supports_thinking

PAIR = Sample(id="s1", prompt=[{"role": "user", "content": "Add {2} and 2"}],
              chosen=[{"role": "assistant", "content": "4"}], rejected=[{"role": "assistant", "content": "5"}])
POINT = Sample(id="s2", prompt=[{"role": "user", "content": "hi"}], response=[{"role": "assistant", "content": "hey"}],
               scores={"helpfulness": 3.0}, scale=Scale(min=0, max=4))


def test_builtin_templates_render_what_data_export_writes():
    row = next(export_pairwise(PAIR, ExportContext(PairwiseOptions())))
    a, b = (PAIR.chosen, PAIR.rejected) if row["metadata"]["chosen_position"] == "A" else (PAIR.rejected, PAIR.chosen)
    assert load_template(None, "pairwise").render_pairwise(PAIR.prompt, a, b) == row["input"][0]["content"]
    row = next(export_pointwise(POINT, ExportContext(ScoreOptions())))
    text = load_template("pointwise", "pointwise").render_pointwise(POINT.prompt, POINT.response, POINT.scale,
                                                                     "helpfulness")
    assert text == row["input"][0]["content"]


def test_every_builtin_validates_and_think_variants_ask_for_think():
    for name in BUILTIN:
        tpl = load_template(name, name.split("-")[0])
        assert tpl.mode == name.split("-")[0]
    assert "<think>" in BUILTIN["pairwise-think"] and "<think>" not in BUILTIN["pairwise"]


def test_rubric_template(tmp_path):
    tpl = load_template("pairwise-rubric", "pairwise")
    text = tpl.render_pairwise(PAIR.prompt, PAIR.chosen, PAIR.rejected, rubric="Correct arithmetic wins.")
    assert "[Rubric]\nCorrect arithmetic wins." in text
    with pytest.raises(ConfigError, match="set rubric=TEXT"):
        tpl.render_pairwise(PAIR.prompt, PAIR.chosen, PAIR.rejected)


@pytest.mark.parametrize("text, message", [
    ("Judge {conversation} and {response_a}", r"lacks the required placeholder\(s\) \{response_b\}"),
    ("{conversation} {response_a} {response_b} {score}", r"unknown placeholder\(s\) \{score\}"),
    ("{conversation} {response_a} {response_b} {", "literal braces"),
    ("{conversation} {response_a} {response_b} {}", "placeholders must be names"),
])
def test_bad_template_files_fail_with_the_file_name(tmp_path, text, message):
    path = tmp_path / "mine.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_template(str(path), "pairwise")
    assert "mine.txt" in str(err.value)


def test_user_template_file_and_wrong_mode(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Q: {conversation}\nA: {response_a}\nB: {response_b}\n<preference>?</preference>")
    tpl = load_template(str(path), "pairwise")
    assert tpl.render_pairwise(PAIR.prompt, PAIR.chosen, PAIR.rejected).startswith("Q: User: Add {2} and 2\nA: 4")
    with pytest.raises(ConfigError, match="not pointwise"):
        load_template("pairwise", "pointwise")
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_template("no-such-template", "pairwise")


class _Tok:
    """Enough of a tokenizer for render_chat (records the kwargs the chat template receives)."""

    def __init__(self, template):
        self.chat_template, self.seen = template, None

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, **kw):
        self.seen = kw
        return "<think>\n\n</think>\n" if kw.get("enable_thinking") is False else ""


def test_enable_thinking_passed_only_to_templates_that_read_it():
    qwen3 = _Tok("{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}")
    plain = _Tok("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert supports_thinking(qwen3) and not supports_thinking(plain)
    assert chat_template_kwargs(qwen3, False) == {"enable_thinking": False}
    assert chat_template_kwargs(plain, True) == {} and chat_template_kwargs(qwen3, None) == {}
    render_chat(qwen3, [{"role": "user", "content": "x"}], enable_thinking=False)
    assert qwen3.seen == {"enable_thinking": False}
    render_chat(plain, [{"role": "user", "content": "x"}], enable_thinking=True)
    assert plain.seen == {}
    with pytest.raises(ConfigError, match="no chat template"):
        render_chat(_Tok(None), [])
