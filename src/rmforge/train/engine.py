"""The one seam between the training loop and the device/distributed backend (Accelerate).

Single process on CPU or one GPU by default; under ``torchrun`` / ``accelerate launch`` the
same code runs DDP (gloo on CPU). The loop never touches ``torch.distributed`` directly.
"""

from __future__ import annotations

import contextlib

import torch


BF16_MIN_SPEEDUP = 1.2
"""``precision=auto`` picks bf16 on CPU only where a bf16 matmul is at least this much faster than fp32."""


def bf16_matmul_speedup(size: int = 512, reps: int = 5) -> float:
    """fp32 time / bf16 time of a ``size``-cube matmul on this CPU (best of ``reps``, interleaved)."""
    import time

    a32, b32 = torch.randn(size, size), torch.randn(size, size)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(reps + 1):  # the first round warms both kernels up
        for name, (x, y) in (("fp32", (a32, b32)), ("bf16", (a16, b16))):
            t = time.perf_counter()
            for _ in range(4):
                x @ y
            best[name] = min(best[name], time.perf_counter() - t)
    return best["fp32"] / best["bf16"]


def cpu_has_fast_bf16() -> bool:
    """Whether bf16 autocast pays on this CPU: it needs AVX-512 BF16 or AMX, and a measured bf16 matmul
    at least :data:`BF16_MIN_SPEEDUP` x fp32. The flags alone are not enough: on some hosts that
    report ``avx512_bf16`` a bf16 matmul runs at half the fp32 rate. The measurement (~0.1 s) is
    cached per CPU model, thread count and torch version in ``$RMFORGE_CACHE/cpu_bf16.json``, so
    every run on a machine makes the same choice; ``RMFORGE_CPU_BF16=0|1`` overrides it."""
    import json
    import os
    import re

    from rmforge.fileio import atomic_text
    from rmforge.models import cache_root

    forced = os.environ.get("RMFORGE_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return False
    if "avx512_bf16" not in info and "amx_bf16" not in info:
        return False
    model = re.search(r"model name\s*:\s*(.*)", info)
    key = f"{model.group(1).strip() if model else 'cpu'}|threads={torch.get_num_threads()}|torch={torch.__version__}"
    path = cache_root() / "cpu_bf16.json"
    try:
        cache = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = round(bf16_matmul_speedup(), 3)
        try:
            with atomic_text(path, overwrite=True) as fh:
                json.dump(cache, fh, indent=1)
        except OSError:
            pass  # a read-only home: measure again next time
    return cache[key] >= BF16_MIN_SPEEDUP


def resolve_precision(precision: str) -> str:
    """``auto`` -> bf16 where the hardware has fast bf16 (CPU: measured, :func:`cpu_has_fast_bf16`),
    else fp32 (``no`` in Accelerate terms)."""
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


def lr_scheduler(name: str, optimizer, warmup_steps: int, total_steps: int):
    """transformers' learning-rate schedule ``name``; its ``constant`` ignores warmup, so a warmup with
    ``constant`` runs ``constant_with_warmup`` (the SFT, BT and GRPO trainers all schedule this way)."""
    from transformers import get_scheduler

    return get_scheduler(scheduler_type(name, warmup_steps), optimizer, num_warmup_steps=warmup_steps,
                         num_training_steps=total_steps)


def scheduler_type(name: str, warmup: float) -> str:
    """transformers' scheduler type for ``name`` with a warmup (steps or ratio) of ``warmup``."""
    return "constant_with_warmup" if name == "constant" and warmup > 0 else name
