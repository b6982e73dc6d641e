"""Conversations that arrive already rendered by the chat template (OpenRLHF's ``/get_reward`` queries).

:class:`RenderedTexts` is a mixin of :class:`~rmforge.reward_model.tokenize.RewardEncoder`: it probes what
the template writes after an assistant turn (``turn_suffix``, ``<|im_end|>\\n`` for ChatML) and
encodes a rendered text to exactly the token ids :meth:`RewardEncoder.encode` gives its
conversation, also when the text stops at the end token (``...answer<|im_end|>``: a generation
decoded up to the EOS it stopped on), has pad text around it or repeated EOS at its end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rmforge.data.schema import Message

if TYPE_CHECKING:
    from rmforge.reward_model.tokenize import Encoded


class RenderedTexts:
    """Rendered-text methods of :class:`~rmforge.reward_model.tokenize.RewardEncoder` (uses its template,
    tokenizer, ``_render``/``_chat_dicts``, ``_text_rows`` and ``_fit``)."""

    tok: Any
    mode: str
    _gen_suffix: str

    def _probe_turn_suffix(self) -> tuple[str, list[int], str]:
        """What the template writes after an assistant turn's content (``<|im_end|>\\n`` for ChatML),
        the lengths of its prefixes that end with a special token (where a decoded generation can stop:
        ``<|im_end|>``), and the first characters of a render (to tell a left pad from the template)."""
        mark = "rmforge-probe-answer"
        text = self._render([self._chat_dicts([Message(role="user", content="q"),
                                               Message(role="assistant", content=mark)])], False)[0] or ""
        at = text.rfind(mark)
        suffix = text[at + len(mark):] if at >= 0 else ""
        specials = [t for t in getattr(self.tok, "all_special_tokens", []) if t]
        cuts = sorted({i + len(t) for t in specials for i in _find_all(suffix, t) if i + len(t) < len(suffix)},
                      reverse=True)
        return suffix, cuts, text[:16]

    def _probe_system(self) -> tuple[str, str, str] | None:
        """How a render without a system message starts, up to its first user turn's content (``start``:
        the template's default system block, if any, then the user header), the part of it before the
        user turn (``old``) and what training writes there under ``system_prompt`` (``new``); None
        without a system prompt or when the renders do not split that way."""
        if self.mode != "chat" or not getattr(self, "system_prompt", None):
            return None
        mark = "rmforge-probe-user"

        def before_user(system: str | None) -> str | None:
            conv = ([Message(role="system", content=system)] if system is not None else []) + \
                [Message(role="user", content=mark)]
            text = self._render([self._chat_dicts(conv)], True)[0]
            return None if text is None or mark not in text else text[:text.index(mark)]

        start, with_system = before_user(None), before_user(self.system_prompt)
        if start is None or with_system is None:
            return None
        k = len(os.path.commonprefix([start[::-1], with_system[::-1]]))  # the shared user-turn header
        old, new = start[:len(start) - k], with_system[:len(with_system) - k]
        return None if old == new else (start, old, new)

    def with_system_prompt(self, text: str) -> str:
        """A rendered text as training renders its conversation under ``system_prompt``: a render that
        starts like one without a system message (nothing, or the template's default system block, then
        the first user turn) gets the system prompt's block there; any other text (its own system
        message, or not such a render) is left as it is."""
        probe = self._system_probe
        if probe is None or not text.startswith(probe[0]):
            return text
        return probe[2] + text[len(probe[1]):]

    @property
    def generation_prompt(self) -> str:
        """What the template adds for ``add_generation_prompt`` (``<|im_start|>assistant\\n``), "" if nothing."""
        return self._gen_suffix

    def rendered_answer(self, content: str) -> str:
        """What the template appends to a rendered prompt for an assistant turn holding ``content`` (for
        ChatML ``content + "<|im_end|>\\n"``; a template that trims content, as Llama 3's does, trims it);
        content + :attr:`turn_suffix` when the template's renders do not split that way."""
        probe = [Message(role="user", content="q")]
        head = self._render([self._chat_dicts(probe)], True)[0]
        full = self._render([self._chat_dicts([*probe, Message(role="assistant", content=content)])], False)[0]
        if head and full and full.startswith(head):
            return full[len(head):]
        return content + self.turn_suffix

    def complete_rendered(self, text: str) -> str:
        """A rendered conversation as training renders it (see :meth:`encode_rendered`). A text without
        the template's generation prompt (``<|im_start|>assistant\n``) is not a render of a conversation
        with an answer: only its pad text and repeated EOS are normalised, it is never completed."""
        tok = self.tok
        pad, eos = getattr(tok, "pad_token", None), getattr(tok, "eos_token", None)
        if pad and pad != eos:
            text = re.sub(f"^({re.escape(pad)})+|({re.escape(pad)})+$", "", text)
        if eos:
            text = re.sub(f"({re.escape(eos)})+$", eos, text)
            if not self._render_head.startswith(eos):  # left padding with pad == eos
                text = re.sub(f"^({re.escape(eos)})+", "", text)
        suffix = self.turn_suffix
        if not suffix or (self._gen_suffix and self._gen_suffix not in text):
            return text  # not a render of this template (no assistant turn opened): scored as it stands
        cands = [text[:-len(eos)], text] if eos and text.endswith(eos) else [text]
        for c in cands:
            if c.endswith(suffix):
                return c
        for cut in self._turn_cuts:
            for c in cands:
                if c.endswith(suffix[:cut]):
                    return c + suffix[cut:]
        return text

    def _rendered_prompt(self, full: str, prompt: str | None) -> tuple[str, int]:
        """(prompt text, start of its protected tail) of a rendered full text."""
        if self.mode == "plain":
            marker = "\n\nAssistant:" if "\n\nAssistant:" in full else "Assistant:"
            if prompt and full.startswith(prompt):
                ptext = prompt
            else:
                at = full.rfind(marker)
                ptext = full[:at + len(marker)] if at >= 0 else ""
            cut = len(marker) if ptext.endswith(marker) else 0
            return ptext, len(ptext) - cut
        ptext = prompt_prefix(prompt, [full]) if prompt else ""
        if not (prompt and full.startswith(prompt)):  # no prompt text, or one rendered differently or cut
            gen = self._gen_suffix  # from the left (OpenRLHF's long prompts): up to the last generation prompt
            at = full.rfind(gen) if gen else -1
            if at >= 0 and at + len(gen) > len(ptext):
                ptext = full[:at + len(gen)]
        limit = len(ptext) - len(self._gen_suffix) if self._gen_suffix and ptext.endswith(self._gen_suffix) \
            else len(ptext)
        end = self.turn_suffix.rstrip()
        at = ptext.rfind(end, 0, limit) if end else -1
        if at >= 0:
            return ptext, len(ptext[:at].rstrip())
        return ptext, limit

    def encode_rendered(self, texts: Sequence[str], prompts: Sequence[str | None] | None = None
                        ) -> list[Encoded | str]:
        """Rows for conversations already rendered by this template (OpenRLHF's ``/get_reward``
        queries), identical to encoding the conversation; a drop reason (str) where the length
        policy drops one.

        Normalisation: the run's ``system_prompt`` block goes where a render has no system message
        (:meth:`with_system_prompt`, on the prompt text too); pad text is stripped at both ends (leading EOS text too when pad == EOS),
        repeated trailing EOS collapsed, and a text that stops inside the template's turn suffix at a
        special token (``...answer<|im_end|>`` for ``<|im_end|>\\n``: a generation decoded up to
        its end token) completed to the whole suffix; then the text is tokenised the way
        :meth:`encode` tokenises a render (the prompt part first) and EOS appended under
        ``append_eos``. The prompt part is ``prompts[i]`` when given (the template's render with the
        generation prompt, as OpenRLHF sends it), else the text up to the last generation prompt
        (``<|im_start|>assistant\\n``); without either the text cannot be truncated. Text-pair
        encoders cannot split a render: the caller turns those into (prompt, response) pairs."""
        if self.mode == "pair":
            raise ValueError("encode_rendered needs a decoder format (chat or plain)")
        prompts = list(prompts) if prompts is not None else [None] * len(texts)
        rows = []
        for text, prompt in zip(texts, prompts, strict=True):
            full = self.with_system_prompt(self.complete_rendered(text))
            prompt = self.with_system_prompt(prompt) if prompt else prompt
            ptext, tail_at = self._rendered_prompt(full, prompt)
            rows.append((ptext, [full], tail_at))
        return [r if isinstance(r, str) else r[0] for r in self._fit(self._text_rows(rows))]


def _find_all(text: str, part: str) -> list[int]:
    out, at = [], text.find(part)
    while at >= 0:
        out.append(at)
        at = text.find(part, at + 1)
    return out


def prompt_prefix(ptext: str, fulls: Sequence[str]) -> str:
    """The prompt part of full renders: ``ptext`` when every render starts with it, else (a template
    that renders the prompt differently in the two calls) the longest common text prefix cut back to
    a newline, ``>`` or space."""
    if all(f.startswith(ptext) for f in fulls):
        return ptext
    k = min(len(os.path.commonprefix([ptext, f])) for f in fulls)
    return ptext[:max(ptext.rfind(c, 0, k) for c in "\n> ") + 1]
