#!/usr/bin/env bash
# DDP and FSDP2 through Accelerate on one GPU, and FSDP2 kill-and-resume (issue 17, items 5 and 7). Run from the project root with PYTHONPATH
# set by the caller (bench/device_check.sh does both):
#   bash bench/fsdp_resume_check.sh
# A tiny Llama reward model (built from a config, nothing downloaded) trains 8 steps under
# `accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 1`, checkpointing every 3 steps:
#   1. uninterrupted (the golden run);  2. SIGKILLed after step 5 (RMFORGE_KILL_AT_STEP);  3. resume=auto from step-3.
# PASS when the resumed run's losses and final weights equal the golden run's (fp32: up to 1e-4, far below the
# ~1e-3 a lost optimizer or scheduler state gives), checkpoints/step-3 holds FSDP's optimizer state (parameter names)
# and loads with AutoModelForSequenceClassification.from_pretrained. Prints PASS or FAIL; exit status 0 on PASS.
# About 30-60 s on an H200 (three launches of a few seconds of training each).
set -u
W=${FSDP_CHECK_DIR:-/tmp/rmforge-fsdp-check}
rm -rf "$W"; mkdir -p "$W"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python3 - "$W" <<'PY' || { echo "FAIL: could not build the tiny model and data"; exit 1; }
import sys
from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.train.tiny import tiny_model

w = sys.argv[1]
tiny_model("llama", f"{w}/tiny", hidden_size=128, num_layers=2, num_heads=4)  # head dim 32
demo = generate_demo(200, seed=0)
write_samples(f"{w}/train.jsonl", demo[:64])
write_samples(f"{w}/val.jsonl", demo[100:116])
PY
launch() {  # output folder, then extra overrides (ACC_CONFIG: the accelerate config, default FSDP2)
  local out=$1; shift
  python3 -m accelerate.commands.launch --config_file "${ACC_CONFIG:-configs/accelerate/fsdp.yaml}" --num_processes 1 \
    --main_process_port "${FSDP_CHECK_PORT:-29533}" -m rmforge train bt "model=$W/tiny" "data.train=$W/train.jsonl" \
    "data.validation=$W/val.jsonl" "output_dir=$out" train.max_steps=8 train.batch_size=8 train.precision=fp32 \
    train.lr=1e-3 model_options.dropout=0.1 logging.every_steps=1 logging.progress=false seed=0 \
    checkpoint.every_steps=3 "$@"
}
SECONDS=0
# DDP through Accelerate on one GPU (configs/accelerate/ddp_gpu.yaml, one process): trains and saves
ACC_CONFIG=configs/accelerate/ddp_gpu.yaml launch "$W/ddp" train.max_steps=4 > "$W/ddp.log" 2>&1 \
  && [ -f "$W/ddp/manifest.json" ] && echo "DDP (ddp_gpu.yaml, 1 process): trained and saved in ${SECONDS}s" \
  || { echo "FAIL: the DDP run (configs/accelerate/ddp_gpu.yaml) failed:"; tail -20 "$W/ddp.log"; exit 1; }
SECONDS=0
launch "$W/ref" > "$W/ref.log" 2>&1 || { echo "FAIL: the uninterrupted run failed:"; tail -20 "$W/ref.log"; exit 1; }
echo "uninterrupted run: ${SECONDS}s"
RMFORGE_KILL_AT_STEP=5 launch "$W/run" > "$W/killed.log" 2>&1
echo "killed run: rc=$? (expected non-zero), checkpoints: $(ls "$W/run/checkpoints" 2>/dev/null | tr '\n' ' ')"
launch "$W/run" resume=auto > "$W/resumed.log" 2>&1 || { echo "FAIL: the resumed run failed:"; tail -20 "$W/resumed.log"; exit 1; }
echo "resumed run: ${SECONDS}s in all"
python3 - "$W" <<'PY'
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

w = Path(sys.argv[1])
problems = []


def rows(run):
    return [json.loads(line) for line in (w / run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def losses(run):
    return [r["loss"] for r in rows(run) if "loss" in r and "event" not in r]


ref, got = losses("ref"), losses("run")
loss_diff = max((abs(a - b) for a, b in zip(ref, got)), default=float("inf"))
if len(ref) != 8 or len(got) != 8 or loss_diff > 1e-4:
    problems.append(f"losses differ: uninterrupted {ref}, resumed {got}")
a, b = load_file(str(w / "ref" / "model.safetensors")), load_file(str(w / "run" / "model.safetensors"))
weight_diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a) if a.keys() == b.keys() else float("inf")
if weight_diff > 1e-4:
    problems.append(f"final weights differ by up to {weight_diff:.3g}")
start = [r for r in rows("run") if r.get("event") == "start"][-1]
if not str(start.get("resumed_from", "")).endswith("step-3"):
    problems.append(f"the second launch did not resume from step-3 (resumed_from={start.get('resumed_from')})")
step = w / "run" / "checkpoints" / "step-6"
optim = torch.load(step / "optimizer.bin", weights_only=True)
if not any(isinstance(k, str) for k in optim.get("state", {})):
    problems.append("checkpoints/step-6/optimizer.bin is not FSDP's (no parameter names): did FSDP run?")
from transformers import AutoModelForSequenceClassification

model = AutoModelForSequenceClassification.from_pretrained(step)
if set(load_file(str(step / "model.safetensors"))) - set(model.state_dict()):
    problems.append("checkpoints/step-6 does not load as a plain from_pretrained model")
print(f"losses max |diff| {loss_diff:.3g}, weights max |diff| {weight_diff:.3g}, resumed from {start['resumed_from']}")
print("FAIL: " + "; ".join(problems) if problems else "PASS: FSDP2 kill-and-resume equals the uninterrupted run")
sys.exit(1 if problems else 0)
PY
