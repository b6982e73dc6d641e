"""GRPO training of generative judges (``rmforge train judge``): local backend through TRL, or a verl job.

Local backend: TRL's ``GRPOTrainer`` (generation through ``model.generate``; vLLM when
``grpo.use_vllm`` and installed) with the :class:`~rmforge.judge.rewards.JudgeReward` callable. With
``grpo.share_prompt`` each prompt is encoded once for its completions
(:mod:`rmforge.train.grpo_packing`); on a GPU that needs FlexAttention, so the policy is switched to it
before training (:func:`share_prompt_attention`; the start event says so, or why not). Each
logged step adds the judge statistics (verdict accuracy, MAE, parse-failure rate and kinds) to TRL's
own (reward, KL, completion length); every row goes to ``metrics.jsonl``. At the end the validation
prompts get greedy verdicts (:func:`rmforge.evaluate.judge.judge_metrics`) and the model is saved
with ``config.yaml`` and ``manifest.json`` as by the other trainers (LoRA: adapter + merged model).

verl backend: :func:`rmforge.judge.verl.write_job` (parquet, reward module, launch.sh) and, with
``check=true``, :func:`rmforge.judge.verl.check_job`.
"""

from __future__ import annotations

import inspect
import math
import random
import time
from pathlib import Path

from rmforge import __version__
from rmforge.config import dump_config
from rmforge.errors import RmforgeError
from rmforge.judge.data import JudgeExample, comparisons, load_judge_data
from rmforge.train.judge_config import JudgeConfig


TRL_MISSING = "train judge needs TRL: pip install 'rmforge[judge]'"
TRL_SUPPORTED = "trl>=1.7,<1.17"
"""TRL releases whose private ``GRPOTrainer._get_per_token_logps_and_entropies`` has the signature below
(1.0-1.6 lack ``compute_aux_loss`` and return two values; 1.7.0-1.16.0 are identical)."""
TRL_LOGPS_PARAMS = (("self", inspect.Parameter.empty), ("model", inspect.Parameter.empty),
                    ("input_ids", inspect.Parameter.empty), ("attention_mask", inspect.Parameter.empty),
                    ("logits_to_keep", inspect.Parameter.empty), ("batch_size", None), ("compute_entropy", False),
                    ("compute_aux_loss", False))
"""The leading parameters (name, default) the ``grpo.share_prompt`` override takes and passes on; every
later parameter must default to None (multimodal inputs: text-only batches leave them None)."""


def import_trl():
    """``(GRPOConfig, GRPOTrainer)``; RmforgeError naming the extra when TRL is not installed."""
    try:
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "trl":
            detail = " ".join(str(exc).split())
            raise RmforgeError(f"TRL is installed but does not import: {detail} (train judge needs {TRL_SUPPORTED})") \
                from None
        raise RmforgeError(TRL_MISSING) from None
    return GRPOConfig, GRPOTrainer


def trl_contract_problem(trainer_cls) -> str | None:
    """Why ``trainer_cls._get_per_token_logps_and_entropies`` differs from what rmforge overrides (None when not)."""
    fn = getattr(trainer_cls, "_get_per_token_logps_and_entropies", None)
    if fn is None:
        return "GRPOTrainer has no _get_per_token_logps_and_entropies"
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    head = [(p.name, p.default) for p in params[:len(TRL_LOGPS_PARAMS)]]
    if head != list(TRL_LOGPS_PARAMS) or any(p.kind != p.POSITIONAL_OR_KEYWORD for p in params[:len(head)]):
        return f"its parameters begin ({', '.join(p.name for p in params[:len(TRL_LOGPS_PARAMS)])}), expected " \
               f"({', '.join(name for name, _ in TRL_LOGPS_PARAMS)})"
    rest = [p.name for p in params[len(TRL_LOGPS_PARAMS):] if p.default is not None]
    if rest:
        return f"its parameters {', '.join(rest)} do not default to None"
    ret = sig.return_annotation
    ret = ret if isinstance(ret, str) else str(ret)
    if ret.replace(" ", "") != "tuple[torch.Tensor,torch.Tensor|None,torch.Tensor|None]":
        return f"it returns {ret}, expected (logps, entropies, aux_loss)"
    return None


def warmup_steps(ratio: float, total_steps: int) -> int:
    """Whole warmup steps for ``train.warmup_ratio`` (rounded up, as transformers' ``get_warmup_steps``)."""
    return math.ceil(ratio * total_steps)


def scheduler_name(scheduler: str, warmup_ratio: float) -> str:
    """transformers' scheduler type: its ``constant`` ignores warmup, so a warmup asks for ``constant_with_warmup``."""
    from rmforge.train.engine import scheduler_type

    return scheduler_type(scheduler, warmup_ratio)


def tensorboard_dir(cfg: JudgeConfig, out: Path) -> Path:
    """Where TRL's TensorBoard rows go: RUN_DIR/trackers/PROJECT, as the reward-model trainers' tracker."""
    return out / "trackers" / cfg.logging.project


def trl_report_to(names: list[str], tracker_options: dict | None = None) -> list[str]:
    """``logging.report_to`` as transformers' ``report_to`` (``jsonl`` is rmforge's own metrics.jsonl, always
    written); RmforgeError for a tracker transformers has no callback for or whose package is missing, and
    for ``logging.tracker_options`` (TRL's trackers take their settings from environment variables)."""
    if tracker_options:
        raise RmforgeError("logging.tracker_options is not supported by train judge: TRL's trackers read their "
                           "settings from environment variables (e.g. WANDB_PROJECT, WANDB_ENTITY, MLFLOW_TRACKING_URI)")
    from transformers.integrations.integration_utils import (INTEGRATION_TO_CALLBACK,
                                                             get_available_reporting_integrations)

    trackers = [n for n in dict.fromkeys(names) if n not in ("jsonl", "none")]
    unknown = [n for n in trackers if n not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise RmforgeError(f"logging.report_to: train judge logs through TRL, whose trainer has no tracker "
                           f"{', '.join(unknown)} (it has {', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
    missing = [n for n in trackers if n not in get_available_reporting_integrations()]
    if missing:
        raise RmforgeError(f"logging.report_to has {', '.join(missing)} but the package is missing: "
                           f"pip install {' '.join(missing)}")
    return trackers


def grpo_config(GRPOConfig, cfg: JudgeConfig, out: Path, *, epochs: float, shuffle: bool, precision: str,
                template_kwargs: dict | None):
    """TRL's GRPOConfig for the local backend (checkpoints and TensorBoard files under ``out``; the trackers of
    ``logging.report_to``, project ``logging.project``, run name the folder's)."""
    import dataclasses

    import torch

    opt, g = cfg.train, cfg.grpo
    trackers = trl_report_to(cfg.logging.report_to, cfg.logging.tracker_options)
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    extra = {}
    if "logging_dir" in known:  # transformers 4.x
        extra["logging_dir"] = str(tensorboard_dir(cfg, out))
    if "project" in known:  # transformers 5 (Trackio's project)
        extra["project"] = cfg.logging.project
    return GRPOConfig(
        output_dir=str(out / "checkpoints"), seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=opt.batch_size * g.num_generations, gradient_accumulation_steps=1,
        num_generations=g.num_generations, max_completion_length=g.max_completion_length,
        temperature=g.temperature, beta=g.beta, epsilon=g.epsilon, use_vllm=g.use_vllm,
        learning_rate=opt.lr, lr_scheduler_type=scheduler_name(opt.scheduler, opt.warmup_ratio), warmup_steps=0,
        weight_decay=opt.weight_decay, adam_beta1=opt.betas[0], adam_beta2=opt.betas[1],
        max_grad_norm=opt.max_grad_norm or 0.0, max_steps=opt.max_steps, num_train_epochs=epochs,
        shuffle_dataset=shuffle, gradient_checkpointing=opt.gradient_checkpointing,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not torch.cuda.is_available(),
        logging_steps=cfg.logging.every_steps, report_to=trackers or "none", run_name=out.name,
        disable_tqdm=not cfg.logging.progress,
        save_strategy="steps" if cfg.checkpoint.every_steps else "no",
        save_steps=cfg.checkpoint.every_steps or 500, save_total_limit=cfg.checkpoint.keep_last,
        chat_template_kwargs=template_kwargs, log_completions=False, **extra,
    )


def judge_trainer_class(base, reward, share_prompt: bool, pad_token_id: int, warmup_ratio: float = 0.0):
    """``base`` (TRL's GRPOTrainer) logging the judge statistics with each row, warming up for
    :func:`warmup_steps` whole steps of the run it schedules (an int ``warmup_steps`` means steps on
    every transformers version, where a ratio passed as ``warmup_steps`` means 0.x steps on 4.x and one
    step for 1.0 on 5.x) and, with ``share_prompt``,
    computing the log-probabilities of text-only batches with each prompt encoded once
    (:func:`rmforge.train.grpo_packing.shared_prompt_logps`)."""
    from rmforge.train.grpo_packing import shared_prompt_logps

    class Judge(base):
        def log(self, logs, start_time=None):
            logs.update(reward.stats.pop())
            super().log(logs, start_time)

        def create_scheduler(self, num_training_steps, optimizer=None):
            self.args.warmup_steps = warmup_steps(warmup_ratio, num_training_steps)
            return super().create_scheduler(num_training_steps, optimizer)

    if not share_prompt:
        return Judge

    class SharedPromptJudge(Judge):
        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **extra):
            # prefix sharing for text-only batches on one process; anything else goes to TRL as is
            if not compute_aux_loss and self.accelerator.num_processes == 1 and all(v is None for v in extra.values()):
                with self.accelerator.autocast():
                    out = shared_prompt_logps(model, input_ids, attention_mask, logits_to_keep, pad_token_id,
                                              compute_entropy)
                if out is not None:
                    return out[0], out[1], None
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                **extra)

    return SharedPromptJudge


def share_prompt_attention(model, share_prompt: bool, cuda: bool) -> tuple[str | None, str | None]:
    """``(attention, note)`` for ``grpo.share_prompt`` (before training): on CUDA the policy is switched to
    FlexAttention (:func:`rmforge.reward_model.flex.use_flex_attention`), the only way prompts are shared
    on a GPU (no dense masks there); where it cannot run, the note says why and the log-probabilities
    come from TRL's per-row computation. ``(None, None)`` without prompt sharing."""
    if not share_prompt:
        return None, None
    from rmforge.reward_model.attention import attn_implementation
    from rmforge.reward_model.flex import use_flex_attention

    if not cuda:
        return attn_implementation(model), "prompts encoded once per group (CPU: a dense mask)"
    ok, why = use_flex_attention(model)
    if ok:
        return attn_implementation(model), "prompts encoded once per group (FlexAttention block mask)"
    return attn_implementation(model), (f"FlexAttention is off ({why}): no dense masks on a GPU, so the "
                                        "log-probabilities come from TRL's per-row computation")


def load_examples(cfg: JudgeConfig) -> tuple[list[JudgeExample], list[JudgeExample]]:
    """Training and validation judge examples (errors name the file and row)."""
    if not cfg.data.train:
        raise RmforgeError(f"no training data: set data.train=PATH (the {cfg.mode} or verl export of rmforge data "
                           "build, or canonical samples)")
    kw = {"template": cfg.data.template, "rubric": cfg.data.rubric, "scale": cfg.data.scale, "seed": cfg.seed}
    train = load_judge_data(cfg.data.train, cfg.mode, limit=cfg.data.limit, **kw)
    val = load_judge_data(cfg.data.validation, cfg.mode, limit=cfg.data.validation_limit, **kw) \
        if cfg.data.validation else []
    return train, val


def filter_prompt_length(tok, examples: list[JudgeExample], max_tokens: int,
                         enable_thinking: bool | None) -> tuple[list[JudgeExample], int]:
    """Drop prompts longer than ``max_tokens`` once rendered; returns (kept, dropped count)."""
    from rmforge.judge.templates import render_chat

    kept = [ex for ex in examples
            if len(tok(render_chat(tok, ex.prompt, enable_thinking), add_special_tokens=False)["input_ids"]) <= max_tokens]
    return kept, len(examples) - len(kept)


def orders_together(examples: list[JudgeExample], n_needed: int, seed: int) -> list[JudgeExample]:
    """Pairwise examples in a seeded order of comparisons, the A/B orders of each adjacent, repeated
    with a fresh shuffle until ``n_needed`` rows: with an even number of prompts per step, every step
    holds both orders of its comparisons, so a position bias earns no net reward within a step."""
    order = [sorted((examples[i] for i in g), key=lambda e: e.position or "") for g in comparisons(examples)]
    rng = random.Random(f"rmforge-grpo-orders:{seed}")
    out: list[JudgeExample] = []
    while len(out) < max(n_needed, 1):
        rng.shuffle(order)
        out += [ex for g in order for ex in g]
    return out


def train_judge(cfg: JudgeConfig, console=None) -> dict:
    """Run the configured backend; returns a summary."""
    if cfg.backend == "verl":
        from rmforge.judge import verl

        train, val = load_examples(cfg)
        if cfg.check:
            return verl.check_job(Path(cfg.output_dir)) if verl.job_exists(Path(cfg.output_dir)) and not cfg.overwrite \
                else verl.check_job(verl.write_job(cfg, train, val))
        out = verl.write_job(cfg, train, val)
        if cfg.verl.run:
            verl.run_job(out)
        return {"backend": "verl", "output_dir": str(out), "train_rows": len(train), "validation_rows": len(val)}
    if cfg.check:
        raise RmforgeError("check=true validates a verl job: use it with backend=verl")
    return _train_local(cfg, console)


def _train_local(cfg: JudgeConfig, console=None) -> dict:
    GRPOConfig, GRPOTrainer = import_trl()
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint

    from rmforge.evaluate.judge import generate_verdicts, judge_metrics
    from rmforge.judge.lm import load_causal_lm
    from rmforge.judge.rewards import JudgeReward
    from rmforge.judge.templates import chat_template_kwargs
    from rmforge.train import checkpoint as ckpt_io
    from rmforge.train.engine import resolve_precision
    from rmforge.train.metrics import MetricsLog
    from rmforge.train.sft import causal_lora_config

    if cfg.grpo.use_vllm and not torch.cuda.is_available():
        raise RmforgeError("grpo.use_vllm=true needs a CUDA GPU and vllm; on CPU generation uses model.generate")
    if cfg.grpo.share_prompt and (problem := trl_contract_problem(GRPOTrainer)):
        import trl

        raise RmforgeError(f"grpo.share_prompt=true overrides GRPOTrainer._get_per_token_logps_and_entropies, which "
                           f"changed in the installed trl {trl.__version__}: {problem}. Install {TRL_SUPPORTED} "
                           "or set grpo.share_prompt=false")
    trl_report_to(cfg.logging.report_to, cfg.logging.tracker_options)  # trackers known and installed, before any work
    train, val = load_examples(cfg)
    out = Path(cfg.output_dir)
    resume = None
    if cfg.resume == "auto" and (out / "checkpoints").is_dir():
        resume = get_last_checkpoint(str(out / "checkpoints"))
    elif cfg.resume not in (None, "auto"):
        resume = cfg.resume
    if resume is None:  # a fresh run: output_dir checked now, created once the model and data checks pass
        ckpt_io.resume_point(cfg.output_dir, cfg.overwrite, None)
    model, tok = load_causal_lm(cfg.model, cfg.model_options.chat_template)
    enable = cfg.model_options.enable_thinking
    train, dropped = filter_prompt_length(tok, train, cfg.grpo.max_prompt_length, enable)
    if not train:
        raise RmforgeError(f"every training prompt is longer than grpo.max_prompt_length={cfg.grpo.max_prompt_length}")
    reward = JudgeReward(cfg.mode, cfg.grpo.k, cfg.grpo.format_weight)
    opt, g = cfg.train, cfg.grpo
    together = cfg.mode == "pairwise" and g.orders_together
    epochs, kept = opt.epochs, len(train)
    if together:  # both A/B orders of a comparison in the same step; the order is ours, TRL keeps it
        n_needed = opt.max_steps * opt.batch_size if opt.max_steps > 0 else math.ceil(opt.epochs * len(train))
        train = orders_together(train, n_needed, cfg.seed)
        if opt.max_steps <= 0:  # the passes are laid out in the data: one TRL epoch over them
            train, epochs = train[:n_needed], 1
    rows = [{"prompt": ex.prompt, "truth": ex.truth, "scale_min": ex.scale_min, "scale_max": ex.scale_max,
             "group": ex.group} for ex in train]
    dataset = Dataset.from_list(rows)
    precision = resolve_precision(cfg.train.precision)
    args = grpo_config(GRPOConfig, cfg, out, epochs=epochs, shuffle=not together, precision=precision,
                       template_kwargs=chat_template_kwargs(tok, enable) or None)
    peft_config = causal_lora_config(model, cfg.lora) if cfg.lora.enabled else None
    attention, share_note = share_prompt_attention(model, g.share_prompt, torch.cuda.is_available())
    if resume is None:
        ckpt_io.prepare_run_dir(cfg.output_dir, cfg.overwrite, None)
    # resuming: drop rows logged after the checkpoint (TRL's checkpoint-N folders name their step);
    # trackers get TRL's rows from TRL itself (args.report_to), so metrics.jsonl is this log's only sink
    log = MetricsLog(out, [], resume_step=int(Path(resume).name.rsplit("-", 1)[-1])
                     if resume else None)
    log.write({"event": "start", "step": 0, "mode": cfg.mode, "backend": "local", "precision": precision,
               "share_prompt": g.share_prompt, "attention": attention, "share_prompt_note": share_note,
               "orders_together": together,
               "data": {"train": kept + dropped, "train_kept": kept, "dropped_prompt_too_long": dropped,
                        "validation": len(val)}, "resumed_from": resume})
    if console is not None and dropped:
        console.print(f"dropped {dropped} training prompts longer than grpo.max_prompt_length")
    if console is not None and share_note and share_note.startswith("FlexAttention is off"):
        console.print(f"grpo.share_prompt: {share_note}")

    Judge = judge_trainer_class(GRPOTrainer, reward, g.share_prompt, tok.pad_token_id, opt.warmup_ratio)

    def validate(net, step: int) -> dict:
        completions = generate_verdicts(net, tok, val, g.max_completion_length, cfg.eval.batch_size, enable)
        metrics = judge_metrics(val, completions, cfg.mode, g.k)
        row = {f"eval_{k}": v for k, v in metrics.items() if not isinstance(v, dict)}
        log.write({"event": "eval", "step": step, **row})
        if args.report_to and args.report_to != ["none"]:  # to the trackers' callbacks too (eval_x -> eval/x)
            # the handler clears control.should_log: keep the pending training row of this step
            to_jsonl.mute, should_log = True, trainer.control.should_log  # the row is in metrics.jsonl already
            try:
                trainer.callback_handler.on_log(args, trainer.state, trainer.control, {
                    k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            finally:
                to_jsonl.mute, trainer.control.should_log = False, should_log
        return metrics

    class ToJsonl(TrainerCallback):
        mute = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not self.mute:
                log.write({"step": state.global_step, **(logs or {})})

        def on_step_end(self, args, state, control, model=None, **kwargs):
            every = cfg.eval.every_steps
            if val and every and state.global_step % every == 0 and state.global_step < state.max_steps:
                validate(model, state.global_step)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            # the final validation, while the trackers are still open: this callback runs first, and the
            # trackers' own on_train_end closes them (TensorBoard, MLflow's run, Trackio)
            if val:
                final["validation"] = validate(model, state.global_step)

    to_jsonl, final = ToJsonl(), {}
    t0 = time.perf_counter()
    trainer = Judge(model=model, reward_funcs=[reward], args=args, train_dataset=dataset, processing_class=tok,
                    peft_config=peft_config, callbacks=[to_jsonl])
    trainer.callback_handler.callbacks.remove(to_jsonl)
    trainer.callback_handler.callbacks.insert(0, to_jsonl)
    for callback in trainer.callback_handler.callbacks:  # transformers 5 reads TensorBoard's folder from the env
        if type(callback).__name__ == "TensorBoardCallback" and getattr(callback, "logging_dir", "") is None:
            callback.logging_dir = str(tensorboard_dir(cfg, out))
    trainer.train(resume_from_checkpoint=resume)
    summary: dict = {"steps": trainer.state.global_step, "train_seconds": round(time.perf_counter() - t0, 1)}
    net = trainer.model
    if val:
        summary["validation"] = final.get("validation") or validate(net, summary["steps"])
    manifest = {"rmforge_version": __version__, "kind": cfg.kind, "mode": cfg.mode, "model": cfg.model,
                "backend": "local", "summary": summary}
    ckpt_io.save_final(out, net, tok, dump_config(cfg), manifest)
    log.write({"event": "end", **summary})
    log.close()
    return summary

