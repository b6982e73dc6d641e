"""Benchmark: rmforge's Bradley-Terry trainer against TRL's RewardTrainer, same model, data and steps.

Both sides start from the same weights (``load_reward_model`` with the same seed: same head init,
dropout off, same pad token), train on the same pairs with the same batch size, max_length, number
of optimizer steps, learning rate and schedule (fused AdamW, linear, warmup ``int(0.05 * steps)``,
clip 1.0, no weight decay, activation checkpointing off), in the same precision (``--precision``), and each
runs in a fresh subprocess so that its peak RSS is its own. Printed, side by side and as the ratio
rmforge/TRL: pairs used/dropped/truncated; pairs/s and tokens/s of the whole training loop (compilation
included) and of the loop with the first optimizer step excluded (from the end of step 1 to the end of
the last step); the tokens each side computes (non-padding tokens through the model: rmforge's prefix
sharing computes a shared prompt once) next to the pairs' own token total; the first step's seconds;
the warm-up seconds (time above the loop's median seconds per token, summed over steps: compilation of
every new row shape lands there) and their share of the loop (the issue's "compilation <= 10%");
loop and end-to-end seconds; ``GPU peak MB`` (``torch.cuda.max_memory_allocated``, from a fresh process
per side; ``n/a (cpu)`` on a CPU, where the process peak RSS row is the memory figure); ``MFU`` = 6 x
parameters (embedding tables excluded) x computed tokens/s (first step excluded) / peak FLOP/s, and the
same over the whole loop (peak: ``--peak-tflops``, else 790 TFLOP/s on an H200, else ``n/a``); final
train loss (the last logged window), and validation accuracy (strictly r_c > r_r) when there is a
validation set. The formulas are in ``bench/_bt_report.py``.

What is compared, exactly:

* rmforge: ``train_bt(BTConfig)`` with its defaults except ``loss.tie_model=none`` (plain BT: the
  default Rao-Kupper model shifts every pair by ln 2, which would make the losses incomparable),
  ``checkpoint.save_best=false`` (the final model is evaluated, as on the TRL side) and the values
  above. Length policy ``truncate_prompt`` (long prompts are cut, nothing is dropped unless a
  response alone is too long); length-grouped batches (rmforge's default).
* TRL: ``RewardTrainer`` with the same values, its own data handling: conversational rows for
  decoders (TRL applies the chat template, appends no EOS, and silently *drops* pairs longer than
  ``max_length``), random order. Encoders (MiniLM) have no chat template and no EOS, which TRL's text
  path needs, so TRL gets pre-tokenised ``chosen_ids``/``rejected_ids`` = ``tokenizer(prompt,
  response)`` (its documented processed-dataset input; its collator passes no ``token_type_ids``).
  Validation accuracy on the TRL side is computed here on TRL's own filtered eval set.
* Timing: the loop is timed from the first to the last step (rmforge: its progress bar's lifetime;
  TRL: ``trainer.train()``); every optimizer step's end is timestamped after a device synchronise
  (rmforge: the progress bar's update; TRL: a ``TrainerCallback.on_step_end``). End-to-end covers the
  whole child process (imports, loading, tokenisation, training, final evaluation, saving the model).
  Pairs and tokens are counted at the loss.

Usage::

    python bench/bt_vs_trl.py                                   # MiniLM, 400 demo pairs, fp32
    python bench/bt_vs_trl.py --train ../shared/data/hh-rlhf-harmless-base.dev.jsonl.gz \\
        --validation ../shared/data/hh-rlhf-harmless-base.eval.jsonl.gz --pairs 400
    python bench/bt_vs_trl.py --model smollm2-135m --precision bf16
    python bench/bt_vs_trl.py --threads 1 --repeat 2        # steadier on a small, shared machine
    python bench/bt_vs_trl.py --model M --train F --pairs 256 --precision bf16 --batch-size 16 --max-length 1024

On a 2-core machine that other work also uses, two torch threads per process can be several times
slower than one (threads wait on a descheduled peer): ``--threads 1`` and ``--repeat`` give stable
ratios; the load average is printed. ``--no-length-grouping`` makes rmforge batch at random like TRL
(its default length grouping is where its speed-up over TRL comes from: less padding).

``--train``/``--validation`` take canonical rmforge files (.jsonl/.parquet) or hh-rlhf transcripts
(.jsonl[.gz] with ``chosen``/``rejected`` "\\n\\nHuman: ..." strings, converted with rmforge's hh-rlhf
converter). Without ``--train`` the built-in demo set is generated (``write_demo``) and ``--pairs``
pairs are drawn from its train split (seeded), the validation pairs from its test split. Needs
``pip install trl``. Not a test.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bt_report import StepClock, flop_params, peak_flops, render_table, speed_rows  # noqa: E402

T_START = time.perf_counter()


# ----------------------------------------------------------------------------- data (parent process)

def _is_hh_rlhf(path: str) -> bool:
    if not path.endswith((".jsonl", ".jsonl.gz")):
        return False
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        first = json.loads(fh.readline() or "{}")
    return isinstance(first.get("chosen"), str) and "Human:" in first["chosen"] and "prompt" not in first


def _read(path: str, limit: int | None) -> tuple[list, str]:
    from rmforge.train.data import read_any

    if _is_hh_rlhf(path):
        return read_any(path, "hh-rlhf", limit=limit), "hh-rlhf (converted with rmforge's hh-rlhf converter)"
    return read_any(path, "canonical", limit=limit), "canonical"


def prepare_data(args, work: Path) -> dict:
    """Write train.jsonl (and val.jsonl) in canonical form for both sides; returns a description."""
    from rmforge.data.io import write_samples

    info = {}
    if args.train is None:
        from rmforge.data.demo import write_demo
        from rmforge.train.data import read_any

        write_demo(work / "demo", seed=args.seed)
        pool = read_any(str(work / "demo" / "train.jsonl"))
        if args.pairs > len(pool):
            raise SystemExit(f"--pairs {args.pairs}: the demo train split has {len(pool)} pairs")
        train = random.Random(args.seed).sample(pool, args.pairs)
        info["train"] = f"built-in demo set, {len(train)} of {len(pool)} train-split pairs (seeded sample)"
        val = []
        if args.validation == "auto":
            test = read_any(str(work / "demo" / "test.jsonl"))
            val = random.Random(args.seed).sample(test, min(args.val_pairs, len(test)))
            info["validation"] = f"demo test split (held-out templates), {len(val)} pairs"
    else:
        train, kind = _read(args.train, args.pairs)
        info["train"] = f"{args.train}: first {len(train)} pairs, {kind}"
        val = []
    if args.validation not in ("auto", "none"):
        val, kind = _read(args.validation, args.val_pairs)
        info["validation"] = f"{args.validation}: first {len(val)} pairs, {kind}"
    write_samples(work / "train.jsonl", train, overwrite=True)
    if val:
        write_samples(work / "val.jsonl", val, overwrite=True)
    info["n_train"], info["n_val"] = len(train), len(val)
    return info


# ----------------------------------------------------------------------------- children

def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_rmforge(spec: dict) -> dict:
    import torch  # noqa: F401  (imported before the clock of the loop starts, like on the TRL side)

    from rmforge.train import trainer
    from rmforge.train.config import BTConfig
    from rmforge.train.metrics import read_metrics

    clock, count = {}, {"pairs": 0, "tokens": 0, "pair_tokens": 0, "flop_params": 0}
    steps = StepClock(_device_sync())
    make_bar, batch_loss = trainer.progress_bar, trainer.batch_loss

    def timed_bar(*a, **kw):  # the bar lives exactly as long as the training loop; updated once per step
        bar = make_bar(*a, **kw)
        clock["start"] = time.perf_counter()
        steps.begin()
        close, update = bar.close, bar.update

        def closing():
            clock.setdefault("end", time.perf_counter())
            close()

        def updating(n=1):
            steps.step_end(count["pairs"], count["tokens"])
            return update(n)

        bar.close, bar.update = closing, updating
        return bar

    def counted_loss(model, items, *a, **kw):
        loss, stats = batch_loss(model, items, *a, **kw)
        if model.training:
            count["flop_params"] = count["flop_params"] or flop_params(model)
            count["pairs"] += len(items)
            count["tokens"] += stats["tokens"]  # what the forward computed (a shared prompt once)
            count["pair_tokens"] += sum(len(e.input_ids) for s in items for e in s.encodings)
        return loss, stats

    trainer.progress_bar, trainer.batch_loss = timed_bar, counted_loss
    out = Path(spec["work"]) / "rmforge-run"
    cfg = BTConfig.model_validate({
        "model": spec["model"], "output_dir": str(out), "overwrite": True, "seed": spec["seed"],
        "max_length": spec["max_length"], "length_policy": "truncate_prompt",
        "data": {"train": spec["train"], "validation": spec["validation"]},
        "train": {"max_steps": spec["steps"], "batch_size": spec["batch_size"], "lr": spec["lr"],
                  "weight_decay": 0.0, "scheduler": "linear", "warmup_ratio": spec["warmup_ratio"],
                  "max_grad_norm": 1.0, "precision": spec["precision"], "gradient_checkpointing": False,
                  "length_grouping": not spec["no_length_grouping"]},
        "loss": {"tie_model": "none"},
        "eval": {"every_steps": 0},
        "checkpoint": {"every_steps": 0, "save_best": False},
        "logging": {"every_steps": spec["log_every"], "progress": False},
    })
    summary = trainer.train_bt(cfg)
    rows = read_metrics(out)
    start = next(r for r in rows if r.get("event") == "start")
    end = next((r for r in rows if r.get("event") == "end"), {})
    logged = [r for r in rows if "loss" in r and "event" not in r]
    tr, va = start["data"]["train"], start["data"]["validation"]
    val = summary.get("validation") or {}
    return {
        "side": "rmforge", "steps": summary["steps"], "pairs_trained": count["pairs"], "tokens": count["tokens"],
        "pair_tokens": count["pair_tokens"], "flop_params": count["flop_params"], **steps.as_dict(),
        "loop_s": clock["end"] - clock["start"], "precision": start["precision"],
        "run": {k: (end if k in end else start)[k] for k in RUN_FIELDS if k in start or k in end},
        "train_used": tr["kept"], "train_dropped": tr["dropped"], "train_truncated": tr["truncated"],
        "val_used": va["kept"] if spec["validation"] else 0, "val_dropped": va["dropped"],
        "val_truncated": va["truncated"],
        "final_loss": logged[-1]["loss"], "final_loss_steps": _window(logged),
        "val_accuracy": val.get("accuracy"),
    }


RUN_FIELDS = ("packing", "packing_reason", "attention", "token_budget", "compiles")
"""Fields of rmforge's start (or end) event printed with the table, where the trainer logs them."""


def _device_sync():
    import torch

    return torch.cuda.synchronize if torch.cuda.is_available() else None


def _window(logged: list[dict]) -> str:
    last = logged[-1]["step"]
    prev = logged[-2]["step"] if len(logged) > 1 else 0
    return f"{prev + 1}-{last}"


def _last_window_start(total: int, every: int) -> int:
    """0-based first step of the last window rmforge logs (it logs at multiples of ``every`` and at the end)."""
    return max(0, (total - 1) // every * every)


def _trl_rows(samples, tok, encoder: bool) -> list[dict]:
    """Conversational rows (decoders) or pre-tokenised ``tokenizer(prompt, response)`` ids (encoders)."""
    if encoder:
        from rmforge.reward_model.tokenize import RewardEncoder

        enc = RewardEncoder(tok, 10**9, "drop", encoder=True)  # no length policy here: TRL filters itself
        rows = []
        for s in samples:
            c, r = enc.encode_sample(s)
            rows.append({"chosen_ids": c.input_ids, "rejected_ids": r.input_ids})
        return rows

    def conv(messages):
        return [{"role": m.role, "content": m.content} for m in messages]

    return [{"prompt": conv(s.prompt), "chosen": conv(s.chosen), "rejected": conv(s.rejected)} for s in samples]


def run_trl(spec: dict) -> dict:
    import dataclasses

    import torch
    import transformers
    import trl
    from datasets import Dataset
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rmforge.data.io import load_samples
    from rmforge.reward_model.modeling import load_reward_model
    from rmforge.reward_model.tokenize import RewardEncoder

    torch.manual_seed(spec["seed"])  # as train_bt does before loading: the same new head
    model, tok = load_reward_model(spec["model"])
    encoder = RewardEncoder(tok, spec["max_length"]).mode == "pair"
    train = load_samples(spec["train"])
    val = load_samples(spec["validation"]) if spec["validation"] else []
    count = {"pairs": 0, "tokens": 0}
    steps: list[tuple[float, int]] = []  # (loss * pairs, pairs) per optimizer step (no accumulation)
    clock = StepClock(_device_sync())

    class StepTimes(transformers.TrainerCallback):
        def on_train_begin(self, *a, **kw):
            clock.begin()

        def on_step_end(self, *a, **kw):
            clock.step_end(count["pairs"], count["tokens"])

    class Counted(trl.RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                n = inputs["input_ids"].shape[0] // 2
                count["pairs"] += n
                count["tokens"] += int(inputs["attention_mask"].sum())
                steps.append((float((out[0] if return_outputs else out).detach()) * n, n))
            return out

    names = {f.name for f in dataclasses.fields(trl.RewardConfig)}
    ckpt = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    bf16 = spec["precision"] == "bf16"
    args = trl.RewardConfig(
        output_dir=str(Path(spec["work"]) / "trl-run"), per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=1, max_steps=spec["steps"], learning_rate=spec["lr"],
        lr_scheduler_type="linear", warmup_steps=int(spec["warmup_ratio"] * spec["steps"]), weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch_fused", bf16=bf16, fp16=False, use_cpu=not torch.cuda.is_available(),
        max_length=spec["max_length"], disable_dropout=True, center_rewards_coefficient=None,
        logging_steps=spec["log_every"], report_to="none", save_strategy="no", eval_strategy="no",
        seed=spec["seed"], data_seed=spec["seed"], disable_tqdm=True, dataloader_num_workers=0, **{ckpt: False})
    trainer = Counted(model=model, args=args, processing_class=tok,
                      train_dataset=Dataset.from_list(_trl_rows(train, tok, encoder)), callbacks=[StepTimes()])
    t0 = time.perf_counter()
    trainer.train()
    loop_s = time.perf_counter() - t0
    first = _last_window_start(len(steps), spec["log_every"])  # the window rmforge logs last
    window = steps[first:]
    result = {
        "side": "trl", "trl_version": trl.__version__, "steps": trainer.state.global_step,
        "pairs_trained": count["pairs"], "tokens": count["tokens"], "loop_s": loop_s,
        "pair_tokens": count["tokens"], "flop_params": flop_params(model), **clock.as_dict(),
        "precision": spec["precision"], "train_used": len(trainer.train_dataset),
        "train_dropped": len(train) - len(trainer.train_dataset), "train_truncated": 0,
        "final_loss": sum(a for a, _ in window) / sum(n for _, n in window) if window else None,
        "final_loss_steps": f"{first + 1}-{len(steps)}",
        "tokenization": "pre-tokenised tokenizer(prompt, response)" if encoder else "TRL chat template, no EOS",
        "val_accuracy": None, "val_used": 0, "val_dropped": 0, "val_truncated": 0,
    }
    if val:
        evald = trainer._prepare_dataset(Dataset.from_list(_trl_rows(val, tok, encoder)), tok, args, "eval")
        collate = DataCollatorForPreference(pad_token_id=tok.pad_token_id)
        net = trainer.accelerator.unwrap_model(trainer.model).eval()
        correct = 0
        with torch.no_grad(), torch.autocast(net.device.type, dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(evald), 32):
                rows = [evald[i] for i in range(start, min(start + 32, len(evald)))]
                batch = collate([{"chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"]} for r in rows])
                r = net(input_ids=batch["input_ids"].to(net.device),
                        attention_mask=batch["attention_mask"].to(net.device)).logits[:, 0].float()
                rc, rr = r.chunk(2)
                correct += int((rc > rr).sum())
        result.update(val_used=len(evald), val_dropped=len(val) - len(evald),
                      val_accuracy=correct / len(evald) if len(evald) else None)
    trainer.save_model(str(Path(spec["work"]) / "trl-run"))  # rmforge's end-to-end includes saving too
    return result


def child(side: str, spec_path: str, out_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = run_rmforge(spec) if side == "rmforge" else run_trl(spec)
    result["end_to_end_s"] = time.perf_counter() - T_START
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mb"] = _peak_rss_mb()
    result["device"] = torch.cuda.get_device_name() if cuda else "cpu"
    result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    Path(out_path).write_text(json.dumps(result))


# ----------------------------------------------------------------------------- report

def report(args, info: dict, spec: dict, res: dict) -> None:
    rm, tr = res["rmforge"], res["trl"]
    print()
    print(f"model {args.model}  precision {rm['precision']} (both)  batch {args.batch_size}  max_length "
          f"{args.max_length}  steps {spec['steps']}  lr {args.lr}  torch threads {rm['threads']}/{tr['threads']} "
          f"on {os.cpu_count()} cpus  trl {tr.get('trl_version')}")
    if args.repeat > 1:
        print(f"best of {args.repeat}; loop seconds per repetition: "
              + ", ".join(f"{k} {[round(x, 1) for x in v]}" for k, v in res["loops"].items()))
    print("1-min load average before/after each side (other work on the machine skews timings): "
          + ", ".join(f"{side} {a:.1f}/{b:.1f}" for side, (a, b) in res["load"].items()))
    print(f"train: {info['train']}")
    print(f"validation: {info.get('validation', 'none')}")
    print(f"TRL tokenization: {tr['tokenization']}; rmforge: RewardEncoder (truncate_prompt)")
    if rm.get("run"):
        print("rmforge run: " + ", ".join(f"{k} {v}" for k, v in rm["run"].items()))
    peak = peak_flops(rm.get("device"), args.peak_tflops)
    print(f"device {rm.get('device')}; MFU = 6 x {rm.get('flop_params', 0) / 1e6:.4g}M params (embeddings "
          f"excluded) x tokens computed/s / " + (f"{peak / 1e12:g} TFLOP/s peak" if peak else
                                                  "unknown peak (n/a; --peak-tflops sets one)"))
    rows = [
        ("train pairs used", rm["train_used"], tr["train_used"], None),
        ("train pairs dropped", rm["train_dropped"], tr["train_dropped"], None),
        ("train pairs truncated", rm["train_truncated"], tr["train_truncated"], None),
        ("steps", rm["steps"], tr["steps"], None),
        ("pairs trained", rm["pairs_trained"], tr["pairs_trained"], None),
        *speed_rows(rm, tr, peak),
        (f"final train loss (steps {rm['final_loss_steps']} / {tr['final_loss_steps']})", rm["final_loss"],
         tr["final_loss"], 4),
    ]
    if info.get("n_val"):
        rows += [("val pairs used", rm["val_used"], tr["val_used"], None),
                 ("val pairs dropped", rm["val_dropped"], tr["val_dropped"], None),
                 ("val pairs truncated", rm["val_truncated"], tr["val_truncated"], None),
                 ("val accuracy", rm["val_accuracy"], tr["val_accuracy"], 4)]
    print("\n".join(render_table(rows)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm-l6", help="minilm-l6, smollm2-135m or a model folder")
    p.add_argument("--train", default=None, help="canonical .jsonl/.parquet or hh-rlhf .jsonl[.gz] (default: demo)")
    p.add_argument("--validation", default="auto",
                   help="file as for --train; 'auto' = the demo test split (demo data only); 'none'")
    p.add_argument("--pairs", type=int, default=400)
    p.add_argument("--val-pairs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: one epoch of --pairs)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.05)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak FLOP/s of the device for MFU, in TFLOP/s (default: 790 on an H200, else MFU is n/a)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in both children (default: torch's own); 1 is steadier on a busy machine")
    p.add_argument("--repeat", type=int, default=1, help="run both sides this many times, alternating; keep the "
                   "fastest loop of each")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--no-length-grouping", action="store_true", help="rmforge: random batches like TRL")
    p.add_argument("--only", choices=("rmforge", "trl"), default=None, help="run one side only (debugging)")
    p.add_argument("--work", default=None, help="work folder (default: a temporary one, removed)")
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        child(args.side, args.spec, args.result)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bt-vs-trl-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        info = prepare_data(args, work)
        steps = args.steps or math.ceil(info["n_train"] / args.batch_size)
        spec = {"model": args.model, "train": str(work / "train.jsonl"),
                "validation": str(work / "val.jsonl") if info["n_val"] else None, "work": str(work),
                "steps": steps, "batch_size": args.batch_size, "max_length": args.max_length, "lr": args.lr,
                "warmup_ratio": args.warmup_ratio, "precision": args.precision, "seed": args.seed,
                "log_every": args.log_every, "no_length_grouping": args.no_length_grouping,
                "threads": args.threads}
        (work / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        res: dict = {"load": {}, "loops": {}}
        for rep in range(args.repeat):  # sides alternate, so that load from other work hits both alike
            for side in ("rmforge", "trl"):
                if args.only and side != args.only:
                    continue
                out = work / f"{side}.json"
                print(f"running {side} ({rep + 1}/{args.repeat}) ...", flush=True)
                load_before = os.getloadavg()[0]
                proc = subprocess.run([sys.executable, __file__, "--side", side, "--spec", str(work / "spec.json"),
                                       "--result", str(out)], check=False, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
                    raise SystemExit(f"{side} failed (exit {proc.returncode})")
                got = json.loads(out.read_text())
                res["loops"].setdefault(side, []).append(got["loop_s"])
                if side not in res or got["loop_s"] < res[side]["loop_s"]:  # keep the fastest repetition
                    res[side] = got
                    res["load"][side] = (load_before, os.getloadavg()[0])
        if args.only:
            print(json.dumps(res, indent=2))
        else:
            report(args, info, spec, res)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
