"""How a training run lays out its forward passes, decided once before the first step (issue 17).

* packing: ``train.packing`` resolved for the model *and the hardware*, with the reason logged in
  the start event (:func:`~rmforge.reward_model.attention.choose_packing`); on CUDA a packing decoder
  switches to FlexAttention first where it can (:mod:`rmforge.reward_model.flex`), else a packed mode
  runs ``padding_free`` through ``rmforge_varlen`` (:mod:`rmforge.reward_model.varlen`: no mask);
* token budget: ``train.token_budget=auto`` is sized from the free GPU memory (:func:`auto_token_budget`,
  activation checkpointing switched on when even one document would not fit); on CPU it keeps
  ``micro_batch_size`` forwards (measured fastest there);
* static shapes: under FlexAttention every packed forward is one row whose width comes from a few
  widths fitted to all the micro-batches of the run (:func:`rmforge.reward_model.shapes.plan_widths`),
  so the compiled kernel is specialised a bounded number of times (``compiles`` in the start/end events).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rmforge.errors import ConfigError, RmforgeError
from rmforge.reward_model.attention import (
    PACKABLE_TYPES,
    attn_implementation,
    choose_packing,
    gpu_packed_mode,
    hf_model,
    is_decoder_rm,
    mask_backend,
)
from rmforge.reward_model.flex import compiles, use_flex_attention
from rmforge.reward_model.packing import doc_tokens
from rmforge.reward_model.shapes import MAX_WIDTHS, plan_widths, round_up, width_for
from rmforge.reward_model.varlen import varlen_verdict
from rmforge.train.sampler import epoch_batches, sample_lengths, split_by_tokens, split_micro

logger = logging.getLogger("rmforge.train")

MEMORY_HEADROOM = 0.85
"""Share of the free device memory the automatic token budget plans to use (allocator fragmentation,
the CUDA context, kernels' workspaces take the rest)."""
MAX_AUTO_BUDGET = 65536
"""The automatic budget never goes above this many tokens a forward (longer rows gain nothing)."""


def training_bytes_per_param(trainable: bool) -> int:
    """Bytes a parameter costs in training: fp32 weight + gradient + AdamW's two moments (16), or the
    weight alone when frozen (LoRA)."""
    return 16 if trainable else 4


def activation_bytes_per_token(config, checkpointing: bool, bytes_per_value: int = 2) -> int:
    """Activation memory kept for the backward pass per token of a decoder layer stack (estimate).

    Per layer and token, a Llama-style block keeps about ``10 h + 4 i`` values (norm outputs, q/k/v,
    attention output, the MLP's gate/up/activation/product) in the autocast dtype, plus two fp32
    norm inputs; with activation checkpointing only each layer's input is kept, plus one layer's
    working set during its recomputation.
    """
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    inter = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(config, "num_hidden_layers", 0) or 1)
    per_layer = (10 * hidden + 4 * inter) * bytes_per_value + 2 * 4 * hidden
    if checkpointing:
        return layers * hidden * bytes_per_value + per_layer
    return layers * per_layer


def auto_token_budget(free_bytes: int, config, params: int, trainable: int, longest_doc: int, step_tokens: int,
                      checkpointing: bool | None) -> tuple[int, bool, str]:
    """Tokens per forward for ``free_bytes`` of device memory: ``(budget, checkpointing, reason)``.

    ``longest_doc``: the longest laid-out sample (a forward must hold it); ``step_tokens``: the
    largest optimizer step's tokens on this process (no point in a larger budget). ``checkpointing``:
    the user's choice, or None to switch it on only when one document does not fit without it.
    Raises ConfigError when even one document does not fit.
    """
    static = trainable * training_bytes_per_param(True) + (params - trainable) * training_bytes_per_param(False)
    room = free_bytes * MEMORY_HEADROOM - static
    gib = 2 ** 30
    choices = [checkpointing] if checkpointing is not None else [False, True]
    for ckpt in choices:
        per_token = activation_bytes_per_token(config, ckpt)
        fits = int(room // per_token) if room > 0 else 0
        if fits >= longest_doc:
            budget = max(longest_doc, min(fits, round_up(step_tokens), MAX_AUTO_BUDGET) // 128 * 128)
            why = (f"{free_bytes / gib:.1f} GiB free, {static / gib:.1f} GiB for weights, gradients and AdamW, "
                   f"~{per_token / 2 ** 20:.2f} MiB a token of activations"
                   f"{' with activation checkpointing' if ckpt else ''}: up to {fits} tokens a forward")
            return budget, bool(ckpt), why
    raise ConfigError(f"out of GPU memory before the first step: {free_bytes / gib:.1f} GiB free, "
                      f"{static / gib:.1f} GiB needed for weights, gradients and AdamW state, and the longest "
                      f"sample ({longest_doc} tokens) does not fit even with activation checkpointing: lower "
                      "max_length, use lora.enabled=true, or shard the model (launcher with an FSDP/DeepSpeed "
                      "accelerate config)")


@dataclass
class Layout:
    """The forward layout of one run (see the module docstring)."""

    packing: str
    packing_reason: str
    doc_lens: list[int]
    lengths: list[int]
    token_budget: int | None = None
    budget_reason: str = ""
    checkpointing: bool = False
    static: bool = False
    widths: list[int] = field(default_factory=list)
    micro: int = 1

    def parts(self, batch: Sequence[int], rank: int, world: int) -> list[tuple[list[int], int | None]]:
        """This process's micro-batches of one optimizer batch, each with its packed row width (None:
        the packed layout chooses, plain forwards ignore it)."""
        mine = list(batch[rank::world])
        if self.token_budget:
            groups = [[mine[k] for k in g] for g in split_by_tokens([self.doc_lens[i] for i in mine], self.token_budget)]
        else:
            groups = split_micro(mine, self.micro)
        if not self.static:
            return [(g, None) for g in groups]
        return [(g, width_for(sum(self.doc_lens[i] for i in g), self.widths)) for g in groups]

    def fit_widths(self, batch_size: int, seed: int, epochs: int, grouping: bool, keys: list[str], world: int,
                   count: int = MAX_WIDTHS) -> None:
        """Fit at most ``count`` static row widths to every micro-batch of ``epochs`` epochs on every process."""
        if not self.static:
            return
        totals = []
        for epoch in range(epochs):
            for batch in epoch_batches(self.lengths, batch_size, seed, epoch, grouping, keys):
                for rank in range(world):
                    totals += [sum(self.doc_lens[i] for i in g) for g, _ in self._plain_parts(batch, rank, world)]
        self.widths = plan_widths(totals, count)

    def _plain_parts(self, batch, rank, world):
        static, self.static = self.static, False
        try:
            return self.parts(batch, rank, world)
        finally:
            self.static = static

    def start_event(self, model) -> dict:
        return {"packing": self.packing, "packing_reason": self.packing_reason, "attention": attn_implementation(model),
                "token_budget": self.token_budget, "token_budget_reason": self.budget_reason or None,
                "row_widths": self.widths or None, "activation_checkpointing": self.checkpointing,
                "compiles": compiles()}


def plan_layout(model, opt, device_type: str, samples: Sequence, micro: int, free_bytes: int | None = None) -> Layout:
    """Decide packing, token budget and static shapes for ``model`` on ``device_type`` (before the
    model is moved there). ``opt``: the ``train`` config section; ``free_bytes``: free device memory
    (None on CPU)."""
    flex_reason = varlen = None
    if device_type == "cuda" and opt.packing != "none" and is_decoder_rm(model) \
            and (opt.packing != "auto" or hf_model(model).config.model_type in PACKABLE_TYPES):
        flex, flex_reason = use_flex_attention(model)
        if not flex:  # autocast (auto: bf16 or fp16 on CUDA) sets the dtype torch's varlen kernel sees
            import torch

            half = {"fp16": torch.float16, "bf16": torch.bfloat16, "auto": torch.bfloat16}.get(
                getattr(opt, "precision", None))
            varlen = varlen_verdict(model, half)
    try:
        packing, reason = choose_packing(model, opt.packing, device_type, flex_reason, varlen)
    except ValueError as exc:
        raise ConfigError(f"train.packing: {exc}") from None
    packing, why = gpu_packed_mode(model, packing, device_type)  # no dense [R, 1, W, W] mask on a GPU
    if why is not None:
        reason = f"packing={opt.packing} without FlexAttention needs {why}: plain padded rows"
    share = packing == "prefix_shared"
    doc_lens = [doc_tokens(s.encodings, share) for s in samples] if packing != "none" else []
    layout = Layout(packing, reason, doc_lens, sample_lengths(samples, packing), micro=micro,
                    checkpointing=bool(opt.gradient_checkpointing))
    layout.static = packing != "none" and mask_backend(model) == "flex_attention"
    budget = opt.token_budget
    if packing == "none" or budget is None:
        layout.budget_reason = "no packing: micro-batches of samples" if packing == "none" and budget else ""
        return layout
    if budget != "auto":
        layout.token_budget, layout.budget_reason = int(budget), "train.token_budget"
        return layout
    if device_type != "cuda" or free_bytes is None:
        layout.budget_reason = f"{device_type}: micro-batches of {micro} samples (train.token_budget=auto)"
        return layout
    hf = hf_model(model)
    params = sum(p.numel() for p in hf.parameters())
    trainable = sum(p.numel() for p in hf.parameters() if p.requires_grad)
    longest = max(doc_lens) if doc_lens else 1
    step = math.ceil(opt.batch_size * (sum(doc_lens) / max(len(doc_lens), 1))) * 2  # a long step, with slack
    ckpt = True if opt.gradient_checkpointing else None
    layout.token_budget, layout.checkpointing, layout.budget_reason = auto_token_budget(
        free_bytes, hf.config, params, trainable, longest, max(step, longest), ckpt)
    return layout


def free_device_memory(device) -> int | None:
    """Free bytes on a CUDA ``device`` plus what this process already holds there (None elsewhere)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_allocated(device))


class out_of_memory:  # noqa: N801 - used as a context manager
    """Turn a CUDA out-of-memory error inside one micro-batch into a one-line error naming the setting."""

    def __init__(self, layout: Layout, step: int, part: Sequence[int]):
        self.layout, self.step, self.part = layout, step, part

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        import torch

        if kind is None or not issubclass(kind, torch.OutOfMemoryError):
            return False
        lay = self.layout
        if lay.token_budget:
            size = f"{sum(lay.doc_lens[i] for i in self.part)} tokens, train.token_budget={lay.token_budget}"
            fix = f"lower train.token_budget (e.g. {max(lay.token_budget // 2, 1)})"
        else:
            size = f"{len(self.part)} samples, train.micro_batch_size={lay.micro}"
            fix = f"set train.micro_batch_size={max(lay.micro // 2, 1)} (or train.token_budget with packing)"
        extra = "" if lay.checkpointing else " or set train.gradient_checkpointing=true"
        raise RmforgeError(f"out of GPU memory at step {self.step} (a micro-batch of {size}): {fix}{extra}") from None
