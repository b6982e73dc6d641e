"""fp32 vs bf16 autocast train-step time on this CPU, for the policy behind ``train.precision=auto``.

    python bench/precision_bench.py [--models minilm-l6 smollm2-135m] [--lengths 64 256 512] [--steps 4]

For each model and sequence length: ms per train step (forward + backward + AdamW, 16 rows =
8 pairs, random tokens, reward-model head) in fp32 and under bf16 autocast, measured in the
same process one after the other (after one warm-up step each), and the ratio fp32 / bf16
(> 1 means bf16 is faster). Not a test: record the output in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch


def _model(name: str):
    from rmforge.reward_model.modeling import load_reward_model

    return load_reward_model(name).model


def step_ms(model, length: int, rows: int, steps: int, bf16: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    ids = torch.randint(100, 1000, (rows, length))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    times, loss = [], 0.0
    for i in range(steps + 1):
        t = time.perf_counter()
        with ctx():
            r = model(input_ids=ids).logits[:, 0].float()
        loss = -torch.nn.functional.logsigmoid(r[: rows // 2] - r[rows // 2:]).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t)
    return 1000 * sorted(times)[len(times) // 2], float(loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    ap.add_argument("--lengths", nargs="+", type=int, default=[64, 256, 512])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rows {args.rows}")
    print(f"{'model':14s} {'len':>5s} {'fp32 ms':>9s} {'bf16 ms':>9s} {'fp32/bf16':>9s}")
    for name in args.models:
        try:
            model = _model(name).train()
        except Exception as exc:  # noqa: BLE001 - an optional model may be missing
            print(f"{name}: skipped ({exc})")
            continue
        for length in args.lengths:
            f32, _ = step_ms(model, length, args.rows, args.steps, bf16=False)
            b16, _ = step_ms(model, length, args.rows, args.steps, bf16=True)
            print(f"{name:14s} {length:5d} {f32:9.0f} {b16:9.0f} {f32 / b16:9.2f}", flush=True)


if __name__ == "__main__":
    main()
