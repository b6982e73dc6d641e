"""Supervised fine-tuning of a causal LM on conversations, loss on assistant tokens only (``rmforge train sft``).

The assistant mask is built from the chat template itself, so templates without ``{% generation %}``
markers (SmolLM2's) work: the conversation is rendered once in full and, for every assistant turn,
the rendering of the turns before it (with the generation prompt) and up to it give the character
span of that answer (content and end-of-turn token); tokens whose offsets fall in a span are trained.
A template that re-renders earlier turns differently is refused with a clear message.

The loop mirrors the Bradley-Terry trainer: seeded batches (:mod:`rmforge.train.sampler`), the
Accelerate :class:`~rmforge.train.engine.Engine`, loss = sum of token losses / assistant tokens in the
optimizer step (independent of micro-batching and packing), metrics.jsonl, atomic checkpoints with
resume, LoRA through peft, final model + manifest.json. ``packing=true`` concatenates conversations into
rows of ``max_length`` tokens with block-diagonal attention (:mod:`rmforge.reward_model.attention`),
built on the device by :func:`~rmforge.reward_model.packed_attention.packed_attention`. On CPU that is a
dense mask; on a GPU no dense ``[rows, 1, width, width]`` mask is built (:func:`sft_packing`): the model
switches to FlexAttention (each micro-batch in one row whose width comes from at most four widths
planned over the run: few compiled kernel shapes), else to ``rmforge_varlen`` (no mask), else trains
on padded rows with one logged warning; the start event says which (``packing``, ``attention``,
``packing_reason``, ``row_widths``).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from rmforge import __version__
from rmforge.config import dump_config
from rmforge.errors import ConfigError, RmforgeError
from rmforge.reward_model.packed_attention import packed_attention, switch_packed_attention
from rmforge.train import checkpoint as ckpt_io
from rmforge.train.judge_config import SFTConfig
from rmforge.train.metrics import check_trackers, open_run_log, peak_memory_mb

logger = logging.getLogger("rmforge.train")


@dataclass
class Encoded:
    """One tokenised conversation: ids and a 0/1 mask of the tokens that carry loss."""

    input_ids: list[int]
    loss_mask: list[int]


def assistant_spans(tok, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    full = tok.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = tok.apply_chat_template(messages[:i + 1], tokenize=False)
        if not (full.startswith(before) and full.startswith(upto) and len(upto) > len(before)):
            raise ConfigError("the chat template renders earlier turns differently once later turns are added, "
                              "so assistant tokens cannot be located; set model_options.chat_template to a "
                              "template whose renderings are prefixes of each other")
        spans.append((len(before), len(upto)))
    return full, spans


def encode_conversation(tok, messages: list[dict]) -> Encoded:
    """Token ids of the rendered conversation and the assistant-token mask (see the module docstring)."""
    text, spans = assistant_spans(tok, messages)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(s < end and start < e for s, e in spans)) for start, end in enc["offset_mapping"]]
    return Encoded(list(enc["input_ids"]), mask)


def encode_all(tok, conversations: list[list[dict]], max_length: int, policy: str) -> tuple[list[Encoded], dict]:
    """Encode with the length policy; counts kept / truncated / dropped (never silent)."""
    out, truncated, dropped = [], 0, {"too_long": 0, "no_answer_left": 0}
    for messages in conversations:
        e = encode_conversation(tok, messages)
        if len(e.input_ids) > max_length:
            if policy == "drop":
                dropped["too_long"] += 1
                continue
            e = Encoded(e.input_ids[-max_length:], e.loss_mask[-max_length:])
            truncated += 1
        if not any(e.loss_mask[1:]):  # the first token has no prediction
            dropped["no_answer_left"] += 1
            continue
        out.append(e)
    stats = {"samples": len(conversations), "kept": len(out), "truncated": truncated,
             "dropped": sum(dropped.values()), "dropped_by_reason": {k: v for k, v in dropped.items() if v},
             "loss_tokens": sum(sum(e.loss_mask[1:]) for e in out)}
    return out, stats


def padded_batch(items: list[Encoded], pad_id: int) -> dict:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``labels`` (-100 outside the assistant tokens)."""
    width = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    attn = torch.zeros((len(items), width), dtype=torch.long)
    for r, e in enumerate(items):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        attn[r, :n] = 1
        labels[r, :n] = torch.where(torch.tensor(e.loss_mask, dtype=torch.bool), ids[r, :n], -100)
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def packed_batch(items: list[Encoded], pad_id: int, width: int, row_width: int | None = None) -> dict:
    """Conversations packed first-fit into rows of ``width`` tokens (trimmed to the fullest row) or, with
    ``row_width`` (static shapes under FlexAttention), all into one row of exactly ``row_width`` tokens.

    Returns ``input_ids``, ``position_ids`` (restarting in every conversation), ``labels`` and ``doc``
    (conversation per token, -1 = padding): :func:`token_loss_sum` builds the block-diagonal causal
    attention for the model's backend from ``doc`` on the forward's device."""
    if row_width is not None:
        total = sum(len(e.input_ids) for e in items)
        if total > row_width:
            raise ValueError(f"{total} tokens do not fit one row of {row_width}")
        rows, width = [list(range(len(items)))], row_width
    else:
        rows, used = [], []
        for i in sorted(range(len(items)), key=lambda i: -len(items[i].input_ids)):
            n = len(items[i].input_ids)
            slot = next((r for r, u in enumerate(used) if u + n <= width), None)
            if slot is None:
                rows.append([])
                used.append(0)
                slot = len(rows) - 1
            rows[slot].append(i)
            used[slot] += n
        width = max(used)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    doc = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for d, i in enumerate(members):
            e, n = items[i], len(items[i].input_ids)
            ids[r, at:at + n] = torch.tensor(e.input_ids)
            labels[r, at:at + n] = torch.where(torch.tensor(e.loss_mask, dtype=torch.bool), ids[r, at:at + n], -100)
            labels[r, at] = -100  # a document's first token is not predicted from the previous document
            pos[r, at:at + n] = torch.arange(n)
            doc[r, at:at + n] = d
            at += n
    return {"input_ids": ids, "position_ids": pos, "labels": labels, "doc": doc}


def micro_batch_tokens(lengths: list[int], batch_size: int, micro: int, seed: int, steps: int,
                       grouping: bool) -> list[int]:
    """Tokens of every micro-batch of the first ``steps`` optimizer steps, in training order (the batches
    are a function of the seed, the epoch and the lengths, as in :func:`train_sft`)."""
    from rmforge.train.sampler import epoch_batches, split_micro

    out: list[int] = []
    epoch = 0
    while steps > 0:
        batches = epoch_batches(lengths, batch_size, seed, epoch, grouping)[:steps]
        out += [sum(lengths[batch[i]] for i in part) for batch in batches
                for part in split_micro(list(range(len(batch))), micro)]
        steps, epoch = steps - len(batches), epoch + 1
    return out


def keeps_logit_positions(model) -> bool:
    """Whether the (DDP / PEFT unwrapped) causal LM's forward takes ``logits_to_keep`` (HF >= 4.50 models)."""
    base = getattr(model, "module", model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    return _forward_takes_logits_to_keep(type(base))


@functools.lru_cache(maxsize=None)
def _forward_takes_logits_to_keep(cls) -> bool:  # once per model class, not per micro-batch
    import inspect

    return "logits_to_keep" in inspect.signature(cls.forward).parameters


def token_loss_sum(model, batch: dict, device) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the labelled tokens, and their number.

    Only positions that predict a labelled token (in any row) go through the LM head
    (``logits_to_keep``): judge SFT trains ~10 answer tokens after a ~450-token prompt, so the
    vocabulary projection and its float32 logits shrink ~40x; the loss is the same. A packed batch
    (``doc``, :func:`packed_batch`) gets its attention arguments from
    :func:`~rmforge.reward_model.packed_attention.packed_attention` on ``device``."""
    labels = batch.pop("labels").to(device)
    batch = {k: (v.to(device) if v is not None else None) for k, v in batch.items()}
    doc = batch.pop("doc", None)  # a packed batch: its attention is built here, on the device
    target = labels[:, 1:]
    with packed_attention(model, doc, torch.zeros_like(doc)) if doc is not None else nullcontext({}) as attention:
        if keeps_logit_positions(model):
            keep = (target != -100).any(0).nonzero().squeeze(1)
            logits, target = model(**batch, **attention, logits_to_keep=keep).logits.float(), target[:, keep]
        else:
            logits = model(**batch, **attention).logits[:, :-1].float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss, int((target != -100).sum())


def causal_lora_config(model, opts):
    """A peft ``CAUSAL_LM`` LoraConfig from rmforge's LoRA options (``auto``: every linear layer but lm_head)."""
    import peft

    from rmforge.train.lora import auto_target_modules, check_quantize

    check_quantize(opts.quantize)
    targets = auto_target_modules(model, "lm_head") if opts.target_modules == "auto" else list(opts.target_modules)
    return peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=opts.r, lora_alpha=opts.alpha, bias=opts.bias,
                           lora_dropout=opts.dropout, target_modules=targets)


def evaluate_loss(cfg: SFTConfig, engine, model, data: list[Encoded], pad_id: int) -> dict:
    """Mean token loss on assistant tokens of ``data`` (and its perplexity)."""
    net = engine.unwrap(model)
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), cfg.eval.batch_size):
            with engine.autocast():
                loss, n = token_loss_sum(net, padded_batch(data[i:i + cfg.eval.batch_size], pad_id), engine.device)
            total, count = total + float(loss), count + n
    net.train()
    mean = total / max(count, 1)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50)), "tokens": count}


def sft_packing(model, packing: bool, device_type: str) -> tuple[bool, bool, str]:
    """``(pack, static, reason)`` for ``packing=true`` on ``device_type``, switching the model's attention
    where that needs it (:func:`~rmforge.reward_model.packed_attention.switch_packed_attention`): dense
    masks on CPU; on CUDA FlexAttention (``static``: one row per micro-batch from a few planned widths,
    as the compiled kernel is specialised per shape), else ``rmforge_varlen``, else padded rows with one
    logged warning (no dense ``[rows, 1, width, width]`` mask on a GPU)."""
    if not packing:
        return False, False, "packing=false was asked for"
    kind, why = switch_packed_attention(model, device_type)
    if kind == "off":
        logger.warning("packing=true: %s; training on padded rows", why)
        return False, False, why
    return True, kind == "flex", why


def train_sft(cfg: SFTConfig, console=None) -> dict:
    """Train, evaluate and save; returns the summary (also in manifest.json)."""
    from rmforge.judge.data import load_sft_messages
    from rmforge.judge.lm import load_causal_lm
    from rmforge.reward_model.attention import attn_implementation
    from rmforge.reward_model.shapes import plan_widths, width_for
    from rmforge.train.engine import Engine, lr_scheduler
    from rmforge.train.sampler import epoch_batches, split_micro
    from rmforge.train.selection import check_finite_loss
    from rmforge.train.trainer import adamw, optimizer_step, param_groups, progress_bar, report_data

    if not cfg.data.train:
        raise RmforgeError("no training data: set data.train=PATH (messages rows or judge rows)")
    train_msgs = load_sft_messages(cfg.data.train, cfg.data.limit, cfg.seed)
    val_msgs = load_sft_messages(cfg.data.validation) if cfg.data.validation else []
    engine = Engine(cfg.train.precision)
    out = Path(cfg.output_dir)
    resume_from = ckpt_io.resume_point(cfg.output_dir, cfg.overwrite, cfg.resume)  # read-only
    check_trackers(cfg.logging.report_to)
    torch.manual_seed(cfg.seed)
    model, tok = load_causal_lm(cfg.model, cfg.model_options.chat_template)
    train, train_stats = encode_all(tok, train_msgs, cfg.max_length, cfg.length_policy)
    val, val_stats = encode_all(tok, val_msgs, cfg.max_length, cfg.length_policy)
    if not train:
        raise RmforgeError(f"no training conversation left after the length policy ({train_stats})")
    stats = {"train": train_stats, "validation": val_stats}
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    packing, static, packing_reason = sft_packing(model, cfg.packing, engine.device.type)
    if cfg.lora.enabled:
        import peft

        model = peft.get_peft_model(model, causal_lora_config(model, cfg.lora))
    opt = cfg.train
    lengths = [len(e.input_ids) for e in train]
    steps_per_epoch = len(epoch_batches(lengths, opt.batch_size, cfg.seed, 0, opt.length_grouping))
    total = opt.max_steps if opt.max_steps > 0 else math.ceil(opt.epochs * steps_per_epoch)
    micro = opt.micro_batch_size or opt.batch_size
    row_widths = plan_widths(micro_batch_tokens(lengths, opt.batch_size, micro, cfg.seed, total,
                                                opt.length_grouping)) if static else []
    optimizer = adamw(param_groups(model, opt.weight_decay), opt.lr, opt.betas)
    scheduler = lr_scheduler(opt.scheduler, optimizer, int(opt.warmup_ratio * total), total)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0}
    if resume_from is not None:
        state = ckpt_io.load_checkpoint(resume_from, model, optimizer, scheduler)
    ckpt_io.prepare_run_dir(cfg.output_dir, cfg.overwrite, cfg.resume)  # the checks passed: only now the folder
    model, optimizer = engine.prepare(model, optimizer)
    model.train()
    log = open_run_log(out, cfg, resume_from=resume_from, resume_step=state["step"])
    try:
        (out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        log.write({"event": "start", "step": state["step"], "total_steps": total, "data": stats,
                   "precision": engine.precision, "packing": packing, "attention": attn_implementation(model),
                   "packing_reason": packing_reason, "row_widths": row_widths or None,
                   "resumed_from": str(resume_from) if resume_from else None})
        report_data(console, stats)
        bar = progress_bar(total, state["step"], cfg.logging.progress)
        window = {"loss": 0.0, "tokens": 0, "t": time.perf_counter()}
        first_loss, loss = None, float("nan")
        while state["step"] < total:
            batches = epoch_batches(lengths, opt.batch_size, cfg.seed, state["epoch"], opt.length_grouping)
            for bi in range(state["batch_in_epoch"], len(batches)):
                items = [train[i] for i in batches[bi]]
                n_tokens = sum(sum(e.loss_mask[1:]) for e in items)
                bad_loss = None
                for part in split_micro(list(range(len(items))), micro):
                    chunk = [items[i] for i in part]
                    if packing:  # static: one row of a planned width (few kernel specialisations)
                        row = width_for(sum(len(e.input_ids) for e in chunk), row_widths) if static else None
                        batch = packed_batch(chunk, tok.pad_token_id, cfg.max_length, row)
                    else:
                        batch = padded_batch(chunk, tok.pad_token_id)
                    with engine.autocast():
                        loss_sum, _ = token_loss_sum(model, batch, engine.device)
                    engine.backward(loss_sum / max(n_tokens, 1))
                    part_loss = float(loss_sum.detach())
                    if bad_loss is None and not math.isfinite(part_loss):
                        bad_loss = part_loss / max(n_tokens, 1)
                    window["loss"] += part_loss
                window["tokens"] += n_tokens
                check_finite_loss(engine, cfg, bad_loss, state["step"] + 1, total, out, log)
                grad_norm = optimizer_step(engine, model, optimizer, scheduler, opt.max_grad_norm, state, bi)
                bar.update(1)
                step = state["step"]
                if step % cfg.logging.every_steps == 0 or step == total:
                    elapsed = time.perf_counter() - window["t"]
                    loss = window["loss"] / max(window["tokens"], 1)
                    first_loss = loss if first_loss is None else first_loss
                    log.write({"step": step, "epoch": state["epoch"] + bi / len(batches), "loss": loss,
                               "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0],
                               "loss_tokens_per_s": window["tokens"] / max(elapsed, 1e-9),
                               "peak_memory_mb": peak_memory_mb()})
                    bar.set_postfix(loss=f"{loss:.4f}")
                    window = {"loss": 0.0, "tokens": 0, "t": time.perf_counter()}
                if cfg.eval.every_steps and val and step % cfg.eval.every_steps == 0 and step != total:
                    figures = evaluate_loss(cfg, engine, model, val, tok.pad_token_id)
                    log.write({"event": "eval", "step": step, **{f"eval_{k}": v for k, v in figures.items()}})
                if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0 and step != total:
                    ckpt_io.save_checkpoint(out, step, engine.unwrap(model), tok, optimizer, scheduler, dict(state),
                                            cfg.checkpoint.keep_last)
                if step >= total:
                    break
            else:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
        bar.close()
        summary = {"steps": state["step"], "first_logged_loss": first_loss, "last_logged_loss": loss}
        if val:
            summary["validation"] = evaluate_loss(cfg, engine, model, val, tok.pad_token_id)
            log.write({"event": "eval", "step": state["step"],
                       **{f"eval_{k}": v for k, v in summary["validation"].items()}})
        manifest = {"rmforge_version": __version__, "kind": cfg.kind, "model": cfg.model, "max_length": cfg.max_length,
                    "data": stats, "precision": engine.precision, "summary": summary}
        ckpt_io.save_final(out, engine.unwrap(model), tok, dump_config(cfg), manifest)
        log.write({"event": "end", **summary})
        log.close()
        return summary
    except BaseException:  # metrics.jsonl and the trackers are closed on any failure
        log.close()
        raise
