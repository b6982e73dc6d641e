"""The one seam between the training loop and the device/distributed backend (Accelerate).

Single process on CPU or one GPU by default; under ``torchrun`` / ``accelerate launch`` the
same code runs DDP (gloo on CPU). The loop never touches ``torch.distributed`` directly.
"""

from __future__ import annotations

import contextlib

import torch


def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX on this CPU (where bf16 matmul beats fp32)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """``auto`` -> bf16 where the hardware has fast bf16, else fp32 (``no`` in Accelerate terms)."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


class Engine:
    """Device placement, mixed precision, DDP wrapping, gradient sync and collective reductions."""

    def __init__(self, precision: str = "auto"):
        import os

        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # a new run in the same process may change precision
            AcceleratorState._reset_state(reset_partial_state=True)
        self.precision = resolve_precision(precision)
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.precision]
        self.acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mp)
        self.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.is_main = self.acc.is_main_process

    def prepare(self, model, optimizer):
        """Wrap model (DDP) and optimizer. The LR scheduler stays ours: Accelerate's wrapper would step it
        once per process per optimizer step, because it assumes a sharded dataloader."""
        return self.acc.prepare(model, optimizer)

    def autocast(self):
        return self.acc.autocast() if self.precision != "fp32" else contextlib.nullcontext()

    def no_sync(self, model, last_micro: bool):
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        return contextlib.nullcontext() if last_micro or self.world == 1 else self.acc.no_sync(model)

    def backward(self, loss) -> None:
        self.acc.backward(loss)

    def clip(self, model, max_norm: float | None) -> float:
        params = [p for p in model.parameters() if p.grad is not None]
        if max_norm is None:
            return float(torch.norm(torch.stack([p.grad.detach().norm() for p in params]))) if params else 0.0
        return float(self.acc.clip_grad_norm_(params, max_norm))

    def unwrap(self, model):
        return self.acc.unwrap_model(model)

    def sum(self, values: list[float]) -> list[float]:
        """Sum floats across processes (identity in a single process)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.acc.reduce(t, reduction="sum").tolist()

    def gather_float(self, value: float) -> list[float]:
        """One float from every process, in rank order."""
        if self.world == 1:
            return [value]
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        return self.acc.gather(t).tolist()

    def barrier(self) -> None:
        self.acc.wait_for_everyone()
