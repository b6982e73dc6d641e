"""Pure helpers shared by processing and splitting: text keys, token counting, filter expressions.

- :func:`normalize_text` is the single definition of "the same text" used by ``dedup``
  (``mode: normalized``), by ``split`` (``group_by_prompt``) and by the validator's leak check
  (:func:`prompt_key`), so the three always agree;
- :class:`TokenCounter` and :func:`shrink_prompt` back the ``length_filter`` step;
- :func:`compile_expr` / :func:`eval_expr` evaluate ``filter``'s restricted ``expr``.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from types import CodeType
from typing import Any

from rmforge.data.schema import Conversation, Sample, text
from rmforge.errors import ConfigError, DataError

_SPACE = re.compile(r"\s+")


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def normalize_text(value: str) -> str:
    """NFKC, casefold, whitespace runs collapsed to one space, punctuation stripped at both ends."""
    value = _SPACE.sub(" ", unicodedata.normalize("NFKC", value).casefold())
    start, end = 0, len(value)
    while start < end and _is_edge_junk(value[start]):
        start += 1
    while end > start and _is_edge_junk(value[end - 1]):
        end -= 1
    return value[start:end]


def conv_key(conv: Conversation | None, normalized: bool = True) -> str:
    """Comparison key of a conversation: its :func:`~rmforge.data.schema.text`, optionally normalized."""
    joined = text(conv)
    return normalize_text(joined) if normalized else joined


def prompt_key(sample: Sample) -> str:
    """Normalized prompt text; ``""`` means the sample has no prompt (it then groups with nothing)."""
    return conv_key(sample.prompt, normalized=True)


# ---------------------------------------------------------------- token counting

_TOKENIZERS: dict[str, Any] = {}


def load_tokenizer_cached(name_or_tok: Any) -> Any:
    """A tokenizer object passes through; a name is loaded once per process."""
    if not isinstance(name_or_tok, str):
        return name_or_tok
    if name_or_tok not in _TOKENIZERS:
        from rmforge.models import load_tokenizer

        _TOKENIZERS[name_or_tok] = load_tokenizer(name_or_tok)
    return _TOKENIZERS[name_or_tok]


class TokenCounter:
    """Batched token counting (fast tokenizer call, no special tokens) with optional chat template."""

    def __init__(self, tokenizer: Any, chat_template: bool = False, batch_size: int = 1000):
        self.tok, self.batch_size = load_tokenizer_cached(tokenizer), batch_size
        self.template = bool(chat_template and getattr(self.tok, "chat_template", None))

    def encode(self, texts: list[str], offsets: bool = False) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[i:i + self.batch_size], add_special_tokens=False, verbose=False,
                           return_attention_mask=False, return_offsets_mapping=offsets)
            out.extend(enc["offset_mapping"] if offsets else enc["input_ids"])
        return out

    def count(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.encode(texts)]

    def render(self, prompt: Conversation) -> str:
        """Prompt text as counted: contents joined by newlines, or the chat template with a generation prompt."""
        if not self.template or not prompt:
            return text(prompt)
        msgs = [{"role": m.role, "content": m.content} for m in prompt]
        return self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def default_reserve(self) -> int:
        """Tokens around the response that the counts miss: the model's special tokens for a
        (prompt, response) pair, or with a chat template the markup that closes an assistant turn."""
        if not self.template:
            return self.tok.num_special_tokens_to_add(pair=True)
        try:
            user = [{"role": "user", "content": "x"}]
            head = self.tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
            full = self.tok.apply_chat_template(user + [{"role": "assistant", "content": "y"}], tokenize=False)
            a, b, y = self.count([head, full, "y"])
            return max(0, b - a - y)
        except Exception:  # templates that reject this probe: count nothing extra
            return 0


def shrink_prompt(prompt: Conversation, counts: list[int], offsets: list[list[tuple[int, int]]],
                   target: int) -> Conversation | None:
    """Fit ``prompt`` into ``target`` tokens (per-message counts): drop leading turns, then cut the
    last user turn from the left. System messages and the last user turn always stay."""
    users = [k for k, m in enumerate(prompt) if m.role == "user"]
    anchor = users[-1] if users else len(prompt) - 1
    keep = [True] * len(prompt)
    total = sum(counts)
    removable = [k for k in range(anchor) if prompt[k].role != "system"]
    removed = False
    for k in removable:
        if total <= target:
            break
        keep[k], total, removed = False, total - counts[k], True
    if removed:  # the kept conversation must not open with an assistant/tool turn
        for k in removable:
            if keep[k]:
                if prompt[k].role == "user":
                    break
                keep[k], total = False, total - counts[k]
    out = [m for k, m in enumerate(prompt) if keep[k]]
    if total > target:
        left = counts[anchor] - (total - target)
        if left < 1:
            return None
        msg = prompt[anchor]
        cut = offsets[anchor][counts[anchor] - left][0]
        out[sum(keep[:anchor])] = msg.model_copy(update={"content": msg.content[cut:]})
    return out


# ---------------------------------------------------------------- restricted expressions

EXPR_NAMES = ("id", "prompt", "chosen", "rejected", "margin", "tie", "candidates", "ranks", "candidate_scores",
              "candidate_labels", "response", "scores", "scale", "source", "subset", "category", "split",
              "metadata", "kind", "n_turns")
_ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
                  ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is,
                  ast.IsNot, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
                  ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Call, ast.Subscript, ast.Slice,
                  ast.Tuple, ast.List)


def compile_expr(expr: str) -> CodeType:
    """Compile a filter expression after checking it only uses safe syntax.

    Allowed: constants, the names in :data:`EXPR_NAMES`, comparisons (``in`` included), ``and``/
    ``or``/``not``, arithmetic without ``**``, indexing, attribute access to public attributes and
    ``len(x)``. Anything else (other calls, imports, lambdas, ``_``-prefixed names or attributes)
    raises ConfigError naming the expression.
    """
    def bad(why: str) -> ConfigError:
        return ConfigError(f"filter expr {expr!r}: {why}")

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise bad(f"invalid syntax ({exc.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise bad(f"{type(node).__name__} is not allowed (only comparisons, boolean logic, arithmetic, "
                      "names, constants, attributes, indexing and len())")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise bad(f"access to the private attribute '{node.attr}' is not allowed")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id == "len"
                                               and len(node.args) == 1 and not node.keywords):
            raise bad("the only call allowed is len(x)")
        if isinstance(node, ast.Name) and node.id != "len" and node.id not in EXPR_NAMES:
            raise bad(f"unknown name '{node.id}' (names: {', '.join(EXPR_NAMES)})")
    return compile(tree, "<filter expr>", "eval")


def expr_names(sample: Sample) -> dict[str, Any]:
    """The names an expression sees: the sample's fields, conversations as their text, plus
    ``kind`` and ``n_turns`` (number of prompt messages)."""
    names = {name: getattr(sample, name) for name in EXPR_NAMES if name not in ("kind", "n_turns")}
    for name in ("prompt", "chosen", "rejected", "response"):
        value = getattr(sample, name)
        names[name] = None if value is None else text(value)
    names["candidates"] = None if sample.candidates is None else [text(c) for c in sample.candidates]
    names.update(kind=sample.kind, n_turns=len(sample.prompt), len=len)
    return names


def eval_expr(code: CodeType, expr: str, sample: Sample) -> bool:
    """Truth value of a compiled expression for one sample (DataError naming both on failure)."""
    try:
        return bool(eval(code, {"__builtins__": {}}, expr_names(sample)))  # noqa: S307 - checked AST
    except Exception as exc:
        raise DataError(f"filter expr {expr!r} failed on sample '{sample.id}': "
                        f"{type(exc).__name__}: {exc}") from None
