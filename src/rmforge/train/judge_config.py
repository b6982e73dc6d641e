"""Typed configuration of the generative-judge trainers (``kind: train-sft`` and ``kind: train-judge``).

Same field conventions as :mod:`rmforge.train.config` (``model``, ``data.train``, ``data.validation``,
``output_dir``, ``train.max_steps``, ``train.batch_size``, ``train.lr``, ``seed``), sections reused from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rmforge.config import ConfigModel, register_config
from rmforge.train.config import CheckpointConfig, LoggingConfig, LoraOptions, OptimConfig


class SFTOptim(OptimConfig):
    """Optimisation of SFT (batch_size counts conversations)."""

    lr: float = Field(default=2e-5, gt=0)
    """Peak learning rate (AdamW)."""


class GRPOOptim(OptimConfig):
    """Optimisation of GRPO (batch_size counts prompts; each gets grpo.num_generations completions)."""

    lr: float = Field(default=1e-6, gt=0)
    """Learning rate (AdamW)."""
    scheduler: Literal["linear", "cosine", "constant"] = "constant"
    """Learning-rate decay after warmup."""
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    """Share of the steps spent warming up linearly from 0."""


class GRPOLogging(LoggingConfig):
    """Metrics and progress (every step by default: GRPO steps are slow).

    ``report_to`` (the reward-model trainers' option, same names) goes to TRL's ``GRPOConfig.report_to``:
    the trackers get TRL's own rows (reward, KL, completion lengths) with the judge statistics and the
    validation figures; metrics.jsonl is always written by rmforge.
    """

    every_steps: int = Field(default=1, ge=1)
    """Log training metrics every N optimizer steps."""


class SFTData(ConfigModel):
    """SFT data: ``messages`` rows (``rmforge data export --to sft``) or judge rows (``input`` + ``output``)."""

    train: str | None = None
    """Training file (jsonl / parquet)."""
    validation: str | None = None
    """Validation file (loss on assistant tokens, logged as eval_loss)."""
    limit: int | None = Field(default=None, ge=1)
    """Use a seeded random subset of at most this many training conversations."""


class SFTEval(ConfigModel):
    """Validation during SFT."""

    every_steps: int = 0
    """Evaluate every N optimizer steps (0 = only at the end)."""
    batch_size: int = Field(default=16, ge=1)
    """Conversations per forward pass during evaluation."""


class JudgeModelOptions(ConfigModel):
    """Chat rendering of the generative model."""

    chat_template: str | None = None
    """Jinja template file or string replacing the tokenizer's own (null = keep it)."""
    enable_thinking: bool | None = None
    """Passed to chat templates that read it (Qwen3 style); ignored for others; null = template default."""


class GenerativeBase(ConfigModel):
    """Options shared by the SFT and judge trainers (same names as the reward-model trainers')."""

    model: str = "smollm2-135m"
    """Causal LM: embedded name (``smollm2-135m``), a local HF folder (e.g. an SFT run), a .gguf file or a hub id."""
    model_options: JudgeModelOptions = Field(default_factory=JudgeModelOptions)
    """Chat template options."""
    overwrite: bool = False
    """Replace an existing, finished run directory."""
    resume: str | None = None
    """``auto`` = continue from the newest checkpoint in output_dir; or a checkpoint folder."""
    seed: int = 42
    """Seed for initialisation, data order and sampling."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Checkpoints."""
    lora: LoraOptions = Field(default_factory=LoraOptions)
    """LoRA adapters on the causal LM (adapter/ plus the merged model at the top of output_dir)."""


@register_config("train-sft")
class SFTConfig(GenerativeBase):
    """Supervised fine-tuning of a causal LM on conversations, loss on assistant tokens only (``rmforge train sft``)."""

    kind: Literal["train-sft"] = "train-sft"
    data: SFTData = Field(default_factory=SFTData)
    """Training/validation data."""
    output_dir: str = "runs/sft"
    """Run directory: final model, manifest.json, config.yaml, metrics.jsonl, checkpoints/."""
    max_length: int = Field(default=1024, ge=8)
    """Maximum tokens per conversation; longer ones lose their leading tokens (counted) or are dropped."""
    length_policy: Literal["truncate_left", "drop"] = "truncate_left"
    """Over-long conversations: cut tokens from the start (the last answer stays) or drop them."""
    packing: bool = False
    """Concatenate conversations into rows of max_length tokens (block-diagonal attention, no padding)."""
    train: SFTOptim = Field(default_factory=SFTOptim)
    """Optimisation (batch_size counts conversations)."""
    eval: SFTEval = Field(default_factory=SFTEval)
    """Validation."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Logging."""

    @model_validator(mode="after")
    def _micro_divides(self):
        micro, batch = self.train.micro_batch_size, self.train.batch_size
        if micro is not None and batch % micro:
            raise ValueError(f"train.batch_size ({batch}) must be a multiple of train.micro_batch_size ({micro})")
        return self


class JudgeData(ConfigModel):
    """Judge data: the pointwise / pairwise / verl export of ``rmforge data build``, or canonical samples."""

    train: str | None = None
    """Training file."""
    validation: str | None = None
    """Held-out file, scored at the end (greedy verdicts: accuracy, MAE, parse failures)."""
    limit: int | None = Field(default=None, ge=1)
    """Use a seeded random subset of at most this many training prompts."""
    validation_limit: int | None = Field(default=None, ge=1)
    """At most this many validation prompts."""
    scale: tuple[float, float] | None = None
    """Pointwise scale (min, max) for rows that do not carry one; null = read it from the prompt."""
    template: str | None = None
    """Judge template for canonical samples: built-in name (``pairwise``, ``pairwise-think``, ...) or a file."""
    rubric: str | None = None
    """Text for the ``{rubric}`` placeholder of a rubric template."""


class GRPOOptions(ConfigModel):
    """Group Relative Policy Optimization settings (both backends)."""

    num_generations: int = Field(default=4, ge=2)
    """Completions sampled per prompt (the group whose rewards are normalised)."""
    max_completion_length: int = Field(default=64, ge=1)
    """Maximum new tokens per completion."""
    max_prompt_length: int = Field(default=1024, ge=8)
    """Prompts longer than this (tokens) are dropped before training (counted)."""
    temperature: float = Field(default=1.0, gt=0)
    """Sampling temperature of the rollouts."""
    beta: float = Field(default=0.001, ge=0)
    """KL coefficient against the initial model (0 = no reference model, no KL metric)."""
    epsilon: float = Field(default=0.2, gt=0)
    """PPO clip range."""
    k: float = Field(default=2.0, gt=0)
    """Pointwise reward sharpness: exp(-k |pred - truth| / (max - min))."""
    format_weight: float = Field(default=0.0, ge=0)
    """Bonus added to the reward when the answer parses."""
    orders_together: bool = True
    """Pairwise: put both A/B orders of each comparison in the same step (seeded order, TRL's shuffle off),
    so always answering A (or B) gains nothing within a step; use an even train.batch_size."""
    share_prompt: bool = True
    """Local backend: compute the training log-probabilities with each prompt encoded once for all its
    completions (prefix sharing; same values as TRL's per-row forward, a fraction of the tokens)."""
    use_vllm: bool = False
    """Local backend: generate with vLLM (needs vllm and a GPU)."""


class VerlOptions(ConfigModel):
    """verl job settings (``backend=verl``)."""

    n_gpus_per_node: int = Field(default=8, ge=1)
    """GPUs per node."""
    nnodes: int = Field(default=1, ge=1)
    """Nodes of the Ray cluster."""
    rollout: Literal["vllm", "sglang"] = "vllm"
    """Rollout engine."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """Rollout tensor parallelism."""
    gpu_memory_utilization: float = Field(default=0.6, gt=0, le=1)
    """Share of GPU memory the rollout engine may take."""
    ppo_mini_batch_size: int | None = Field(default=None, ge=1)
    """Prompts per PPO mini-batch (default: train.batch_size)."""
    micro_batch_size_per_gpu: int = Field(default=2, ge=1)
    """Samples per forward pass per GPU (actor, reference, rollout log-probs)."""
    epochs: int = Field(default=1, ge=1)
    """trainer.total_epochs (train.max_steps > 0 sets trainer.total_training_steps too)."""
    project: str = "rmforge"
    """trainer.project_name."""
    extra_overrides: list[str] = Field(default_factory=list)
    """More Hydra overrides appended to the command (e.g. ``actor_rollout_ref.actor.fsdp_config.param_offload=true``)."""
    run: bool = False
    """Start launch.sh right away (needs GPUs and a Ray-capable verl install); else only write the job."""


@register_config("train-judge")
class JudgeConfig(GenerativeBase):
    """GRPO training of a generative judge (``rmforge train judge``)."""

    kind: Literal["train-judge"] = "train-judge"
    mode: Literal["pointwise", "pairwise"] = "pairwise"
    """Judge task: a score for one response, or a preference A / B / tie between two."""
    backend: Literal["local", "verl"] = "local"
    """local: TRL's GRPOTrainer on this machine; verl: write a verl job (parquet, reward module, launch.sh)."""
    check: bool = False
    """backend=verl: validate the written job against the installed verl and exit (0 when valid)."""
    data: JudgeData = Field(default_factory=JudgeData)
    """Judge data."""
    output_dir: str = "runs/judge"
    """Run directory (local: final model + metrics.jsonl; verl: the job files)."""
    train: GRPOOptim = Field(default_factory=GRPOOptim)
    """Optimisation; batch_size counts prompts per step (each gets grpo.num_generations completions)."""
    grpo: GRPOOptions = Field(default_factory=GRPOOptions)
    """GRPO settings."""
    eval: SFTEval = Field(default_factory=SFTEval)
    """Validation (local backend): greedy verdicts on data.validation every N steps and at the end."""
    logging: GRPOLogging = Field(default_factory=GRPOLogging)
    """Logging."""
    verl: VerlOptions = Field(default_factory=VerlOptions)
    """verl job settings."""
