"""One encoding path for reward models, shared by training, evaluation and serving (issue 3).

:class:`RewardEncoder` turns ``(prompt, response)`` conversations into token ids. The scored
position is always the last token of a row. Three formats, chosen from the tokenizer:

* ``chat`` (decoder with a chat template: the tokenizer's own, a Jinja file or string):
  ``full = template(prompt + response)`` and ``prompt = template(prompt, add_generation_prompt)``,
  both tokenised with ``add_special_tokens=False`` (the template writes BOS itself, as in
  ``apply_chat_template(tokenize=True)``, so BOS is never doubled). When the full ids start with
  the prompt ids they are used as they are; when only the text is a prefix (a token merges across
  the boundary) the row is ``prompt ids + ids(full text after the prompt)``; when the template
  renders the prompt differently in the two calls, the prompt part is the longest common text
  prefix (cut back to a newline, ``>`` or space) and the rest of the full text is tokenised
  separately. The text of the row is the full render in every case.
* ``plain`` (decoder without a template, or ``chat_template="none"``):
  ``[BOS]System: ...\\n\\nUser: ...\\n\\nAssistant: <response>`` (BOS only when the tokenizer
  adds one itself; later response messages as ``\\n\\nRole: content``).
* ``pair`` (encoder: tokenizer with [CLS]/[SEP] and no template, or ``encoder=True``): the
  tokenizer's own text-pair encoding ``[CLS] prompt [SEP] response [SEP]`` with its
  ``token_type_ids``. The prompt text is the content alone for a single user message, else
  ``role: content`` lines (responses likewise); chat templates are not used. Each prompt is
  tokenised once per sample and joined to each response by the tokenizer's post-processor
  (needs a fast tokenizer; identical to ``tokenizer(prompt, response)``).

Decoders get the EOS id appended when the last token is not already EOS (``append_eos``);
encoders never (the final [SEP] closes the row). Reasoning text (``Message.reasoning``) goes to
the template as ``reasoning_content`` when the template reads a reasoning field, otherwise it is
prefixed to the content as ``<think>...</think>\\n`` (every format, every assistant turn).
Template switches such as Qwen3's ``enable_thinking`` pass through ``template_kwargs``. An
assistant's ``tool_calls`` and a tool message's ``name`` go to the template in the message dicts (a
template that does not read them ignores them; the plain and pair formats do not show them).

Texts already rendered by the template (OpenRLHF's ``/get_reward``) are encoded by
:meth:`RewardEncoder.encode_rendered` (:mod:`rmforge.reward_model.rendered`) to the same ids as their
conversations, also when cut at the end token (``...answer<|im_end|>``).

Length policy (``max_length`` counts every token, EOS included): ``drop`` drops long samples;
``truncate_prompt`` cuts prompt tokens from the left, keeping the leading special tokens
(BOS/CLS, a template's role marker right after BOS) and the prompt's closing tokens (end of the
last turn + generation prefix, or the separator), so the final length is exactly ``max_length``.
Responses are never cut: a sample whose response does not fit with those kept tokens is dropped
("response too long"). ``truncate_response`` cuts the prompt the same way and then, where a
response still does not fit, cuts that response's text from the right, keeping its closing
special tokens (the first special token among its last four, e.g. SEP, or an end-of-turn
marker and EOS), so nothing is dropped for length (evaluation of short-context encoders on
long benchmarks; counted as ``response_truncated``). All responses of a sample share one
identical (possibly truncated) prompt, sized for the longest response.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rmforge.data.schema import Message, Sample
from rmforge.reward_model.rendered import RenderedTexts, prompt_prefix

LengthPolicy = Literal["truncate_prompt", "truncate_response", "drop"]
CHUNK_SAMPLES = 256
"""Samples per batched tokenizer call in :meth:`RewardEncoder.encode_dataset` (~512 texts for pairs)."""
RESPONSE_TOO_LONG = "response too long"
TOO_LONG = "too long"
TEMPLATE_ERROR = "chat template error"
_REASONING_FIELD = re.compile(r"(\.|\[\s*['\"])(reasoning_content|thinking|reasoning)\b")
_PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encoded row: ``input_ids[:prompt_len]`` is the prompt part (shared within a sample)."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    prompt_len: int
    truncated: bool = False
    response_cut: int = 0
    """Tokens cut from the response (``truncate_response`` only)."""


@dataclass(slots=True)
class EncodedSample:
    """A kept sample: its index in the input, kind, encodings (sample order) and loss labels."""

    index: int
    kind: str
    encodings: list[Encoded]
    margin: float | None = None
    tie: bool = False
    ranks: list[int] | None = None
    """N-way: 1 = best (derived from ``candidate_scores`` when the sample has no ranks)."""
    scores: list[float] | None = None
    """Pointwise: one value per attribute of the ordered attribute list, NaN when missing."""
    sample_id: str | None = None
    """The sample's ``id`` (falls back to its index in the input where the sample has none)."""


@dataclass
class EncodeStats:
    """Counts of one :meth:`RewardEncoder.encode_dataset` call (kept includes truncated)."""

    kept: int = 0
    truncated: int = 0
    response_truncated: int = 0
    """Samples with at least one response cut (``truncate_response``)."""
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def total(self) -> int:
        return self.kept + self.num_dropped

    def as_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "truncated": self.truncated, "response_truncated": self.response_truncated,
                "dropped": self.num_dropped,
                "dropped_by_reason": dict(self.dropped)}

    def __str__(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in self.dropped.items())
        cut = f" (responses cut in {self.response_truncated})" if self.response_truncated else ""
        return (f"kept {self.kept}/{self.total}, truncated {self.truncated}{cut}, dropped {self.num_dropped}"
                + (f" ({why})" if why else ""))


def attribute_names(samples: Iterable[Sample]) -> list[str]:
    """Pointwise attribute names in order of first appearance (the default score order)."""
    names: dict[str, None] = {}
    for s in samples:
        if s.scores:
            names.update(dict.fromkeys(s.scores))
    return list(names)


def resolve_template(tokenizer: Any, chat_template: str | None) -> str | None:
    """Template text: ``None`` = the tokenizer's own, ``"none"`` = no template, else a file or string."""
    if chat_template is None:
        own = getattr(tokenizer, "chat_template", None)
        return own.get("default") if isinstance(own, dict) else own
    if chat_template.strip().lower() == "none":
        return None
    if "{{" in chat_template or "{%" in chat_template:
        return chat_template
    if os.path.isfile(chat_template):
        with open(chat_template, encoding="utf-8") as fh:
            return fh.read()
    raise ValueError(f"chat_template {chat_template!r} is neither 'none', a Jinja template nor an existing file")


def _as_messages(conv: Sequence[Message | dict[str, Any]]) -> list[Message]:
    return [m if isinstance(m, Message) else Message(**m) for m in conv]


def _with_think(m: Message) -> str:
    return f"<think>{m.reasoning}</think>\n{m.content}" if m.reasoning else m.content


class RewardEncoder(RenderedTexts):
    """Encodes conversations for a reward model (see the module docstring for the formats)."""

    def __init__(self, tokenizer: Any, max_length: int, length_policy: LengthPolicy = "truncate_prompt",
                 chat_template: str | None = None, append_eos: bool = True, system_prompt: str | None = None,
                 encoder: bool | None = None, template_kwargs: dict[str, Any] | None = None):
        if length_policy not in ("truncate_prompt", "truncate_response", "drop"):
            raise ValueError(f"length_policy must be 'truncate_prompt', 'truncate_response' or 'drop', "
                             f"got {length_policy!r}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.tok, self.max_length, self.length_policy = tokenizer, int(max_length), length_policy
        self.system_prompt, self.template_kwargs = system_prompt, dict(template_kwargs or {})
        self.template = resolve_template(tokenizer, chat_template)
        if encoder is None:
            encoder = (getattr(tokenizer, "cls_token", None) is not None and getattr(tokenizer, "sep_token", None)
                       is not None and self.template is None)
        self.mode = "pair" if encoder else ("chat" if self.template else "plain")
        self.append_eos = append_eos and self.mode != "pair"
        self.eos_id = tokenizer.eos_token_id if self.append_eos else None
        self.template_reasoning = bool(self.template and _REASONING_FIELD.search(self.template))
        self._special = set(tokenizer.all_special_ids)
        self._bk = _own_backend(tokenizer)
        self._types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        if self.mode == "pair":
            if self._bk is None:
                raise ValueError("the encoder (text-pair) format needs a fast (tokenizers-backed) tokenizer")
            seq = self._bk.encode("a", "b", add_special_tokens=True).sequence_ids  # special tokens are None
            head, first = seq.index(0), seq.index(1)
            self._pair_layout = (head, first - 1 - max(i for i in range(first) if seq[i] == 0))
        self._bos_text = ""
        if self.mode == "plain" and tokenizer.bos_token_id is not None:
            ids = tokenizer("x", add_special_tokens=True)["input_ids"]
            self._bos_text = tokenizer.bos_token if ids and ids[0] == tokenizer.bos_token_id else ""
        self._gen_suffix = self._probe_gen_suffix() if self.mode == "chat" else ""
        self.turn_suffix, self._turn_cuts, self._render_head = self._probe_turn_suffix() if self.mode == "chat" \
            else ("", [], "")
        self._system_probe = self._probe_system()
        self.last_error: str | None = None

    # ------------------------------------------------------------------ public API
    def info(self) -> dict[str, Any]:
        """What a manifest needs to reproduce this encoding."""
        sha = hashlib.sha256(self.template.encode()).hexdigest() if self.template else None
        return {"format": self.mode, "chat_template_sha256": sha, "append_eos": self.append_eos,
                "eos_token_id": self.eos_id, "max_length": self.max_length, "length_policy": self.length_policy,
                "system_prompt": self.system_prompt, "template_kwargs": self.template_kwargs}

    def encode(self, prompt: Sequence[Message], response: Sequence[Message]) -> Encoded | None:
        """One row, or None when the length policy drops it. Raises ValueError on template errors."""
        out = self._checked(self._encode_chunk([(prompt, [response])])[0])
        return None if out is None else out[0]

    def encode_batch(self, items: Sequence[tuple[Sequence[Message], Sequence[Message]]]) -> list[Encoded | None]:
        """:meth:`encode` for many (prompt, response) pairs with batched tokenisation (serving)."""
        res = []
        for start in range(0, len(items), 2 * CHUNK_SAMPLES):
            chunk = items[start:start + 2 * CHUNK_SAMPLES]
            res += [None if isinstance(r, str) else r[0] for r in self._encode_chunk([(p, [r]) for p, r in chunk])]
        return res

    def encode_sample(self, sample: Sample) -> list[Encoded] | None:
        """All responses of a sample sharing one prompt; None when any response is dropped."""
        return self._checked(self._encode_chunk([(sample.prompt, sample.responses())])[0])

    def encode_dataset(self, samples: Iterable[Sample], progress: bool = False,
                       attributes: Sequence[str] | None = None) -> tuple[list[EncodedSample], EncodeStats]:
        """Encode samples in batched chunks; ``attributes`` orders pointwise scores
        (default :func:`attribute_names`). Template errors are counted as drops."""
        samples = list(samples)
        attrs = list(attributes) if attributes is not None else attribute_names(samples)
        stats, out = EncodeStats(), []
        bar = _progress(len(samples)) if progress else None
        for start in range(0, len(samples), CHUNK_SAMPLES):
            chunk = samples[start:start + CHUNK_SAMPLES]
            for i, (s, res) in enumerate(zip(chunk, self._encode_chunk([(s.prompt, s.responses()) for s in chunk]))):
                if isinstance(res, str):
                    stats.dropped[res] = stats.dropped.get(res, 0) + 1
                    continue
                stats.kept += 1
                stats.truncated += res[0].truncated
                stats.response_truncated += any(e.response_cut for e in res)
                out.append(_labelled(start + i, s, res, attrs))
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return out, stats

    # ------------------------------------------------------------------ rendering
    def _checked(self, res: list[Encoded] | str) -> list[Encoded] | None:
        if res == TEMPLATE_ERROR:
            raise ValueError(f"the chat template failed on this conversation: {self.last_error}")
        return None if isinstance(res, str) else res

    def _msgs(self, prompt: Sequence[Message]) -> list[Message]:
        prompt = _as_messages(prompt)
        if self.system_prompt and not any(m.role == "system" for m in prompt):
            prompt.insert(0, Message(role="system", content=self.system_prompt))
        return prompt

    def _chat_dicts(self, conv: Iterable[Message]) -> list[dict[str, Any]]:
        """Message dicts for the template; ``tool_calls`` and ``name`` only where set (a template that
        does not read them ignores them, so conversations without them render as before)."""
        out = []
        for m in conv:
            d: dict[str, Any] = {"role": m.role}
            if self.template_reasoning:  # transformers aliases reasoning_content to `thinking`/`reasoning`
                d.update(content=m.content, reasoning_content=m.reasoning)
            else:
                d["content"] = _with_think(m)
            if m.tool_calls is not None:
                d["tool_calls"] = m.tool_calls
            if m.name is not None:
                d["name"] = m.name
            out.append(d)
        return out

    def _render(self, convs: list[list[dict[str, str]]], gen: bool) -> list[str | None]:
        kw = dict(tokenize=False, add_generation_prompt=gen, chat_template=self.template, **self.template_kwargs)
        try:
            return list(self.tok.apply_chat_template(convs, **kw)) if convs else []
        except Exception:  # find the bad conversation(s); the others still render
            out: list[str | None] = []
            for conv in convs:
                try:
                    out.append(self.tok.apply_chat_template([conv], **kw)[0])
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    out.append(None)
            return out

    def _probe_gen_suffix(self) -> str:
        conv = [[{"role": "user", "content": "x"}]]
        with_gen, without = self._render(conv, True)[0], self._render(conv, False)[0]
        return with_gen[len(without):] if with_gen and without and with_gen.startswith(without) else ""

    def _plain(self, prompt: list[Message], responses: list[list[Message]]) -> tuple[str, list[str], int]:
        head = "\n\n".join(f"{_PLAIN_ROLES[m.role]}: {_with_think(m)}" for m in prompt)
        ptext = self._bos_text + head + ("\n\n" if head else "") + "Assistant:"
        fulls = [ptext + "".join((" " if j == 0 else f"\n\n{_PLAIN_ROLES[m.role]}: ") + _with_think(m)
                                 for j, m in enumerate(r)) for r in responses]
        return ptext, fulls, len(ptext) - len("\n\nAssistant:" if head else "Assistant:")

    def _chat_texts(self, items: list[tuple[list[Message], list[list[Message]]]]):
        """Per sample (prompt text, full texts, start of the prompt's protected tail) or None."""
        prompts = self._render([self._chat_dicts(p) for p, _ in items], True)
        fulls = self._render([self._chat_dicts(p + r) for p, rs in items for r in rs], False)
        out, pos = [], 0
        for (p, rs), ptext in zip(items, prompts):
            fl = fulls[pos:pos + len(rs)]
            pos += len(rs)
            if any(f is None for f in fl):
                out.append(None)
                continue
            ptext = prompt_prefix(ptext or "", fl)
            limit = len(ptext) - len(self._gen_suffix) if ptext.endswith(self._gen_suffix) else len(ptext)
            last = p[-1].content.strip() if p else ""
            at = ptext.rfind(last, 0, limit) if last else -1
            out.append((ptext, fl, at + len(last) if at >= 0 else limit))
        return out

    # ------------------------------------------------------------------ tokenisation
    def _ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self._bk is not None:
            return [e.ids for e in getattr(self._bk, "encode_batch_fast", self._bk.encode_batch)(
                texts, add_special_tokens=False)]
        return self.tok(texts, add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)["input_ids"]

    def _tail_lens(self, texts: list[str], starts: list[int]) -> list[int]:
        """Tokens of each text that overlap ``text[starts[i]:]`` (the protected prompt tail)."""
        if self._bk is None:  # slow tokenizer: tokenise the tail alone
            return [len(ids) for ids in self._ids([t[s:] for t, s in zip(texts, starts)])]
        encs = self._bk.encode_batch(texts, add_special_tokens=False) if texts else []
        return [sum(1 for a, b in e.offsets if a >= s or b > s) for e, s in zip(encs, starts)]

    def _encode_chunk(self, items: Sequence[tuple[Sequence[Message], Sequence[Sequence[Message]]]]
                      ) -> list[list[Encoded] | str]:
        """Encodings per sample, or the drop reason. Rows of a sample share ``ids[:prompt_len]``."""
        items = [(self._msgs(p), [_as_messages(r) for r in rs]) for p, rs in items]
        if self.mode == "pair":
            return self._pair_chunk(items)
        texts = self._chat_texts(items) if self.mode == "chat" else [self._plain(p, rs) for p, rs in items]
        return self._fit(self._text_rows(texts))

    def _text_rows(self, texts: list[tuple[str, list[str], int] | None]) -> list[Any]:
        """Token rows of rendered (prompt text, full texts, tail start) per sample, for :meth:`_fit`."""
        live = [t for t in texts if t is not None]
        p_ids = iter(self._ids([t[0] for t in live]))
        f_ids = iter(self._ids([f for t in live for f in t[1]]))
        rows: list[Any] = []  # per sample: [prompt ids, [response ids], prompt text, tail start] or None
        redo: list[tuple[list[Any], int, str]] = []  # (response list, slot, text) to tokenise on its own
        for t in texts:
            prompt = next(p_ids) if t is not None else None
            rows.append(t and [prompt, [], t[0], t[2]])
            for j, full in enumerate(t[1] if t else ()):
                ids = next(f_ids)
                rows[-1][1].append(ids[len(prompt):] if ids[:len(prompt)] == prompt else None)
                if rows[-1][1][-1] is None:
                    redo.append((rows[-1][1], j, full[len(t[0]):]))
        for (resp, j, _), ids in zip(redo, self._ids([r[2] for r in redo])):
            resp[j] = ids
        seqs: list[Any] = []
        for row in rows:
            if row is None:
                seqs.append(None)
                continue
            prompt, resp, ptext, tail_at = row
            if self.eos_id is not None:
                resp = [r if (r or prompt or [None])[-1] == self.eos_id else r + [self.eos_id] for r in resp]
            head = 0  # the leading run of special tokens (BOS, a role marker) survives truncation
            while head < len(prompt) and prompt[head] in self._special:
                head += 1
            seqs.append(([prompt + r for r in resp], None, len(prompt), head, None, ptext, tail_at))
        return seqs

    def _pair_chunk(self, items: list[tuple[list[Message], list[list[Message]]]]) -> list[list[Encoded] | str]:
        """Prompt and responses tokenised once each, joined by the tokenizer's own pair post-processor
        (identical to ``tokenizer(prompt, response)``: pair encoding never merges across segments)."""
        def text(conv: list[Message]) -> str:
            if len(conv) == 1 and conv[0].role in ("user", "assistant"):
                return _with_think(conv[0])
            return "\n".join(f"{m.role}: {_with_think(m)}" for m in conv)

        bk = self._bk
        encode = getattr(bk, "encode_batch_fast", bk.encode_batch)
        prompts = encode([text(p) for p, _ in items], add_special_tokens=False)
        responses = iter(encode([text(r) for _, rs in items for r in rs], add_special_tokens=False))
        head, mid = self._pair_layout
        seqs = []
        for prompt, (_, rs) in zip(prompts, items):
            encs = [bk.post_process(prompt, next(responses), add_special_tokens=True) for _ in rs]
            ttis = [e.type_ids for e in encs] if self._types else None
            seqs.append(([e.ids for e in encs], ttis, head + len(prompt) + mid, head, mid, "", 0))
        return self._fit(seqs)

    # ------------------------------------------------------------------ length policy
    def _fit(self, seqs: list[Any]) -> list[list[Encoded] | str]:
        """Apply the length policy to (rows, token types, prompt_len, head, tail, prompt text,
        tail start) per sample; a tail of None is measured here, only for samples to truncate."""
        limit = self.max_length
        lazy = [i for i, s in enumerate(seqs) if s is not None and s[4] is None
                and self.length_policy != "drop" and max(len(r) for r in s[0]) > limit]
        tails = dict(zip(lazy, self._tail_lens([seqs[i][5] for i in lazy], [seqs[i][6] for i in lazy])))
        out: list[list[Encoded] | str] = []
        for i, s in enumerate(seqs):
            if s is None:
                out.append(TEMPLATE_ERROR)
                continue
            ids, ttis, plen, head, tail = s[:5]
            ttis = ttis or [None] * len(ids)
            longest = max(len(r) for r in ids)
            over = longest - limit
            if over <= 0:
                out.append([Encoded(r, t, plen) for r, t in zip(ids, ttis)])
            elif self.length_policy == "drop":
                out.append(TOO_LONG)
            elif (self.length_policy == "truncate_prompt"
                  and head + (tail if tail is not None else tails[i]) + longest - plen > limit):
                out.append(RESPONSE_TOO_LONG)
            else:  # same cut for every row: the prompt stays identical
                pcut = min(over, max(plen - head - (tail if tail is not None else tails[i]), 0))
                cut = slice(head, head + pcut)
                out.append([self._cut_response(r[:cut.start] + r[cut.stop:],
                                               None if t is None else t[:cut.start] + t[cut.stop:], plen - pcut)
                            for r, t in zip(ids, ttis)])
        return out

    def _cut_response(self, ids: list[int], types: list[int] | None, plen: int) -> Encoded:
        """A row whose prompt is already cut; cuts the response body from the right when still too long."""
        over = len(ids) - self.max_length
        if over <= 0:
            return Encoded(ids, types, plen, True)
        keep = next((j for j in range(max(plen, len(ids) - 4), len(ids)) if ids[j] in self._special), len(ids))
        start = max(keep - over, plen)
        if keep - start < over:  # the prompt's kept tokens and closing specials alone exceed max_length
            raise ValueError(f"max_length {self.max_length} is too small to keep the prompt's special tokens")
        cut = slice(start, start + over)
        return Encoded(ids[:cut.start] + ids[cut.stop:], None if types is None else types[:cut.start] + types[cut.stop:],
                       plen, True, over)


def _own_backend(tokenizer: Any) -> Any:
    """A private copy of a fast tokenizer's Rust backend with truncation and padding off (some
    tokenizer.json files, MiniLM's among them, switch them on); None for slow tokenizers. Build
    the encoder after the tokenizer is final (tokens added later are not seen)."""
    bk = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if bk is None:
        return None
    from tokenizers import Tokenizer

    own = Tokenizer.from_str(bk.to_str())
    own.no_truncation()
    own.no_padding()
    own.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
    return own


def _labelled(index: int, s: Sample, encs: list[Encoded], attrs: list[str]) -> EncodedSample:
    kind, sid = s.kind, s.id or str(index)
    if kind == "pair":
        return EncodedSample(index, kind, encs, margin=s.margin, tie=s.tie, sample_id=sid)
    if kind == "nway":
        ranks = s.ranks
        if ranks is None:  # competition ranking from scores: equal scores share a rank
            sc = s.candidate_scores
            ranks = [1 + sum(o > v for o in sc) for v in sc]
        return EncodedSample(index, kind, encs, ranks=list(ranks), sample_id=sid)
    scores = [float(s.scores.get(a, math.nan)) for a in attrs] if s.scores else [math.nan] * len(attrs)
    return EncodedSample(index, kind, encs, scores=scores, sample_id=sid)


def _progress(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="encode", unit="sample")
