"""Benchmark: training throughput of each packing mode (none, padding_free, prefix_shared) and TRL.

Every side trains the same model from the same weights on the same pairs, batch size, max_length,
steps and learning rate, each in a fresh subprocess (its peak RSS is its own); the sides alternate
(``--repeat``), so load from other work on the machine hits them alike, and the fastest loop of each
side is kept. rmforge runs ``train_bt`` with ``train.packing=MODE`` (fused AdamW, linear schedule,
length grouping, plain BT); TRL runs ``RewardTrainer`` exactly as in ``bench/bt_vs_trl.py`` (its
own chat-template tokenisation, no packing).

Printed per side: pairs/s of the training loop, real tokens through the model (the shared prompt
counts once with prefix sharing), token slots processed (padding included), padding ratio, a dense
FLOP estimate ``6 * parameters * slots / s`` and its share of a matmul probe run in the same
invocation, peak RSS, final train loss; then the ratios to ``none`` and to TRL.

Data: the first ``--pairs`` hh-rlhf harmless pairs from ``../shared/data`` when present (multi-turn
shared context, short replies), else the built-in demo set. Model: SmolLM2-135M when cached, else a
random Llama (hidden 256, 4 layers). Not a test; timings on a shared CPU move, the ratios less::

    python bench/packing_bench.py                       # SmolLM2 (cached) on hh-rlhf, 6 steps x 8 pairs
    python bench/packing_bench.py --model tiny --steps 20 --repeat 2
    python bench/packing_bench.py --sides none,prefix_shared --threads 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "hh-rlhf-harmless-base.dev.jsonl.gz"
MODES = ("none", "padding_free", "prefix_shared")


def _peer():
    """bench/bt_vs_trl.py as a module (data preparation and the TRL side are shared with it)."""
    spec = importlib.util.spec_from_file_location("bt_vs_trl", HERE / "bt_vs_trl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_mode(spec: dict, mode: str) -> dict:
    import torch  # noqa: F401  (imported before the loop clock starts)

    from rmforge.train import trainer
    from rmforge.train.config import BTConfig
    from rmforge.train.metrics import read_metrics

    clock, count = {}, {"pairs": 0, "tokens": 0, "positions": 0}
    batch_loss, evaluate = trainer.batch_loss, trainer._evaluate

    def counted_loss(model, items, *a, **kw):  # the loop starts at the first forward ...
        clock.setdefault("start", time.perf_counter())
        loss, stats = batch_loss(model, items, *a, **kw)
        count["pairs"] += len(items)
        count["tokens"] += stats["tokens"]
        count["positions"] += stats["positions"]
        return loss, stats

    def timed_evaluate(*a, final: bool = False, **kw):  # ... and ends at the final evaluation
        if final:
            clock.setdefault("end", time.perf_counter())
        return evaluate(*a, final=final, **kw)

    trainer.batch_loss, trainer._evaluate = counted_loss, timed_evaluate
    out = Path(spec["work"]) / f"run-{mode}"
    cfg = BTConfig.model_validate({
        "model": spec["model"], "output_dir": str(out), "overwrite": True, "seed": spec["seed"],
        "max_length": spec["max_length"], "data": {"train": spec["train"]},
        "train": {"max_steps": spec["steps"], "batch_size": spec["batch_size"], "lr": spec["lr"],
                  "warmup_ratio": spec["warmup_ratio"], "precision": spec["precision"], "packing": mode},
        "loss": {"tie_model": "none"}, "checkpoint": {"save_best": False},
        "logging": {"every_steps": spec["log_every"], "progress": False},
    })
    trainer.train_bt(cfg)
    rows = read_metrics(out)
    start = next(r for r in rows if r.get("event") == "start")
    logged = [r for r in rows if "loss" in r and "event" not in r]
    return {"side": mode, "packing": start["packing"], "pairs_trained": count["pairs"], "tokens": count["tokens"],
            "positions": count["positions"], "loop_s": clock["end"] - clock["start"], "params": _params(out),
            "final_loss": logged[-1]["loss"], "precision": start["precision"]}


def _params(run_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(run_dir / "model.safetensors"), "pt") as fh:
        return sum(_numel(fh.get_slice(k).get_shape()) for k in fh.keys())


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def run_trl_side(spec: dict) -> dict:
    res = _peer().run_trl({**spec, "validation": None})
    res.update(side="trl", positions=None)
    return res


def child(side: str, spec_path: str, out_path: str) -> None:
    import resource

    import torch

    spec = json.loads(Path(spec_path).read_text())
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    result = run_trl_side(spec) if side == "trl" else run_mode(spec, side)
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_path).write_text(json.dumps(result))


def matmul_ceiling(threads: int | None, seconds: float = 2.0) -> float:
    """fp32 GFLOP/s of a dense 1024^3 matmul loop with the children's thread count."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t0) / 1e9


def _model(choice: str, work: Path) -> str:
    if choice != "auto" and choice != "tiny":
        return choice
    cache = Path.home() / ".cache" / "rmforge" / "models" / "smollm2-135m"
    if choice == "auto" and cache.is_dir():
        return "smollm2-135m"
    from rmforge.train.tiny import tiny_model

    return str(tiny_model("llama", work / "tiny-llama", hidden_size=256, num_layers=4, num_heads=8))


def report(res: dict, spec: dict, info: dict, ceiling: float) -> None:
    sides = [s for s in (*MODES, "trl") if s in res]
    print(f"\nmodel {spec['model']}  precision {spec['precision']}  batch {spec['batch_size']} pairs  max_length "
          f"{spec['max_length']}  steps {spec['steps']}  threads {res[sides[0]]['threads']} on {os.cpu_count()} cpus")
    print(f"data: {info['train']}")
    print(f"matmul ceiling (fp32, same threads): {ceiling:.1f} GFLOP/s; load average now "
          f"{os.getloadavg()[0]:.1f}; loop seconds per repetition: "
          + ", ".join(f"{k} {[round(x, 1) for x in v]}" for k, v in res["loops"].items()))
    head = f"{'side':<15}{'pairs/s':>9}{'tokens':>9}{'slots':>9}{'pad':>7}{'GFLOP/s':>9}{'%ceil':>7}" \
           f"{'RSS MB':>8}{'loss':>8}{'x none':>8}{'x TRL':>8}"
    print(head)
    base = res.get("none")
    trl = res.get("trl")
    for s in sides:
        r = res[s]
        pps = r["pairs_trained"] / r["loop_s"]
        slots = r["positions"] if r.get("positions") is not None else r["tokens"]
        pad = 1 - r["tokens"] / slots if r.get("positions") else None
        params = r.get("params") or (base or {}).get("params")
        gflops = 6 * params * slots / r["loop_s"] / 1e9 if params else None
        vs = [pps / (x["pairs_trained"] / x["loop_s"]) if x else None for x in (base, trl)]
        cells = [f"{pps:9.2f}", f"{r['tokens']:9d}", f"{slots:9d}", f"{pad:7.3f}" if pad is not None else f"{'-':>7}",
                 f"{gflops:9.1f}" if gflops else f"{'-':>9}",
                 f"{100 * gflops / ceiling:7.0f}" if gflops else f"{'-':>7}", f"{r['peak_rss_mb']:8.0f}",
                 f"{r['final_loss']:8.4f}"] + [f"{v:8.2f}" if v else f"{'-':>8}" for v in vs]
        print(f"{s:<15}" + "".join(cells))
    print("tokens = real tokens through the model; slots = positions incl. padding (TRL: non-pad tokens only); "
          "GFLOP/s = 6 * params * slots / s (dense part, attention excluded)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="auto", help="auto (SmolLM2 if cached, else tiny), tiny, or a model name/folder")
    p.add_argument("--train", default=None, help="hh-rlhf or canonical file (default: ../shared hh-rlhf, else demo)")
    p.add_argument("--pairs", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--sides", default="none,padding_free,prefix_shared,trl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        child(args.side, args.spec, args.result)
        return
    work = Path(tempfile.mkdtemp(prefix="packing-bench-"))
    train = args.train or (str(SHARED) if SHARED.exists() else None)
    peer = _peer()
    info = peer.prepare_data(argparse.Namespace(train=train, validation="none", pairs=args.pairs, val_pairs=0,
                                                seed=args.seed), work)
    spec = {"model": _model(args.model, work), "train": str(work / "train.jsonl"), "work": str(work),
            "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length, "lr": args.lr,
            "warmup_ratio": 0.0, "precision": args.precision, "seed": args.seed, "log_every": args.steps,
            "threads": args.threads}
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    ceiling = matmul_ceiling(args.threads)
    res: dict = {"loops": {}}
    for rep in range(args.repeat):
        for side in args.sides.split(","):
            out = work / f"{side}.json"
            print(f"running {side} ({rep + 1}/{args.repeat}) ...", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--side", side, "--spec", str(work / "spec.json"),
                                   "--result", str(out)], env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-6000:])
                raise SystemExit(f"{side} failed (exit {proc.returncode})")
            got = json.loads(out.read_text())
            res["loops"].setdefault(side, []).append(got["loop_s"])
            if side not in res or got["loop_s"] < res[side]["loop_s"]:
                res[side] = got
    report(res, spec, info, ceiling)


if __name__ == "__main__":
    main()
