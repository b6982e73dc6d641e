"""The one seam between the training loop and the device/distributed backend (Accelerate).

Single process on CPU or one GPU by default; under ``torchrun`` / ``accelerate launch`` the
same code runs DDP (gloo on CPU), FSDP2 or DeepSpeed (``configs/accelerate/``). The loop never
touches ``torch.distributed`` directly. Under FSDP/DeepSpeed every process holds a shard of the
model and optimizer: the whole-model weights and the training state are read and written through
the collectives here (:meth:`Engine.full_state_dict`, :meth:`Engine.save_training_state`), which
every process must call.
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
        _fsdp_on_cpu(self.acc)
        self.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.is_main = self.acc.is_main_process
        self.sharding = {"FSDP": "fsdp", "DEEPSPEED": "deepspeed"}.get(self.acc.distributed_type.name, "none")
        """``fsdp`` / ``deepspeed`` (weights and optimizer state sharded across processes) or ``none``."""

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

    def on_main(self, fn, share: bool = True):
        """Run ``fn`` on the main process only and return its value everywhere (``share``) or on the main
        process only. When it fails, every process raises (no process is left waiting in a collective):
        the main process its own exception, the others the same RmforgeError or one naming the failure."""
        from rmforge.errors import RmforgeError

        if self.world == 1:
            return fn()
        from accelerate.utils import broadcast_object_list

        value, failure = None, None
        if self.is_main:
            try:
                value = fn()
            except Exception as exc:
                failure = exc
        sent = failure if failure is None or isinstance(failure, RmforgeError) else \
            RmforgeError(f"the main process failed: {type(failure).__name__}: {failure}")
        sent = broadcast_object_list([sent, value if share else None])
        if failure is not None:
            raise failure
        if sent[0] is not None:
            raise sent[0]
        return sent[1] if share or not self.is_main else value

    def full_state_dict(self, model) -> dict:
        """The whole model's weights (``Accelerator.get_state_dict``): gathered from the shards under
        FSDP/DeepSpeed ZeRO-3, a collective every process must call; complete on the main process,
        possibly empty elsewhere."""
        return self.acc.get_state_dict(model)

    def load_full_state_dict(self, model, state_dict: dict) -> None:
        """Load whole-model weights read on the main process into ``model`` (every process calls it):
        FSDP2 scatters them to the shards, DeepSpeed loads them into the gathered ZeRO-3 parameters;
        without sharding only the main process's copy is set (the only one saved)."""
        if self.sharding == "fsdp":
            self._scatter_full_state_dict(model, state_dict)
        elif self.sharding == "deepspeed":
            import deepspeed

            net = self.unwrap(model)
            with deepspeed.zero.GatheredParameters(list(net.parameters()), modifier_rank=0):
                if self.is_main:
                    net.load_state_dict(state_dict, strict=False)
        elif self.is_main:
            self.unwrap(model).load_state_dict(state_dict, strict=False)

    def _scatter_full_state_dict(self, model, state_dict: dict) -> None:
        """FSDP2: broadcast each tensor from the main process and keep this process's shard, copied into the
        existing parameters (torch's ``set_model_state_dict(broadcast_from_rank0=True)`` leaves the root
        module's parameters, e.g. the final norm and the head, as plain tensors and fails)."""
        import torch.distributed as dist
        from torch.distributed.tensor import DTensor, distribute_tensor

        current = model.state_dict()
        names = self.on_main(lambda: [k for k in current if k in state_dict])  # tied copies may be absent
        shards = {}
        for name in names:
            target = current[name]
            device = target.device_mesh.device_type if isinstance(target, DTensor) else target.device
            if self.is_main:
                full = state_dict[name].detach().to(device=device, dtype=target.dtype).contiguous()
            else:
                full = torch.empty(target.shape, device=device, dtype=target.dtype)
            dist.broadcast(full, src=0)
            shards[name] = distribute_tensor(full, target.device_mesh, target.placements) \
                if isinstance(target, DTensor) else full
        model.load_state_dict(shards, strict=False)

    def save_training_state(self, folder, model, optimizer, scheduler) -> None:
        """Write everything but the model weights that a resume needs into ``folder`` through Accelerate:
        optimizer (``optimizer.bin``; FSDP gathers it under ``FULL_STATE_DICT``, DCP shards under
        ``SHARDED_STATE_DICT``; DeepSpeed writes its ZeRO partitions with the model, ``pytorch_model/``),
        scheduler (``scheduler.bin``), fp16 GradScaler (``scaler.pt``) and each process's Python, NumPy,
        torch and CUDA RNG (``random_states_<rank>.pkl``). A collective: every process calls it."""
        from accelerate.checkpointing import save_accelerator_state

        optimizers = self._sharded_state(folder, model, optimizer, save=True)
        save_accelerator_state(str(folder), [], optimizers, [scheduler], [], self.rank, self.acc.step,
                               self.acc.scaler)

    def load_training_state(self, folder, model, optimizer, scheduler) -> None:
        """Restore what :meth:`save_training_state` wrote (after :meth:`prepare`; every process calls it).
        A process without its own RNG file (more processes than when saved) keeps its seeded RNG."""
        from accelerate.checkpointing import load_accelerator_state

        optimizers = self._sharded_state(folder, model, optimizer, save=False)
        where = "on_device" if self.world > 1 and self.device.type != "cpu" else "cpu"
        load_accelerator_state(str(folder), [], optimizers, [scheduler], [], self.rank, self.acc.scaler, where)

    def _sharded_state(self, folder, model, optimizer, save: bool) -> list:
        """FSDP's and DeepSpeed's own optimizer save/load; returns the optimizers left to Accelerate's plain one."""
        if self.sharding == "fsdp":
            from accelerate.utils import load_fsdp_optimizer, save_fsdp_optimizer

            (save_fsdp_optimizer if save else load_fsdp_optimizer)(self.acc.state.fsdp_plugin, self.acc, optimizer,
                                                                   model, str(folder))
            return []
        if self.sharding == "deepspeed":  # ZeRO keeps model and optimizer partitions together
            (self.acc.save_state if save else self.acc.load_state)(str(folder))
            return []
        return [optimizer]


def _fsdp_on_cpu(acc) -> None:
    """Test hook: Accelerate enables FSDP only on accelerator devices (its state turns ``ACCELERATE_USE_FSDP``
    into FSDP for MULTI_GPU and the like, never MULTI_CPU), although torch's FSDP2 runs on CPU over gloo.
    ``RMFORGE_FSDP_ON_CPU=1`` under ``accelerate launch`` with an FSDP config and no GPU turns it on, so the
    sharded save/resume path is tested in CI. Without the hook such a launch trains DDP (a warning says so)."""
    import os
    import warnings

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or acc.distributed_type.name != "MULTI_CPU":
        return
    if os.environ.get("RMFORGE_FSDP_ON_CPU") != "1":
        warnings.warn("the Accelerate config asks for FSDP, which Accelerate runs only on GPUs: training DDP (gloo) "
                      "on the CPU instead", stacklevel=3)
        return
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    acc.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* settings accelerate launch exports
    acc.state.distributed_type = PartialState().distributed_type = DistributedType.FSDP


def lr_scheduler(name: str, optimizer, warmup_steps: int, total_steps: int):
    """transformers' learning-rate schedule ``name``; its ``constant`` ignores warmup, so a warmup with
    ``constant`` runs ``constant_with_warmup`` (the SFT, BT and GRPO trainers all schedule this way)."""
    from transformers import get_scheduler

    return get_scheduler(scheduler_type(name, warmup_steps), optimizer, num_warmup_steps=warmup_steps,
                         num_training_steps=total_steps)


def scheduler_type(name: str, warmup: float) -> str:
    """transformers' scheduler type for ``name`` with a warmup (steps or ratio) of ``warmup``."""
    return "constant_with_warmup" if name == "constant" and warmup > 0 else name
