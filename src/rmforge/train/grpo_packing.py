"""Prefix-shared log-probabilities for GRPO: each prompt is encoded once for all its completions.

GRPO scores ``num_generations`` completions of the same prompt; TRL runs every completion as its own
row ``[prompt | completion]``, so the prompt (often 90% of the tokens for a judge) is encoded
``num_generations`` times, in the forward and in the backward. Here the rows of one prompt become one
document ``[shared | branch_1 | ... | branch_k]`` (the layout of :mod:`rmforge.reward_model.packing`): the
shared part is the rows' common token prefix minus its last token, and each branch repeats that
token, so every position predicts one token only; branch position ids continue from the shared part
and a branch sees the shared part and itself (:mod:`rmforge.reward_model.attention`, passed in the
form of the policy's backend by :func:`rmforge.reward_model.packed_attention.packed_attention`).
Labels are passed pre-shifted to TRL's fused LM head (``shift_labels``), so temperature, soft-capping
and entropy are TRL's own; the per-token log-probabilities equal TRL's to float rounding (tested), and
gradients flow into the shared prompt once per completion, as in separate rows.

:func:`shared_prompt_logps` returns None when the batch does not have the expected layout (left-
padded prompts, right-padded completions), and the caller falls back to TRL's computation.

No dense ``[R, 1, W, W]`` mask is built on a GPU (:func:`shared_prompt_attention`): there prompts are
shared only when the policy runs FlexAttention (``rmforge_flex``, switched on by ``rmforge train judge``
with ``grpo.share_prompt``), whose block mask skips the fully masked blocks; the rows are then padded
to one of a few widths (:func:`flex_width`) so the compiled kernel sees few shapes. Otherwise on a GPU
:func:`shared_prompt_logps` returns None (TRL's per-row computation). On CPU the dense mask is fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rmforge.reward_model.attention import mask_backend
from rmforge.reward_model.packed_attention import decide_packed_attention, packed_attention
from rmforge.reward_model.packing import shared_prefix_len
from rmforge.reward_model.shapes import BLOCK


@dataclass
class SharedLayout:
    """Packed documents (one per distinct prompt) and where each completion token's prediction is read."""

    input_ids: Tensor  # [R, W]
    position_ids: Tensor  # [R, W]
    doc: Tensor  # [R, W], -1 = padding
    branch: Tensor  # [R, W], 0 = shared
    labels: Tensor  # [R, W], next token to score at each position, -100 = not scored
    read_row: Tensor  # [B, C]
    read_col: Tensor  # [B, C]
    valid: Tensor  # [B, C] bool: a real completion token
    tokens: int  # real tokens in the documents

    def to(self, device) -> "SharedLayout":
        return SharedLayout(*(getattr(self, f).to(device) for f in
                              ("input_ids", "position_ids", "doc", "branch", "labels", "read_row", "read_col",
                               "valid")), self.tokens)


def _split_row(ids: list[int], mask: list[int], prompt_width: int) -> tuple[list[int], int] | None:
    """(unpadded prompt + completion tokens, prompt length) of one row, or None if the padding is not
    left (prompt) / right (completion)."""
    pm, cm = mask[:prompt_width], mask[prompt_width:]
    n_p, n_c = sum(pm), sum(cm)
    if n_p == 0 or pm != [0] * (len(pm) - n_p) + [1] * n_p or cm != [1] * n_c + [0] * (len(cm) - n_c):
        return None
    return ids[prompt_width - n_p:prompt_width + n_c], n_p


def padded(layout: SharedLayout, width: int, pad_id: int) -> SharedLayout:
    """``layout`` with its rows padded on the right to ``width`` tokens (padding: document -1, no label)."""
    extra = width - layout.input_ids.shape[1]
    if extra <= 0:
        return layout
    rows = layout.input_ids.shape[0]

    def grow(t: Tensor, fill: int) -> Tensor:
        return torch.cat([t, torch.full((rows, extra), fill, dtype=t.dtype)], 1)

    start = layout.position_ids.shape[1]
    pos = torch.cat([layout.position_ids, torch.arange(start, width).repeat(rows, 1)], 1)
    return SharedLayout(grow(layout.input_ids, pad_id), pos, grow(layout.doc, -1), grow(layout.branch, 0),
                        grow(layout.labels, -100), layout.read_row, layout.read_col, layout.valid, layout.tokens)


def shared_layout(input_ids: Tensor, attention_mask: Tensor, logits_to_keep: int, pad_id: int) -> SharedLayout | None:
    """Group the rows of a GRPO batch by prompt and lay each group out as one prefix-shared document."""
    batch, width = input_ids.shape
    prompt_width = width - logits_to_keep
    ids, mask = input_ids.tolist(), attention_mask.tolist()
    rows = []
    for i in range(batch):
        split = _split_row(ids[i], mask[i], prompt_width)
        if split is None:
            return None
        rows.append(split)
    groups: dict[tuple, list[int]] = {}
    for i, (seq, n_p) in enumerate(rows):
        groups.setdefault(tuple(seq[:n_p]), []).append(i)
    docs = []  # (ids, positions, branch, labels)
    read = [[(0, 0)] * logits_to_keep for _ in range(batch)]
    valid = [[False] * logits_to_keep for _ in range(batch)]
    for d, members in enumerate(groups.values()):
        seqs = [rows[i][0] for i in members]
        n_p = rows[members[0]][1]
        q = max(shared_prefix_len(seqs) - 1, 0)  # each branch restates the last common token
        base = seqs[0]
        d_ids, d_pos, d_branch = list(base[:q]), list(range(q)), [0] * q
        d_lab = [base[u + 1] if u + 1 >= n_p else -100 for u in range(q)]
        for k, (i, seq) in enumerate(zip(members, seqs), 1):
            start = len(d_ids)
            n = len(seq)
            d_ids += seq[q:]
            d_pos += range(q, n)
            d_branch += [k] * (n - q)
            d_lab += [seq[u + 1] if u + 1 < n and u + 1 >= n_p else -100 for u in range(q, n)]
            for j in range(n - n_p):  # completion token j is predicted at row position n_p + j - 1
                src = n_p + j - 1
                read[i][j] = (d, src if src < q else start + src - q)
                valid[i][j] = True
        docs.append((d_ids, d_pos, d_branch, d_lab))
    w = max(len(x[0]) for x in docs)
    shape = (len(docs), w)
    t_ids = torch.full(shape, pad_id, dtype=torch.long)
    t_pos = torch.arange(w).repeat(len(docs), 1)
    t_doc = torch.full(shape, -1, dtype=torch.long)
    t_branch = torch.zeros(shape, dtype=torch.long)
    t_lab = torch.full(shape, -100, dtype=torch.long)
    for r, (d_ids, d_pos, d_branch, d_lab) in enumerate(docs):
        n = len(d_ids)
        t_ids[r, :n] = torch.tensor(d_ids)
        t_pos[r, :n] = torch.tensor(d_pos)
        t_doc[r, :n] = r
        t_branch[r, :n] = torch.tensor(d_branch)
        t_lab[r, :n] = torch.tensor(d_lab)
    where = torch.tensor(read, dtype=torch.long)  # [B, C, 2]
    return SharedLayout(t_ids, t_pos, t_doc, t_branch, t_lab, where[..., 0], where[..., 1],
                        torch.tensor(valid, dtype=torch.bool), sum(len(x[0]) for x in docs))


def flex_width(width: int, block: int = BLOCK) -> int:
    """Row width of a layout ``width`` tokens wide under FlexAttention: the smallest ``block * 2**k`` or
    ``block * 3 * 2**k`` that holds it (the compiled kernel is specialised per shape: at most two widths
    per doubling, at most 1.5x the tokens)."""
    blocks = max(1, -(-width // block))
    size = 1
    while size < blocks:
        if size > 1 and size * 3 // 2 >= blocks:
            size = size * 3 // 2
            break
        size *= 2
    return size * block


def shared_prompt_attention(device_type: str, backend: str) -> tuple[bool, str]:
    """Whether prompts can be shared for a policy whose :func:`~rmforge.reward_model.attention.mask_backend`
    is ``backend`` on ``device_type``, and why (a pure decision): under FlexAttention (a block mask) or on
    CPU (a dense mask); never on a GPU without FlexAttention (no dense ``[R, 1, W, W]`` mask there: TRL's
    per-row computation instead), nor under a backend that takes no custom mask."""
    kind, why = decide_packed_attention(device_type, backend, prefix_sharing=True)
    return kind != "off", why


def shared_prompt_logps(model, input_ids: Tensor, attention_mask: Tensor, logits_to_keep: int, pad_id: int,
                        compute_entropy: bool = False) -> tuple[Tensor, Tensor | None] | None:
    """Per-token log-probabilities ``[B, C]`` (and entropies) of the completion tokens, computed with
    one prefix-shared document per distinct prompt. ``model`` must carry TRL's fused LM head
    (``fused_lm_head=True`` forward); 0 at padding. None when the batch layout is not the expected one
    or prompts cannot be shared on this device (:func:`shared_prompt_attention`). Under FlexAttention
    the rows are padded to a :func:`flex_width`."""
    backend = mask_backend(model)
    if not shared_prompt_attention(input_ids.device.type, backend)[0]:
        return None
    layout = shared_layout(input_ids.cpu(), attention_mask.cpu(), logits_to_keep, pad_id)
    if layout is None:
        return None
    if backend == "flex_attention":
        layout = padded(layout, flex_width(layout.input_ids.shape[1]), pad_id)
    layout = layout.to(input_ids.device)
    with packed_attention(model, layout.doc, layout.branch) as attention:
        out = model(input_ids=layout.input_ids, position_ids=layout.position_ids, shift_labels=layout.labels,
                    fused_lm_head=True, **attention)
    logps = out.log_probs[layout.read_row, layout.read_col].masked_fill(~layout.valid, 0.0)
    entropy = None
    if compute_entropy and out.entropy is not None:
        entropy = out.entropy[layout.read_row, layout.read_col].masked_fill(~layout.valid, 0.0)
    return logps, entropy
