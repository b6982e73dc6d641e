"""Packed rows for decoder reward models: shared prefixes, several samples per row (issue 4).

A sample becomes one *document*. With prefix sharing the document is ``[prefix | branch_1 | ... |
branch_k]``: the prefix is the longest common token prefix of the sample's rows (found on the ids,
so hh-rlhf pairs that arrive as two full transcripts share it too), capped so that every branch
keeps at least its last token; each branch's position ids restart where the prefix ends, and the
mask (:mod:`rmforge.reward_model.attention`, passed in the form of the model's backend by
:func:`rmforge.reward_model.packed_attention.packed_attention`) lets a branch see the prefix and
itself only. Without sharing (``padding_free``) each row of the sample is its own document.
Documents are packed first-fit decreasing into rows (block-diagonal: nothing crosses documents), so
each branch's last token sees exactly the tokens and positions of its unpacked row, and its reward
is the same.

:func:`pack` builds a :class:`PackedBatch`; :func:`packed_outputs` runs the model on it and returns
the head outputs per response, in sample order (``[s0 r0, s0 r1, ..., s1 r0, ...]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rmforge.reward_model.attention import hf_model
from rmforge.reward_model.packed_attention import packed_attention
from rmforge.reward_model.tokenize import Encoded

MODES = ("prefix_shared", "padding_free")


def shared_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    """Length of the common token prefix of ``rows``, leaving at least one token in every row."""
    if len(rows) < 2:
        return 0
    first, limit = rows[0], min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows[1:]):
        n += 1
    return n


@dataclass(frozen=True)
class Doc:
    """One sample laid out for packing: ids, position ids, branch per token (0 = shared prefix) and
    the offset of each response's last token (where its reward is read)."""

    ids: list[int]
    positions: list[int]
    branch: list[int]
    ends: list[int]

    def __len__(self) -> int:
        return len(self.ids)


MIN_SHARED_FRACTION = 0.2
"""Share a sample's prefix only when that saves at least this fraction of its tokens: with a short
prompt the shared document is about as long as all rows together, so it only widens the packed rows
(attention grows with the square of the width) and saves little."""


def worth_sharing(rows: Sequence[Sequence[int]], prefix: int) -> bool:
    """Whether the shared-prefix layout of ``rows`` (common prefix ``prefix``) saves enough tokens."""
    return len(rows) > 1 and (len(rows) - 1) * prefix >= MIN_SHARED_FRACTION * sum(len(r) for r in rows)


def any_worth_sharing(samples: Sequence) -> bool:
    """Whether any ``EncodedSample`` of a micro-batch gains from a shared prefix (else a plain batch is cheaper)."""
    for s in samples:
        rows = [e.input_ids for e in s.encodings]
        if worth_sharing(rows, shared_prefix_len(rows)):
            return True
    return False


def layout(encodings: Sequence[Encoded], share: bool) -> list[Doc]:
    """The documents of one sample: one shared-prefix document (when :func:`worth_sharing`), or one
    document per row."""
    rows = [e.input_ids for e in encodings]
    p = shared_prefix_len(rows) if share else 0
    if not share or not worth_sharing(rows, p):
        return [Doc(list(r), list(range(len(r))), [1] * len(r), [len(r) - 1]) for r in rows]
    ids, pos, branch, ends = list(rows[0][:p]), list(range(p)), [0] * p, []
    for k, r in enumerate(rows, 1):
        ids += r[p:]
        pos += range(p, len(r))
        branch += [k] * (len(r) - p)
        ends.append(len(ids) - 1)
    return [Doc(ids, pos, branch, ends)]


def doc_tokens(encodings: Sequence[Encoded], share: bool) -> int:
    """Tokens the sample occupies once laid out (``sum(rows) - (k - 1) * prefix`` when shared)."""
    rows = [e.input_ids for e in encodings]
    total = sum(len(r) for r in rows)
    p = shared_prefix_len(rows) if share else 0
    return total - (len(rows) - 1) * p if share and worth_sharing(rows, p) else total


@dataclass
class PackedBatch:
    """Rows ``[R, W]`` of packed documents and where to read each response's output."""

    input_ids: Tensor
    position_ids: Tensor
    doc: Tensor
    """Document id per token (-1 = padding)."""
    branch: Tensor
    """0 = shared prefix, k = k-th response of the document (padding: 0)."""
    score_at: Tensor
    """``[N, 2]`` (row, column) of each response's last token, in sample order."""
    tokens: int
    """Real (non-pad) tokens."""

    @property
    def positions(self) -> int:
        """Token slots processed (real + padding)."""
        return self.input_ids.numel()

    @property
    def padding_ratio(self) -> float:
        return 1.0 - self.tokens / max(self.positions, 1)

    def to(self, device) -> "PackedBatch":
        return PackedBatch(self.input_ids.to(device), self.position_ids.to(device), self.doc.to(device),
                           self.branch.to(device), self.score_at.to(device), self.tokens)


def pack(samples: Sequence[Sequence[Encoded]], pad_id: int, share: bool = True,
         row_tokens: int | None = None) -> PackedBatch:
    """Pack the encodings of each sample (``EncodedSample.encodings``) into rows of width
    ``max(row_tokens, longest document)``, first-fit decreasing; documents are never split."""
    if not samples:
        raise ValueError("pack needs at least one sample")
    docs = [d for encs in samples for d in layout(encs, share)]
    width = max(max(len(d) for d in docs), row_tokens or 0)
    rows: list[list[int]] = []  # document indices per row
    free: list[int] = []
    for i in sorted(range(len(docs)), key=lambda i: -len(docs[i])):
        slot = next((r for r, f in enumerate(free) if f >= len(docs[i])), None)
        if slot is None:
            rows.append([])
            free.append(width)
            slot = len(rows) - 1
        rows[slot].append(i)
        free[slot] -= len(docs[i])
    shape = (len(rows), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    doc = torch.full(shape, -1, dtype=torch.long)
    branch = torch.zeros(shape, dtype=torch.long)
    where: list[tuple[int, int]] = [(0, 0)] * len(docs)
    for r, members in enumerate(rows):
        col = 0
        for i in members:
            d, n = docs[i], len(docs[i])
            ids[r, col:col + n] = torch.tensor(d.ids)
            pos[r, col:col + n] = torch.tensor(d.positions)
            doc[r, col:col + n] = i
            branch[r, col:col + n] = torch.tensor(d.branch)
            where[i] = (r, col)
            col += n
        if col < width:  # padding continues the positions, as a row of its own would
            pos[r, col:] = torch.arange(width - col)
    score_at = torch.tensor([(where[i][0], where[i][1] + e) for i, d in enumerate(docs) for e in d.ends],
                            dtype=torch.long)
    return PackedBatch(ids, pos, doc, branch, score_at, sum(len(d) for d in docs))


def packed_outputs(model, batch: PackedBatch) -> Tensor:
    """Head outputs ``[N, num_labels]`` of every response in ``batch`` (keeps autograd).

    The forward goes through ``model`` itself (DDP and peft hooks run as usual) with the packed
    attention arguments of its backend (:func:`~rmforge.reward_model.packed_attention.packed_attention`:
    a dense mask, a FlexAttention block mask, or under ``rmforge_varlen`` no mask and the documents'
    segments) and position ids; the head's per-token output is captured with a forward hook and read
    at each response's last token.
    """
    hf = hf_model(model)
    head = getattr(hf, "score", None)
    if head is None:
        raise ValueError(f"{type(hf).__name__} has no `score` head: packed forwards need a decoder reward model")
    captured: list[Tensor] = []
    with packed_attention(model, batch.doc, batch.branch) as attention:
        handle = head.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False, **attention)
        finally:
            handle.remove()
    logits = captured[-1]
    return logits[batch.score_at[:, 0], batch.score_at[:, 1]]
