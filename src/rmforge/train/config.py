"""Typed configuration of the reward-model trainers (``kind: train-bt`` and ``kind: train-pointwise``).

Every option lives here once, with its docstring; components receive plain values from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from rmforge.config import ConfigModel, register_config


class DataConfig(ConfigModel):
    """Training and validation data."""

    train: str | None = None
    """Training file (canonical rmforge jsonl/parquet, or any layout a converter reads: see ``format``)."""
    validation: str | None = None
    """Validation file; when unset, ``validation_fraction`` of the training file is held out by prompt."""
    format: str = "canonical"
    """``canonical`` for rmforge files, else a converter name (``hh-rlhf``, ``preference``, ...)."""
    fields: dict[str, str] = Field(default_factory=dict)
    """Field mapping for the converter (canonical name -> column)."""
    options: dict = Field(default_factory=dict)
    """Converter options."""
    validation_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Share of the training prompts held out for validation when no validation file is given."""
    limit: int | None = Field(default=None, ge=1)
    """Use at most this many training samples (after conversion), for quick runs (see ``limit_order``)."""
    limit_order: Literal["random", "head"] = "random"
    """Which samples ``limit`` keeps: a seeded random subset in file order (files are often grouped by
    source or category), or the first ones (reads no further than needed)."""


class OptimConfig(ConfigModel):
    """Optimisation and schedule."""

    epochs: float = Field(default=1.0, gt=0)
    """Passes over the training data (ignored when ``max_steps`` > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 = derive from ``epochs``."""
    batch_size: int = Field(default=8, ge=1)
    """Samples (pairs) per optimizer step, summed over gradient accumulation and processes."""
    micro_batch_size: int | None = Field(default=None, ge=1)
    """Samples per forward pass; default = batch_size (no accumulation)."""
    lr: float = Field(default=5e-5, gt=0)
    """Peak learning rate (AdamW)."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay (not applied to biases and norms)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    """Learning-rate decay after warmup."""
    warmup_ratio: float = Field(default=0.05, ge=0, le=1)
    """Share of the steps spent warming up linearly from 0."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping by global norm (null = off)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision; auto = bf16 where the hardware has fast bf16 (AVX-512 BF16 / AMX CPUs, recent GPUs)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (saves memory, costs ~30% time)."""
    length_grouping: bool = True
    """Group samples of similar length into a batch (less padding); order stays seeded."""
    packing: Literal["auto", "prefix_shared", "padding_free", "none"] = "auto"
    """Forward layout for decoder reward models (see docs/packing.md): ``prefix_shared`` = one sequence per
    sample, ``[prompt | response_1 | ... | response_k]``, the prompt encoded once and each response seeing only
    it and itself; ``padding_free`` = several samples per row, no padding; ``none`` = one padded row per
    response. Same rewards (to float rounding) in every mode. ``auto`` = prefix_shared for decoders whose
    attention takes custom masks (sdpa, eager, flex), padding_free under flash attention, none for encoders."""
    length_buckets: bool | None = None
    """Plain (padded) forwards: cut each micro-batch's rows into groups of similar length, each padded to
    its own longest row and run as its own forward (fewer padding slots; same rewards). null = on for CPU
    (a forward's fixed cost is small there), off on GPU. Single process only (DDP allows one forward per
    backward): off under a multi-process launch."""
    row_widths: int = Field(default=4, ge=1, le=16)
    """Under FlexAttention (GPU): how many packed row widths the run may use, each one compilation of the
    attention kernel; more widths pad less (hh-rlhf, 16 pairs a step: 1 width 70% of slots padding,
    4 widths 24%, 8 widths 12%) and compile more. Ignored elsewhere."""
    token_budget: Annotated[int, Field(ge=1)] | Literal["auto"] | None = "auto"
    """With packing: tokens per forward pass (after prefix sharing); micro-batches are cut by this budget
    instead of ``micro_batch_size``. Steps, schedule and per-pair loss normalisation do not change.
    ``auto``: on a GPU, sized from the free device memory (activation checkpointing switched on only when
    one sample would not fit otherwise); on CPU, ``micro_batch_size`` forwards. null = never by tokens."""


class LossConfig(ConfigModel):
    """Objective of the Bradley-Terry trainer."""

    margin_scale: float = 0.0
    """Factor on the per-pair margin from the data inside -log sigmoid(r_c - r_r - scale * m); 0 = ignore margins."""
    center_coef: float = 0.0
    """Coefficient of mean((r_c + r_r)^2), which keeps rewards centred (TRL recommends 0.01)."""
    tie_model: Literal["auto", "none", "rao-kupper", "davidson"] = "auto"
    """How pairs labelled tie train: BT with a 0.5 target (none) or a tie-aware likelihood; auto = rao-kupper
    when the training data has ties, else none (a tie model also shifts non-tie pairs by log(theta))."""
    tie_param: float | None = None
    """Rao-Kupper theta (> 1) or Davidson nu (> 0); default gives P(tie | equal rewards) = 1/3."""


class EvalConfig(ConfigModel):
    """Periodic validation, best checkpoint and early stopping."""

    every_steps: int = 0
    """Evaluate every N optimizer steps (0 = only at the end of each epoch)."""
    batch_size: int = Field(default=32, ge=1)
    """Pairs per forward pass during evaluation."""
    metric: Literal["auto", "accuracy", "loss"] = "auto"
    """Metric that picks the best checkpoint (auto: accuracy for bt, loss for pointwise)."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement (null = never)."""


class CheckpointConfig(ConfigModel):
    """Intermediate checkpoints (for resume) and the final model."""

    every_steps: int = 0
    """Save a resumable checkpoint every N steps (0 = only at the end)."""
    keep_last: int = Field(default=2, ge=1)
    """Number of intermediate checkpoints kept."""
    save_best: bool = True
    """Keep the best checkpoint (by eval.metric) and make it the final model."""


TRACKERS = ("aim", "clearml", "comet_ml", "dvclive", "mlflow", "swanlab", "tensorboard", "trackio", "wandb")
"""Accelerate's experiment trackers (the names of ``accelerate.tracking.LOGGER_TYPE_TO_CLASS``)."""


class LoggingConfig(ConfigModel):
    """Metrics, experiment trackers and progress."""

    every_steps: int = Field(default=10, ge=1)
    """Log training metrics every N optimizer steps."""
    report_to: list[str] = Field(default_factory=list)
    """Experiment trackers, through Accelerate: any of aim, clearml, comet_ml, dvclive, mlflow, swanlab,
    tensorboard, trackio, wandb (each needs its package); [] or ``none`` = none. RUN_DIR/metrics.jsonl is
    always written (``jsonl`` is accepted and changes nothing)."""
    project: str = "rmforge"
    """Project name given to the trackers (Accelerate's ``init_trackers(project_name)``: the W&B / MLflow /
    Comet project, the TensorBoard sub-folder of RUN_DIR/trackers)."""
    tracker_options: dict[str, dict] = Field(default_factory=dict)
    """Keyword arguments per tracker (Accelerate's ``init_kwargs``), e.g. ``{wandb: {entity: my-team}}``."""
    progress: bool = True
    """Show a progress bar with ETA."""

    @field_validator("report_to", mode="before")
    @classmethod
    def _known_trackers(cls, value):
        if value is None:
            return []
        names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("a list of tracker names, e.g. [tensorboard]")
        names = [n for n in names if n not in ("", "none", "jsonl")]
        unknown = [n for n in names if n not in TRACKERS]
        if unknown:
            raise ValueError(f"unknown tracker '{unknown[0]}'; choose from {', '.join(TRACKERS)} (or none)")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _options_for_chosen_trackers(self):
        extra = sorted(set(self.tracker_options) - set(self.report_to))
        if extra:
            raise ValueError(f"tracker_options has {extra[0]}, which is not in report_to {self.report_to}")
        return self


class ModelOptions(ConfigModel):
    """How the reward model is built."""

    head_init_std: float | None = None
    """Std of the new score head; null = 1/sqrt(hidden_size + 1)."""
    dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout probability everywhere in the model (0 = disabled, recommended for RMs)."""
    chat_template: str | None = None
    """Jinja template file or string; null = the tokenizer's own; ``none`` = plain format."""
    append_eos: bool = True
    """Append EOS to every response (decoders); the reward is read at that last token."""


class LoraOptions(ConfigModel):
    """LoRA / QLoRA fine-tuning through peft (the reward head is always trained in full)."""

    enabled: bool = False
    """Train LoRA adapters instead of all weights."""
    r: int = Field(default=16, ge=1)
    """Rank of the LoRA update matrices."""
    alpha: int = Field(default=32, ge=1)
    """LoRA scaling numerator: updates are scaled by alpha / r."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the LoRA branch input."""
    target_modules: list[str] | Literal["auto"] = "auto"
    """Module names (suffixes) that get LoRA; ``auto`` = every linear layer except the reward head."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases train: none, all, or only those of LoRA-wrapped layers."""
    quantize: Literal["none", "4bit", "8bit"] = "none"
    """QLoRA: load the frozen base in 4-bit NF4 or 8-bit (needs bitsandbytes and a CUDA GPU)."""


class LauncherConfig(ConfigModel):
    """Multi-process training (DDP through torchrun + Accelerate; gloo on CPU, NCCL on GPU)."""

    nproc: int = Field(default=1, ge=1)
    """Processes on this machine; > 1 re-launches the command under torchrun."""
    nnodes: int = Field(default=1, ge=1)
    """Machines taking part (multi-node: run the same command on each with node_rank/master_addr)."""
    node_rank: int = Field(default=0, ge=0)
    """Rank of this machine among nnodes."""
    master_addr: str = "127.0.0.1"
    """Address of node 0."""
    master_port: int = 0
    """Rendezvous port; 0 = pick a free one (single node only)."""


class TrainBase(ConfigModel):
    """Options shared by every scalar reward-model trainer."""

    model: str = "minilm-l6"
    """Model: embedded name (``minilm-l6``, ``smollm2-135m``), a local HF folder, a .gguf file or a hub id."""
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    """Head initialisation, dropout, templates."""
    data: DataConfig = Field(default_factory=DataConfig)
    """Training/validation data."""
    output_dir: str = "runs/rm"
    """Run directory: final model, manifest.json, config.yaml, metrics.jsonl, checkpoints/."""
    overwrite: bool = False
    """Replace an existing, finished run directory."""
    resume: str | None = None
    """``auto`` = continue from the newest checkpoint in output_dir; or a checkpoint folder."""
    seed: int = 42
    """Seed for initialisation, data order and dropout."""
    max_length: int = Field(default=384, ge=8)
    """Maximum tokens of prompt + response."""
    length_policy: Literal["truncate_prompt", "truncate_response", "drop"] = "truncate_prompt"
    """Over-long samples: cut the prompt from the left (responses stay whole), also cut responses from the right
    (``truncate_response``), or drop them; counts are logged."""
    train: OptimConfig = Field(default_factory=OptimConfig)
    """Optimisation."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Validation."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Checkpoints."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Logging."""
    lora: LoraOptions = Field(default_factory=LoraOptions)
    """LoRA/QLoRA adapters (the score head is trained fully and saved with them)."""
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)
    """Multi-process launch (see docs/distributed.md for DeepSpeed/FSDP with accelerate launch)."""

    @model_validator(mode="after")
    def _micro_divides(self):
        micro = self.train.micro_batch_size
        if micro is not None and self.train.batch_size % micro:
            raise ValueError(f"train.batch_size ({self.train.batch_size}) must be a multiple of "
                             f"train.micro_batch_size ({micro})")
        return self


@register_config("train-bt")
class BTConfig(TrainBase):
    """Bradley-Terry reward model (``rmforge train bt``)."""

    kind: Literal["train-bt"] = "train-bt"
    loss: LossConfig = Field(default_factory=LossConfig)
    """Objective."""


class RegressionLossConfig(ConfigModel):
    """Objective of the pointwise (score regression) trainer."""

    kind: Literal["mse", "huber"] = "mse"
    """Squared error, or Huber (robust to label noise)."""
    huber_delta: float = Field(default=1.0, gt=0)
    """Huber transition point, in score units."""


@register_config("train-pointwise")
class PointwiseConfig(TrainBase):
    """Scalar / multi-attribute score regression (``rmforge train pointwise``)."""

    kind: Literal["train-pointwise"] = "train-pointwise"
    attributes: list[str] | None = None
    """Attributes to predict, one head output each (null = every attribute found in the training data)."""
    attribute_weights: dict[str, float] = Field(default_factory=dict)
    """Weights combining the attributes into one reward (missing = 0; all empty = equal weights)."""
    loss: RegressionLossConfig = Field(default_factory=RegressionLossConfig)
    """Objective."""

    def combine_weights(self, attributes: list[str]) -> list[float]:
        """Weight per attribute, in head order."""
        if not self.attribute_weights:
            return [1.0 / len(attributes)] * len(attributes)
        unknown = set(self.attribute_weights) - set(attributes)
        if unknown:
            raise ValueError(f"attribute_weights names unknown attributes {sorted(unknown)} (have {attributes})")
        return [float(self.attribute_weights.get(a, 0.0)) for a in attributes]
