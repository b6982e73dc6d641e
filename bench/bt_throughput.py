"""Benchmark: Bradley-Terry training throughput of rmforge (each packing mode) against TRL's RewardTrainer.

One process, sides interleaved (``none, padding_free, prefix_shared, trl`` then again for
``--repeat``), so load from other work on the machine hits every side alike. Every side trains the
same model (a random-init Llama from a config, reloaded from the same saved weights), on the same
pairs, for the same number of optimizer steps (one epoch), batch size, learning rate and schedule:

* rmforge: ``train_bt`` with ``train.packing=MODE`` (its seeded, length-grouped sampler; plain BT);
* TRL: ``RewardTrainer`` driven exactly as in ``bench/bt_vs_trl.py`` (its chat-template tokenisation
  without EOS, random order, right padding).

Before each side a dense fp32 matmul probe (same thread count) measures the machine's ceiling at
that moment; the best probe of the run is the ceiling. Printed per side: pairs/s and real tokens/s of
the training loop (first forward to the end of the last step), token slots processed (padding
included), executed GFLOP/s and its share of the ceiling, peak memory above the side's start (Linux
``VmHWM``, reset before each side), final loss, and the ratio to TRL. The executed FLOPs are counted
from the model shape and every training forward actually run (``[rows, width]`` of each call,
padding included): ``3 * (2 * linear_params * rows * width + 4 * layers * hidden * rows * width^2)``
(forward + backward, dense attention over the full width).

Data shapes (``--shapes``):

* ``hh``: real hh-rlhf harmless pairs (``../shared/data``; the demo set when absent): multi-turn
  shared context, short replies; only pairs whose transcripts fit ``--max-length`` are used, so no
  side truncates or drops anything;
* ``short-prompt``: synthetic, prompts 10-40 tokens, responses 150-400 tokens;
* ``long-prompt``: synthetic, prompts 100-400 tokens, responses 30-200 (the issue's reference shape).

Model: ``LlamaForSequenceClassification`` from a config (hidden 256, 4 layers, 8 heads, MLP 1024,
vocab 8192, random init), the builtin tokenizer, fp32 (``--precision bf16`` for a GPU). Not a test::

    python bench/bt_throughput.py --threads 1 --pairs 128 --repeat 2
    python bench/bt_throughput.py --shapes long-prompt --pairs 512 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import inspect
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "hh-rlhf-harmless-base.dev.jsonl.gz"
MODES = ("none", "padding_free", "prefix_shared")
SIDES = (*MODES, "trl")
SHAPES = {"hh": None, "short-prompt": ((10, 40), (150, 400)), "long-prompt": ((100, 400), (30, 200))}


def peer():
    """bench/bt_vs_trl.py as a module (hh-rlhf reading and the TRL side are shared with it)."""
    spec = importlib.util.spec_from_file_location("bt_vs_trl", HERE / "bt_vs_trl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- model and data

def build_model(folder: Path, hidden: int = 256, layers: int = 4, heads: int = 8, vocab: int = 8192,
                seed: int = 0) -> dict:
    """Save a random Llama (causal LM weights; loaded later as a reward model) with the builtin tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmforge.train.tiny import builtin_tokenizer

    tok = builtin_tokenizer(pad="distinct")
    tok.model_max_length = 4096
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=4096,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    per_layer = 4 * hidden * hidden + 3 * hidden * cfg.intermediate_size  # q, k, v, o + gate, up, down
    return {"path": str(folder), "hidden": hidden, "layers": layers, "linear_params": layers * per_layer + hidden,
            "describe": f"random Llama, hidden {hidden}, {layers} layers, {heads} heads, MLP {4 * hidden}, "
                        f"vocab {vocab}"}


def _text(tok, rng: random.Random, n_tokens: int) -> str:
    from rmforge.train.tiny import WORDS

    words = WORDS.split()
    ids = tok(" ".join(rng.choice(words) for _ in range(n_tokens)), add_special_tokens=False)["input_ids"]
    return tok.decode(ids[:n_tokens])


def synthetic_pairs(tok, n: int, prompt: tuple[int, int], response: tuple[int, int], seed: int) -> list:
    """``n`` single-turn pairs with prompt/response token lengths drawn uniformly from the ranges."""
    from rmforge.data.schema import Message, Sample

    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = _text(tok, rng, rng.randint(*prompt))
        c, r = (_text(tok, rng, rng.randint(*response)) for _ in range(2))
        out.append(Sample(id=f"syn-{i}", prompt=[Message(role="user", content=p)],
                          chosen=[Message(role="assistant", content=c)],
                          rejected=[Message(role="assistant", content=r)]))
    return out


def _fits(tok, s, limit: int) -> bool:
    def n(msgs):
        return len(tok.apply_chat_template([{"role": m.role, "content": m.content} for m in msgs], tokenize=True))

    return max(n(s.prompt + s.chosen), n(s.prompt + s.rejected)) + 2 <= limit


def prepare_shape(shape: str, args, tok, work: Path) -> tuple[str, str]:
    """Write the shape's pairs to ``work/<shape>.jsonl``; returns (path, description)."""
    from rmforge.data.io import write_samples

    if SHAPES[shape] is None:
        if SHARED.exists() or args.hh:
            path = args.hh or str(SHARED)
            pool, _ = peer()._read(path, None)
            what = f"{path} (hh-rlhf converter)"
        else:
            from rmforge.data.demo import write_demo
            from rmforge.train.data import read_any

            write_demo(work / "demo", seed=args.seed)
            pool, what = read_any(str(work / "demo" / "train.jsonl")), "built-in demo set (hh-rlhf absent)"
        kept = [s for s in pool[:8 * args.pairs] if _fits(tok, s, args.max_length)][:args.pairs]
        desc = f"{what}: first {len(kept)} pairs that fit {args.max_length} tokens"
    else:
        (p, r) = SHAPES[shape]
        kept = synthetic_pairs(tok, args.pairs, p, r, args.seed)
        desc = f"synthetic, {len(kept)} pairs, prompts {p[0]}-{p[1]} tokens, responses {r[0]}-{r[1]} (seeded)"
    path = work / f"{shape}.jsonl"
    write_samples(path, kept, overwrite=True)
    return str(path), desc


# ----------------------------------------------------------------------------- measuring

class ForwardMeter:
    """Counts every training forward of the Llama trunk (``[rows, width]``), whoever calls it."""

    def __init__(self):
        self.slots = self.attn = self.calls = 0

    @contextlib.contextmanager
    def active(self):
        import torch
        from transformers.models.llama import modeling_llama

        cls = modeling_llama.LlamaModel
        original = cls.forward

        def counted(module, *a, **kw):
            ids = kw.get("input_ids", a[0] if a else None)
            if ids is not None and module.training and torch.is_grad_enabled():
                rows, width = ids.shape
                self.slots += rows * width
                self.attn += rows * width * width
                self.calls += 1
            return original(module, *a, **kw)

        cls.forward = counted
        try:
            yield self
        finally:
            cls.forward = original

    def flops(self, model: dict) -> float:
        return 3.0 * (2 * model["linear_params"] * self.slots + 4 * model["layers"] * model["hidden"] * self.attn)


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> int:
    """Free what can be freed, reset the peak RSS (``VmHWM``); returns the current RSS in kB."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def matmul_ceiling(seconds: float = 1.0, n: int = 1024) -> float:
    """fp32 GFLOP/s of a dense ``n^3`` matmul loop with the current torch thread count."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        k += 1
    return 2 * n ** 3 * k / (time.perf_counter() - t0) / 1e9


# ----------------------------------------------------------------------------- sides

def run_mode(spec: dict, mode: str) -> dict:
    """rmforge ``train_bt`` with ``train.packing=mode``; the loop runs from the first forward to the final evaluation."""
    from rmforge.train import trainer
    from rmforge.train.config import BTConfig
    from rmforge.train.metrics import read_metrics

    clock, count = {}, {"pairs": 0, "tokens": 0}
    batch_loss, evaluate = trainer.batch_loss, trainer._evaluate

    def counted_loss(model, items, *a, **kw):
        clock.setdefault("start", time.perf_counter())
        loss, stats = batch_loss(model, items, *a, **kw)
        count["pairs"] += len(items)
        count["tokens"] += stats["tokens"]
        return loss, stats

    def timed_evaluate(*a, **kw):  # the trainer passes ``final`` by position or by name
        if inspect.signature(evaluate).bind(*a, **kw).arguments.get("final"):
            clock.setdefault("end", time.perf_counter())
        return evaluate(*a, **kw)

    trainer.batch_loss, trainer._evaluate = counted_loss, timed_evaluate
    try:
        out = Path(spec["work"]) / f"run-{mode}"
        cfg = BTConfig.model_validate({
            "model": spec["model"], "output_dir": str(out), "overwrite": True, "seed": spec["seed"],
            "max_length": spec["max_length"], "length_policy": "truncate_prompt", "data": {"train": spec["train"]},
            "train": {"max_steps": spec["steps"], "batch_size": spec["batch_size"], "lr": spec["lr"],
                      "weight_decay": 0.0, "scheduler": "linear", "warmup_ratio": spec["warmup_ratio"],
                      "max_grad_norm": 1.0, "precision": spec["precision"], "packing": mode,
                      "token_budget": spec.get("token_budget")},
            "loss": {"tie_model": "none"}, "eval": {"every_steps": 0},
            "checkpoint": {"every_steps": 0, "save_best": False},
            "logging": {"every_steps": spec["log_every"], "progress": False},
        })
        trainer.train_bt(cfg)
    finally:
        trainer.batch_loss, trainer._evaluate = batch_loss, evaluate
    logged = [r for r in read_metrics(out) if "loss" in r and "event" not in r]
    return {"pairs": count["pairs"], "tokens": count["tokens"], "loop_s": clock["end"] - clock["start"],
            "final_loss": logged[-1]["loss"]}


def run_trl_side(spec: dict) -> dict:
    res = peer().run_trl({**spec, "validation": None})
    return {"pairs": res["pairs_trained"], "tokens": res["tokens"], "loop_s": res["loop_s"],
            "final_loss": res["final_loss"], "dropped": res["train_dropped"], "trl_version": res["trl_version"]}


def run_side(side: str, spec: dict, model: dict) -> dict:
    ceiling = matmul_ceiling()
    start_kb = reset_peak()
    meter = ForwardMeter()
    with meter.active():
        res = run_trl_side(spec) if side == "trl" else run_mode(spec, side)
    res.update(peak_mb=(_status_kb("VmHWM") - start_kb) / 1024, slots=meter.slots, forwards=meter.calls,
               flops=meter.flops(model), ceiling=ceiling)
    return res


# ----------------------------------------------------------------------------- report

def summarise(runs: list[dict], how: str) -> dict:
    """One row from the repetitions of a side: the ``best`` (fastest loop) or the ``median`` loop."""
    if how == "best":
        return min(runs, key=lambda r: r["loop_s"])
    ordered = sorted(runs, key=lambda r: r["loop_s"])
    mid = ordered[(len(ordered) - 1) // 2]
    return {**mid, "loop_s": statistics.median(r["loop_s"] for r in runs)}


def report(shape: str, desc: str, results: dict, how: str, ceiling: float) -> list[dict]:
    print(f"\n== {shape}: {desc}")
    print(f"ceiling (best dense fp32 matmul probe of the run): {ceiling:.1f} GFLOP/s; {how} of "
          f"{len(next(iter(results.values())))} repetitions; loop seconds: "
          + ", ".join(f"{s} {[round(r['loop_s'], 1) for r in rs]}" for s, rs in results.items()))
    head = (f"{'side':<15}{'pairs/s':>9}{'tokens/s':>10}{'slots':>9}{'pad':>7}{'GFLOP/s':>9}{'%ceil':>7}"
            f"{'peak MB':>9}{'loss':>8}{'x TRL':>7}")
    print(head)
    trl = summarise(results["trl"], how) if "trl" in results else None
    rows = []
    for side, runs in results.items():
        r = summarise(runs, how)
        pps, tps, gfs = r["pairs"] / r["loop_s"], r["tokens"] / r["loop_s"], r["flops"] / r["loop_s"] / 1e9
        pad = 1 - r["tokens"] / r["slots"] if r["slots"] else 0.0
        vs = pps / (trl["pairs"] / trl["loop_s"]) if trl else float("nan")
        rows.append({"shape": shape, "side": side, "pairs_s": pps, "tokens_s": tps, "slots": r["slots"], "pad": pad,
                     "gflops": gfs, "ceil": 100 * gfs / ceiling, "peak_mb": r["peak_mb"],
                     "loss": r["final_loss"], "x_trl": vs})
        print(f"{side:<15}{pps:9.2f}{tps:10.0f}{r['slots']:9d}{pad:7.3f}{gfs:9.1f}{100 * gfs / ceiling:7.0f}"
              f"{r['peak_mb']:9.0f}{r['final_loss']:8.4f}{vs:7.2f}")
    print("tokens = real tokens through the model (a shared prompt counts once); slots = positions incl. padding; "
          "TRL tokenises with its chat template (no EOS), so its token counts differ slightly")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="hh,short-prompt", help=f"comma list of {', '.join(SHAPES)}")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma list of {', '.join(SIDES)}")
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--token-budget", type=int, default=None, help="rmforge train.token_budget (packed modes)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is steadier on a shared machine)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--summary", choices=("best", "median"), default="best")
    p.add_argument("--hh", default=None, help="hh-rlhf file for the hh shape (default: ../shared/data)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.update(TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="bt-throughput-"))
    model = build_model(work / "model", seed=args.seed)
    tok = AutoTokenizer.from_pretrained(model["path"])
    sides = args.sides.split(",")
    print(f"model: {model['describe']}, {args.precision}; batch {args.batch_size} pairs; torch threads "
          f"{torch.get_num_threads()} on {os.cpu_count()} cpus; load average {os.getloadavg()[0]:.1f}")
    all_rows = []
    for shape in args.shapes.split(","):
        path, desc = prepare_shape(shape, args, tok, work)
        n = sum(1 for _ in open(path, encoding="utf-8"))
        spec = {"model": model["path"], "train": path, "work": str(work), "steps": math.ceil(n / args.batch_size),
                "batch_size": args.batch_size, "max_length": args.max_length, "lr": args.lr, "warmup_ratio": 0.0,
                "precision": args.precision, "seed": args.seed, "log_every": 10 ** 6,
                "token_budget": args.token_budget}
        results: dict[str, list[dict]] = {}
        for rep in range(args.repeat):
            for side in sides:
                print(f"{shape}: {side} ({rep + 1}/{args.repeat}) ...", flush=True)
                results.setdefault(side, []).append(run_side(side, spec, model))
        ceiling = max(r["ceiling"] for rs in results.values() for r in rs)
        all_rows += report(shape, desc, results, args.summary, ceiling)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
