"""The measuring and printing parts of ``bench/bt_vs_trl.py`` that need no training run: per-step clocks,
rates with the first optimizer step excluded, model FLOP utilisation and the side-by-side table.

MFU = 6 x parameters x tokens computed per second / peak FLOP/s. "Parameters" are those that multiply
activations: every trainable or frozen tensor except embedding tables (a lookup costs no FLOPs; at the
SmolLM2-135M shape the table is a fifth of the weights). "Tokens computed" are the non-padding tokens a side
actually runs through the model: with prefix sharing rmforge computes a shared prompt once, so it computes
fewer tokens than TRL for the same pairs. Attention FLOPs are not counted (the usual 6N convention), so MFU
is a lower bound on the hardware's work.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

PEAK_FLOPS = {"H200": 790e12}
"""Dense bf16 peak FLOP/s by a substring of ``torch.cuda.get_device_name()``; issue 17 takes 790e12 for the H200."""


def peak_flops(device_name: str | None, tflops: float | None = None) -> float | None:
    """Peak FLOP/s: ``tflops`` (``--peak-tflops``) when given, else by device name; None when unknown (CPU too)."""
    if tflops is not None:
        if tflops <= 0:
            raise ValueError(f"--peak-tflops must be positive, not {tflops}")
        return tflops * 1e12
    if not device_name:
        return None
    for key, flops in PEAK_FLOPS.items():
        if key.lower() in device_name.lower():
            return flops
    return None


def mfu(params: int, tokens_per_s: float | None, peak: float | None) -> float | None:
    """Model FLOP utilisation ``6 * params * tokens_per_s / peak``; None when a figure is missing."""
    if not peak or tokens_per_s is None:
        return None
    return 6.0 * params * tokens_per_s / peak


def flop_params(model) -> int:
    """Parameters that multiply activations: all distinct parameters but embedding tables."""
    import torch

    seen = {id(p): p.numel() for p in model.parameters()}
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            seen.pop(id(module.weight), None)
    return sum(seen.values())


class StepClock:
    """Timestamps the end of every optimizer step (after the device has finished its work) and what the step
    processed; :meth:`as_dict` is what a benchmark child reports."""

    def __init__(self, sync=None):
        self.sync = sync or (lambda: None)
        self.start: float | None = None
        self.ends: list[float] = []
        self.pairs: list[int] = []
        self.tokens: list[int] = []
        self._seen = (0, 0)

    def begin(self) -> None:
        self.start = time.perf_counter()

    def step_end(self, pairs_so_far: int, tokens_so_far: int) -> None:
        """Mark an optimizer step's end; the totals so far give the step's own pairs and tokens."""
        self.sync()
        if self.start is None:
            self.begin()
        self.ends.append(time.perf_counter() - self.start)
        self.pairs.append(pairs_so_far - self._seen[0])
        self.tokens.append(tokens_so_far - self._seen[1])
        self._seen = (pairs_so_far, tokens_so_far)

    def as_dict(self) -> dict:
        return {"step_ends": self.ends, "step_pairs": self.pairs, "step_tokens": self.tokens}


def after_first_step(ends: Sequence[float], counts: Sequence[float]) -> float | None:
    """Rate of ``counts`` per second over steps 2..n (from the end of step 1 to the end of step n), so the
    first step's compilation and warm-up are left out; None with fewer than two steps."""
    if len(ends) < 2 or len(ends) != len(counts) or ends[-1] <= ends[0]:
        return None
    return sum(counts[1:]) / (ends[-1] - ends[0])


def warmup_seconds(ends: Sequence[float], tokens: Sequence[float]) -> float | None:
    """Seconds the loop spent above its steady pace: the sum over steps of how much longer each took than
    its tokens at the median seconds per token. Compilation (every new row shape, forward and backward),
    autotuning and allocator warm-up land in the steps where they happen, not only the first; this is the
    figure behind the issue's "compilation <= 10% of the loop". None with fewer than two steps."""
    if len(ends) < 2 or len(ends) != len(tokens) or not all(t > 0 for t in tokens):
        return None
    took = [ends[0]] + [b - a for a, b in zip(ends, ends[1:])]
    pace = statistics.median(d / t for d, t in zip(took, tokens))
    return sum(max(0.0, d - t * pace) for d, t in zip(took, tokens))


def side_figures(res: dict, peak: float | None) -> dict:
    """Derived figures of one side's result: whole-loop and first-step-excluded rates, first step seconds, MFU."""
    ends, loop, params = res.get("step_ends") or [], res["loop_s"], res.get("flop_params") or 0
    tokens_s = res["tokens"] / loop if loop else None
    steady_tokens_s = after_first_step(ends, res.get("step_tokens") or [])
    return {
        "pairs_s": res["pairs_trained"] / loop if loop else None, "tokens_s": tokens_s,
        "pairs_s_steady": after_first_step(ends, res.get("step_pairs") or []), "tokens_s_steady": steady_tokens_s,
        "first_step_s": ends[0] if ends else None,
        "warmup_s": (warm := warmup_seconds(ends, res.get("step_tokens") or [])),
        "warmup_share": warm / loop if warm is not None and loop else None,
        "mfu": mfu(params, tokens_s, peak), "mfu_steady": mfu(params, steady_tokens_s, peak),
    }


def gpu_peak(res: dict) -> float | str:
    """The ``GPU peak MB`` cell: the child's ``torch.cuda.max_memory_allocated`` in MB, or ``n/a (cpu)``."""
    value = res.get("gpu_peak_mb")
    return "n/a (cpu)" if value is None else value


def _fmt(v, digits) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if digits == "%":
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.{digits or 0}f}"
    return str(v)


def render_table(rows: Sequence[tuple], heads: Sequence[str] = ("rmforge", "TRL", "rmforge/TRL")) -> list[str]:
    """Lines of the side-by-side table. ``rows``: ``(name, a, b, digits)``, digits an int, None (integers) or
    ``"%"`` (a fraction shown as a percentage); the ratio ``a / b`` is shown where both are numbers."""
    width = max([len(r[0]) for r in rows] + [0]) + 2
    cell = max([12] + [len(_fmt(v, r[3])) + 2 for r in rows for v in r[1:3]])
    lines = [f"{'':{width}}{heads[0]:>{cell}}{heads[1]:>{cell}}{heads[2]:>14}"]
    for name, a, b, digits in rows:
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        ratio = a / b if numbers and b else None
        lines.append(f"{name:{width}}{_fmt(a, digits):>{cell}}{_fmt(b, digits):>{cell}}{_fmt(ratio, 3):>14}")
    return lines


def speed_rows(rm: dict, tr: dict, peak: float | None) -> list[tuple]:
    """The throughput, memory and MFU rows of the table (rmforge, TRL)."""
    f, g = side_figures(rm, peak), side_figures(tr, peak)

    def util(key: str) -> tuple:  # "n/a" without a known peak (CPU, unknown GPU), "-" when unmeasured
        return ("n/a", "n/a") if peak is None else (f[key], g[key])

    return [
        ("pairs/s (train loop)", f["pairs_s"], g["pairs_s"], 2),
        ("pairs/s (first step excluded)", f["pairs_s_steady"], g["pairs_s_steady"], 2),
        ("tokens/s (train loop)", f["tokens_s"], g["tokens_s"], 0),
        ("tokens/s (first step excluded)", f["tokens_s_steady"], g["tokens_s_steady"], 0),
        ("tokens computed", rm["tokens"], tr["tokens"], None),
        ("pair tokens (unshared)", rm.get("pair_tokens", rm["tokens"]), tr.get("pair_tokens", tr["tokens"]), None),
        ("first step s", f["first_step_s"], g["first_step_s"], 2),
        ("warm-up s (above median pace)", f["warmup_s"], g["warmup_s"], 2),
        ("warm-up share of loop", f["warmup_share"], g["warmup_share"], "%"),
        ("train loop s", rm["loop_s"], tr["loop_s"], 1),
        ("end-to-end s", rm["end_to_end_s"], tr["end_to_end_s"], 1),
        ("GPU peak MB", gpu_peak(rm), gpu_peak(tr), 0),
        ("peak RSS MB (process)", rm["peak_rss_mb"], tr["peak_rss_mb"], 0),
        ("MFU", *util("mfu_steady"), "%"),
        ("MFU (train loop)", *util("mfu"), "%"),
    ]
