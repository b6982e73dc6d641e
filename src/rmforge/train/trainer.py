"""The scalar reward-model training loop (Bradley-Terry pairs with ties, Plackett-Luce N-way).

Thin by design: data -> encode (exact length policy, counted) -> seeded batches -> forward /
loss / backward through the :class:`~rmforge.train.engine.Engine` seam -> log, evaluate,
checkpoint -> final model + manifest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rmforge import __version__
from rmforge.config import dump_config
from rmforge.errors import RmforgeError
from rmforge.train import checkpoint as ckpt_io
from rmforge.reward_model.attention import resolve_packing
from rmforge.reward_model.batching import batch_order, collate, length_buckets, packed_batch, plain_rows
from rmforge.train.config import TrainBase
from rmforge.train.engine import Engine, lr_scheduler
from rmforge.train.losses import pairwise_loss, plackett_luce_loss, regression_loss
from rmforge.reward_model.flex import compiles
from rmforge.train.layout import free_device_memory, out_of_memory, plan_layout
from rmforge.train.metrics import Window, check_trackers, open_run_log, peak_memory_mb
from rmforge.reward_model.packing import any_worth_sharing, packed_outputs
from rmforge.train.sampler import epoch_batches
from rmforge.reward_model.forward import model_outputs, score_samples
from rmforge.train.scoring import pair_eval_metrics, pointwise_eval_metrics
from rmforge.train.selection import best_metric, check_finite_loss, compare_to_best, reward_normalization, saved_model


@dataclass
class Prepared:
    """Everything the loop needs, built once before the first step."""

    model: object
    tokenizer: object
    encoder: object
    train: list
    validation: list
    stats: dict = field(default_factory=dict)
    fingerprints: dict = field(default_factory=dict)
    model_info: dict = field(default_factory=dict)
    attributes: list[str] | None = None
    """Pointwise trainer: attribute per head output."""
    tie_model: str = "none"
    """Resolved tie model (``auto`` becomes rao-kupper when the training data has ties, else none)."""
    row_widths: list[int] = field(default_factory=list)
    """The run's static row widths (FlexAttention on the GPU); validation reuses them."""


def prepare(cfg: TrainBase, progress: bool = True) -> Prepared:
    """Load data and model, encode with the length policy; fail early with actionable messages."""
    from rmforge.train.data import fingerprint, holdout, read_any
    from rmforge.reward_model.modeling import load_reward_model
    from rmforge.reward_model.tokenize import RewardEncoder, attribute_names

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-save "Writing model shards" bars drown the training bar
    pointwise = cfg.kind == "train-pointwise"
    allowed_kinds = ("pointwise",) if pointwise else ("pair", "nway")
    if not cfg.data.train:
        raise RmforgeError("no training data: set data.train=PATH (canonical file, or data.format=CONVERTER)")
    train = read_any(cfg.data.train, cfg.data.format, cfg.data.fields, cfg.data.options, cfg.data.limit,
                     cfg.data.limit_order, cfg.seed)
    if cfg.data.validation:
        val = read_any(cfg.data.validation, cfg.data.format, cfg.data.fields, cfg.data.options)
    elif cfg.data.validation_fraction > 0:
        train, val = holdout(train, cfg.data.validation_fraction, cfg.seed)
    else:
        val = []
    kinds = {s.kind for s in train}
    bad = kinds - set(allowed_kinds)
    if bad:
        hint = "rmforge train pointwise" if "pointwise" in bad else "rmforge train bt"
        raise RmforgeError(f"{cfg.data.train} holds {', '.join(sorted(bad))} samples, which this trainer cannot "
                           f"use (it takes {', '.join(allowed_kinds)}); use {hint}")
    attributes = (cfg.attributes or attribute_names(train)) if pointwise else None
    if pointwise and not attributes:
        raise RmforgeError(f"{cfg.data.train}: pointwise samples carry no scores")
    loaded = load_reward_model(cfg.model, num_labels=len(attributes) if pointwise else 1,
                               head_init_std=cfg.model_options.head_init_std, dropout=cfg.model_options.dropout)
    if pointwise:
        try:
            weights = cfg.combine_weights(attributes)
        except ValueError as exc:
            raise RmforgeError(str(exc)) from None
        loaded.model.config.rmforge_reward_weights = weights
        loaded.model.config.id2label = dict(enumerate(attributes))
        loaded.model.config.label2id = {a: i for i, a in enumerate(attributes)}
    encoder = RewardEncoder(loaded.tokenizer, cfg.max_length, cfg.length_policy,
                            chat_template=cfg.model_options.chat_template, append_eos=cfg.model_options.append_eos)
    train_enc, train_stats = encoder.encode_dataset(train, progress=progress, attributes=attributes)
    val_enc, val_stats = encoder.encode_dataset(val, progress=False, attributes=attributes)
    if not train_enc:
        raise RmforgeError(f"no training sample is left after the length policy ({train_stats}); raise "
                           f"max_length (now {cfg.max_length}) or use length_policy=truncate_prompt")
    tie_model = "none"
    if not pointwise:
        tie_model = cfg.loss.tie_model
        if tie_model == "auto":
            tie_model = "rao-kupper" if any(s.tie for s in train) else "none"
    stats = {"train": {"samples": len(train), **train_stats.as_dict()},
             "validation": {"samples": len(val), **val_stats.as_dict()}}
    return Prepared(loaded.model, loaded.tokenizer, encoder, train_enc, val_enc, stats,
                    {"train": fingerprint(train), "validation": fingerprint(val)}, loaded.info.to_dict(),
                    attributes, tie_model)


def param_groups(model, weight_decay: float):
    """AdamW parameter groups: no weight decay on biases and norm weights (shared with the SFT trainer)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(groups, lr: float, betas) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where torch has one (one pass over the parameters: ~7x faster on CPU)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas)


def batch_loss(model, items, pad_id: int, loss_cfg, device, packing: str = "none",
               buckets: bool = False, row_tokens: int | None = None) -> tuple[torch.Tensor, dict]:
    """Summed loss over the samples of one homogeneous micro-batch, plus running statistics.

    ``loss_cfg.tie_model`` should be resolved by the caller (the trainer resolves ``auto`` from the
    whole training set); an unresolved ``auto`` is treated as ``none``. ``packing`` (resolved:
    ``prefix_shared`` / ``padding_free`` / ``none``) only changes how the forward is laid out; the
    statistics count real ``tokens`` and the ``positions`` processed (padding included). ``buckets``:
    plain forwards run per length bucket (:func:`~rmforge.reward_model.batching.length_buckets`).
    ``row_tokens``: packed row width (static shapes under FlexAttention: the whole micro-batch in one
    row of a planned width; the plain-batch shortcut below is then skipped).
    """
    kind = items[0].kind
    n = len(items)
    if packing == "prefix_shared" and row_tokens is None and not any_worth_sharing(items):
        packing = "none"  # nothing to share: plain batches keep the backend's fused causal attention
    if packing != "none":
        packed, meta = packed_batch(items, pad_id, packing, row_tokens)
        logits = batch_order(packed_outputs(model, packed.to(device)), kind, n)
        size = {"tokens": packed.tokens, "positions": packed.positions}
    else:
        rows, meta = plain_rows(items)
        logits, size = plain_forward(model, rows, pad_id, device, buckets)
    if kind == "pointwise":
        pred = logits.float()
        loss, m = regression_loss(pred, meta["targets"].to(device), kind=loss_cfg.kind,
                                  huber_delta=loss_cfg.huber_delta)
        det = pred.detach()
        return loss * n, {"loss_sum": float(loss.detach()) * n, "samples": n, "mae_sum": float(m["mae"]) * n,
                          **size, "r_sum": float(det[:, 0].sum()),
                          "r_count": n, "r_min": float(det.min()), "r_max": float(det.max())}
    rewards = logits[:, 0].float()
    if kind == "pair":
        rc, rr = rewards[:n], rewards[n:]
        tie = meta["tie"].to(device)
        margin = meta["margin"].to(device) if loss_cfg.margin_scale else None
        loss, _ = pairwise_loss(rc, rr, tie=tie, margin=margin, margin_scale=loss_cfg.margin_scale,
                                tie_model="none" if loss_cfg.tie_model == "auto" else loss_cfg.tie_model,
                                tie_param=loss_cfg.tie_param,
                                center_coef=loss_cfg.center_coef)
        d = (rc - rr).detach()[~tie]
        stats = {"pairs": int((~tie).sum()), "correct": int((d > 0).sum()), "margin_sum": float(d.sum())}
    else:
        from rmforge.reward_model.batching import unflatten

        r = unflatten(rewards, meta)
        loss, m = plackett_luce_loss(r, meta["ranks"].to(device), meta["mask"].to(device))
        stats = {"nway": n, "top1": float(m["top1_accuracy"]) * n}
    det = rewards.detach()
    stats.update(loss_sum=float(loss.detach()) * n, samples=n, **size,
                 r_sum=float(det.sum()), r_count=det.numel(), r_min=float(det.min()), r_max=float(det.max()))
    return loss * n, stats


def plain_forward(model, rows, pad_id: int, device, buckets: bool = False) -> tuple[torch.Tensor, dict]:
    """Logits of padded ``rows`` (``Encoded``, in order) and the token statistics; with ``buckets``,
    one forward per length bucket, the logits put back in row order."""
    groups = length_buckets([len(e.input_ids) for e in rows]) if buckets else [list(range(len(rows)))]
    parts, tokens, positions = [], 0, 0
    for g in groups:
        batch = {k: v.to(device) for k, v in collate([rows[i] for i in g], pad_id).items()}
        parts.append(model(**batch).logits)
        tokens += int(batch["attention_mask"].sum())
        positions += batch["attention_mask"].numel()
    order = [i for g in groups for i in g]
    logits = torch.cat(parts) if len(parts) > 1 else parts[0]
    if order != list(range(len(rows))):
        logits = logits[torch.argsort(torch.tensor(order)).to(logits.device)]
    return logits, {"tokens": tokens, "positions": positions}


def train_bt(cfg: TrainBase, console=None) -> dict:
    """Train, evaluate and save a reward model; returns the final summary (also in the manifest)."""
    engine = Engine(cfg.train.precision)
    out = Path(cfg.output_dir)
    # read-only; the main process decides for all, so every process resumes from the same checkpoint
    resume_from = engine.on_main(lambda: ckpt_io.resume_point(cfg.output_dir, cfg.overwrite, cfg.resume))
    check_trackers(cfg.logging.report_to)
    engine.barrier()  # all have looked before the main process may clear the folder
    torch.manual_seed(cfg.seed)
    prep = prepare(cfg, progress=cfg.logging.progress and engine.is_main)
    model, tok = prep.model, prep.tokenizer
    pad_id = tok.pad_token_id
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if cfg.lora.enabled:
        from rmforge.train.lora import apply_lora

        model = apply_lora(model, cfg.lora, gradient_checkpointing=cfg.train.gradient_checkpointing)
    opt = cfg.train
    micro = opt.micro_batch_size or opt.batch_size
    layout = plan_layout(model, opt, engine.device.type, prep.train, micro, free_device_memory(engine.device))
    if layout.checkpointing and not opt.gradient_checkpointing:  # the automatic token budget needs it
        model.gradient_checkpointing_enable()
    packing, lengths = layout.packing, layout.lengths  # packed modes: grouped by laid-out length
    # several forwards before one backward is not allowed under DDP: buckets only on one process
    buckets = (opt.length_buckets if opt.length_buckets is not None else engine.device.type == "cpu") \
        and engine.world == 1
    keys = [s.kind for s in prep.train]
    steps_per_epoch = len(epoch_batches(lengths, opt.batch_size, cfg.seed, 0, opt.length_grouping, keys))
    total = opt.max_steps if opt.max_steps > 0 else math.ceil(opt.epochs * steps_per_epoch)
    layout.fit_widths(opt.batch_size, cfg.seed, math.ceil(total / steps_per_epoch), opt.length_grouping, keys,
                      engine.world, opt.row_widths)
    prep.row_widths = layout.widths
    optimizer = adamw(param_groups(model, opt.weight_decay), opt.lr, opt.betas)
    scheduler = lr_scheduler(opt.scheduler, optimizer, int(opt.warmup_ratio * total), total)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "best_loss": None, "best_step": None,
             "bad_evals": 0}
    if resume_from is not None:
        state = ckpt_io.load_weights(engine, resume_from, model)
    # every check has passed: only now the main process creates (or clears) the run folder; the others wait
    engine.on_main(lambda: ckpt_io.prepare_run_dir(cfg.output_dir, cfg.overwrite, cfg.resume, ckpt=resume_from), share=False)
    model, optimizer = engine.prepare(model, optimizer)
    if resume_from is not None:
        ckpt_io.restore_training_state(engine, resume_from, model, optimizer, scheduler)
    model.train()
    log = open_run_log(out, cfg, resume_from=resume_from, resume_step=state["step"], enabled=engine.is_main)
    try:
        if engine.is_main:
            (out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
            log.write({"event": "start", "step": state["step"], "total_steps": total, "data": prep.stats,
                       "precision": engine.precision, "world_size": engine.world, "model": prep.model_info,
                       "tie_model": prep.tie_model, **layout.start_event(model),
                       "length_buckets": buckets,
                       "resumed_from": str(resume_from) if resume_from else None})
            report_data(console, prep.stats)
        loss_cfg = cfg.loss.model_copy(update={"tie_model": prep.tie_model}) if prep.attributes is None else cfg.loss
        bar = progress_bar(total, state["step"], cfg.logging.progress and engine.is_main)
        window, t_window, padding = Window(), time.perf_counter(), [0, 0]  # padding: real tokens, positions
        stop, last_eval = False, {}  # last_eval: {step: result} of the latest evaluation

        def evaluate(final: bool = False) -> tuple[bool, tuple | None]:
            if final and state["step"] in last_eval:  # e.g. an early stop: that step is evaluated already
                return False, last_eval[state["step"]]
            stop_now, result = _evaluate(cfg, engine, model, prep, state, log, out, final)
            last_eval.clear()
            last_eval[state["step"]] = result
            return stop_now, result
        while state["step"] < total and not stop:
            batches = epoch_batches(lengths, opt.batch_size, cfg.seed, state["epoch"], opt.length_grouping, keys)
            for bi in range(state["batch_in_epoch"], len(batches)):
                items = [prep.train[i] for i in batches[bi]]
                parts = layout.parts(batches[bi], engine.rank, engine.world)
                bad_loss = None
                for j, (part, width) in enumerate(parts):
                    with engine.no_sync(model, j == len(parts) - 1), out_of_memory(layout, state["step"] + 1, part):
                        with engine.autocast():
                            loss_sum, stats = batch_loss(model, [prep.train[i] for i in part], pad_id, loss_cfg,
                                                         engine.device, packing, buckets, width)
                        engine.backward(loss_sum * (engine.world / len(items)))
                    if bad_loss is None and not math.isfinite(stats["loss_sum"]):
                        bad_loss = stats["loss_sum"] / stats["samples"]
                    window.add(stats)
                    padding[0] += stats["tokens"]
                    padding[1] += stats["positions"]
                if not parts:  # a rank with no item this step still joins the all-reduce
                    engine.backward(sum(p.sum() * 0.0 for p in model.parameters()))
                check_finite_loss(engine, cfg, bad_loss, state["step"] + 1, total, out, log)
                window.grad_norm = optimizer_step(engine, model, optimizer, scheduler, opt.max_grad_norm, state, bi)
                bar.update(1)
                step = state["step"]
                if step % cfg.logging.every_steps == 0 or step == total:
                    elapsed = time.perf_counter() - t_window
                    row = window.summary(engine, elapsed) | {"step": step, "epoch": state["epoch"] + bi / len(batches),
                                                             "lr": scheduler.get_last_lr()[0],
                                                             "peak_memory_mb": peak_memory_mb(),
                                                             "padding_ratio": 1 - padding[0] / max(padding[1], 1)}
                    log.write(row)
                    bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", acc=f"{row.get('accuracy', 0):.3f}")
                    window, t_window, padding = Window(), time.perf_counter(), [0, 0]
                if cfg.eval.every_steps and step % cfg.eval.every_steps == 0 and step != total:
                    stop, _ = evaluate()
                if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0 and step != total:
                    _checkpoint(cfg, engine, model, tok, optimizer, scheduler, state, out)
                _fault_injection(step)
                if step >= total or stop:
                    break
            else:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
                if not cfg.eval.every_steps and state["step"] < total:
                    stop, _ = evaluate()
        bar.close()
        _, final_eval = evaluate(final=True)
        return _finish(cfg, engine, model, prep, state, log, out, final_eval)
    except BaseException:  # metrics.jsonl and the trackers are closed on any failure
        log.close()
        raise


def _evaluate(cfg, engine, model, prep, state, log, out, final: bool = False) -> tuple[bool, tuple | None]:
    """Validation pass; tracks the best checkpoint. Returns (early stop?, (metrics, rewards)); the early
    stop decision (made on the main process) is shared with every process."""
    if not prep.validation:
        return False, None
    stop, result, keep = False, None, False
    if engine.is_main or engine.sharding != "none":  # a sharded model's forward is a collective
        metrics, rewards = validation_pass(cfg, engine, engine.unwrap(model), prep, prep.row_widths)
    if engine.is_main:
        result = (metrics, rewards)
        log.write({"event": "eval", "step": state["step"], **{f"eval_{k}": v for k, v in metrics.items()}})
        verdict = compare_to_best(best_metric(cfg), metrics, state)
        if verdict in ("better", "tie"):  # a full tie goes to the later step
            state.update(best=metrics[best_metric(cfg)], best_loss=metrics.get("loss"), best_step=state["step"])
            keep = cfg.checkpoint.save_best and not final
        if verdict == "better":
            state["bad_evals"] = 0
        elif verdict is not None and not final:  # the final pass cannot stop anything
            state["bad_evals"] += 1
            patience = cfg.eval.early_stopping_patience
            stop = patience is not None and state["bad_evals"] >= patience
            if stop:
                log.write({"event": "early_stop", "step": state["step"], "best_step": state["best_step"]})
    if engine.world > 1:  # decided on the main process: every process leaves with its state, stop and keep
        shared, stop, keep = engine.on_main(lambda: (dict(state), stop, keep))
        state.update(shared)
    if keep:  # gathered from every process's shard, written by the main process
        ckpt_io.save_model(engine, model, out / "checkpoints" / "best")
    engine.barrier()
    return stop, result


def validation_pass(cfg, engine, net, prep, widths=None) -> tuple[dict, list[list[float]]]:
    """One scoring pass over the validation set: (metrics, rewards per sample). ``widths``: the run's
    static row widths (FlexAttention on the GPU), reused so validation adds no new row shapes.

    Pairs: accuracy/margin/loss; pointwise: MSE/MAE per attribute (rewards = weighted attributes).
    """
    pad = prep.tokenizer.pad_token_id
    if prep.attributes is not None:
        outputs = model_outputs(net, [s.encodings[0] for s in prep.validation], pad, cfg.eval.batch_size,
                                engine.device, engine.autocast, resolve_packing(net, cfg.train.packing), widths=widths)
        weights = net.config.rmforge_reward_weights
        rewards = [[sum(w * v for w, v in zip(weights, row))] for row in outputs]
        return pointwise_eval_metrics(prep.validation, outputs, prep.attributes), rewards
    rewards = score_samples(net, prep.validation, pad, cfg.eval.batch_size, engine.device, engine.autocast,
                            resolve_packing(net, cfg.train.packing), widths=widths)
    return pair_eval_metrics(prep.validation, rewards, prep.tie_model, cfg.loss.tie_param), rewards


def _checkpoint(cfg, engine, model, tok, optimizer, scheduler, state, out) -> None:
    """checkpoints/step-N through Accelerate; every process takes part (its shards, its RNG)."""
    ckpt_io.save_training_checkpoint(engine, out, state["step"], model, tok, optimizer, scheduler, dict(state),
                                     cfg.checkpoint.keep_last)


def _fault_injection(step: int) -> None:
    """Test hook: RMFORGE_KILL_AT_STEP=N makes the process SIGKILL itself after step N."""
    import os

    if os.environ.get("RMFORGE_KILL_AT_STEP") == str(step):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def param_checksum(model) -> float:
    """Sum of all parameters in float64: equal on every DDP rank when replicas are in sync (FSDP: of the
    whole parameters, gathered from the shards; every process calls it)."""
    with torch.no_grad():
        return float(sum((p.full_tensor() if hasattr(p, "full_tensor") else p).detach().double().sum()
                         for p in model.parameters()))


def _finish(cfg, engine, model, prep, state, log, out, final_eval: tuple | None) -> dict:
    net = engine.unwrap(model)
    checksums = engine.gather_float(param_checksum(net))
    best_dir = out / "checkpoints" / "best"
    use_best = (cfg.checkpoint.save_best and state["best_step"] is not None and state["best_step"] != state["step"]
                and best_dir.exists())
    if use_best:  # every process: the best weights go back into the shards; mismatched keys are an error
        ckpt_io.load_model(engine, model, best_dir)
    summary = {"steps": state["step"], "best_step": state["best_step"] if use_best else state["step"],
               "rank_param_checksums": checksums, "compiles": compiles()}
    sharded = engine.sharding != "none"
    again = use_best or (final_eval is None and bool(prep.validation))  # the weights differ from the last pass
    if sharded and engine.world > 1:
        again = engine.on_main(lambda: again)
    if again and (engine.is_main or sharded):  # a sharded model's forward is a collective
        final_eval = validation_pass(cfg, engine, net, prep, prep.row_widths)
    summary["compiles"] = compiles()  # with the final pass's
    weights = engine.full_state_dict(model) if sharded else None  # gathered: every process takes part
    if engine.is_main:
        metrics, rewards = final_eval if final_eval is not None else ({}, [])
        summary["saved"] = saved_model(cfg, state, use_best, bool(prep.validation), metrics)
        flat = [r for rs in rewards for r in rs]
        summary["validation"] = metrics
        pairs = [(s, r) for s, r in zip(prep.validation, rewards) if s.kind == "pair"]
        if pairs:
            from rmforge.train.plot import save_validation_rewards

            save_validation_rewards(out, [r[0] for _, r in pairs], [r[1] for _, r in pairs],
                                    [s.sample_id or str(s.index) for s, _ in pairs])
        normalization = reward_normalization(flat)
        manifest = {
            "rmforge_version": __version__, "kind": cfg.kind, "model": cfg.model, "model_info": prep.model_info,
            "encoding": prep.encoder.info(), "pad_token_id": prep.tokenizer.pad_token_id,
            "eos_token_id": prep.tokenizer.eos_token_id, "max_length": cfg.max_length,
            "length_policy": cfg.length_policy, "normalization": normalization,
            "data": {"fingerprints": prep.fingerprints, **prep.stats}, "precision": engine.precision,
            "world_size": engine.world, "summary": summary, "attributes": prep.attributes, "tie_model": prep.tie_model,
            "reward_weights": getattr(net.config, "rmforge_reward_weights", None),
        }
        ckpt_io.save_final(out, net, prep.tokenizer, dump_config(cfg), manifest, weights)
        log.write({"event": "end", **summary})
        log.close()
    engine.barrier()
    return summary


def optimizer_step(engine, model, optimizer, scheduler, max_grad_norm: float | None, state: dict, batch: int) -> float:
    """Clip, step optimizer and schedule, clear gradients and advance ``state`` (step, data position);
    returns the gradient norm before clipping. Shared with the SFT trainer."""
    grad_norm = engine.clip(model, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    state["step"] += 1
    state["batch_in_epoch"] = batch + 1
    return grad_norm


def report_data(console, stats: dict) -> None:
    """One console line per split: samples kept, truncated and dropped (with reasons)."""
    if console is None:
        return
    from rich.markup import escape

    for split, s in stats.items():
        why = ", ".join(f"{k}: {v}" for k, v in s.get("dropped_by_reason", {}).items())
        console.print(escape(f"{split}: {s['samples']} samples, kept {s.get('kept', 0)}, truncated "
                             f"{s.get('truncated', 0)}, dropped {s.get('dropped', 0)}" + (f" ({why})" if why else "")),
                      highlight=False)


def progress_bar(total: int, initial: int, enabled: bool):
    """The training progress bar (steps, ETA); resumes at ``initial``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", disable=not enabled, dynamic_ncols=True)
