"""load_source streams: memory stays flat while ~50k rows (tens of MB) go through it.

Each measurement runs in a fresh process: RSS is taken after a warm-up (first batches, caches)
and then sampled every few hundred rows; the growth must stay under a quarter of the
uncompressed data. A control check materializes the same records to show that the measurement
would catch a loader that reads everything at once.

For parquet, Arrow decodes in its CPU thread pool, and the allocator's per-thread heaps keep
freed pages: RSS ramps up to a plateau of a few tens of MiB that does not depend on the file
size (about the same for 35 MiB and 600 MiB of data). The measurements run with one Arrow CPU
thread so that the bound measures the reader rather than that per-thread cache.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys

import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest

ROWS = 50_000
WARMUP = 5_000
WORDS = "alpha beta gamma delta reward model answer question prefer better worse clear short long".split()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The same ~50k records as jsonl.gz, csv and parquet (small row groups), plus the raw size."""
    folder = tmp_path_factory.mktemp("stream")
    rng = random.Random(7)
    jsonl = folder / "big.jsonl"
    size = 0
    with open(jsonl, "w", encoding="utf-8") as fh:
        for i in range(ROWS):
            rec = {"id": f"x{i}", "prompt": " ".join(rng.choices(WORDS, k=rng.randint(10, 60))),
                   "chosen": " ".join(rng.choices(WORDS, k=rng.randint(20, 80))),
                   "rejected": " ".join(rng.choices(WORDS, k=rng.randint(5, 40)))}
            line = json.dumps(rec) + "\n"
            size += len(line)
            fh.write(line)
    with open(jsonl, "rb") as src, gzip.open(folder / "big.jsonl.gz", "wb", compresslevel=1) as dst:
        dst.write(src.read())
    table = pa_json.read_json(jsonl)
    pq.write_table(table, folder / "big.parquet", row_group_size=2048)
    with open(folder / "big.csv", "w", encoding="utf-8") as fh:
        fh.write("id,prompt,chosen,rejected\n")
        for rec in table.to_batches(max_chunksize=4096):
            for r in rec.to_pylist():
                fh.write(f"{r['id']},{r['prompt']},{r['chosen']},{r['rejected']}\n")
    return folder, size


MEASURE = """
import gc, json, sys
import psutil, pyarrow as pa
from rmforge.data.records import iter_file
from rmforge.data.registry import register_converter
from rmforge.data.schema import Sample, assistant, user
from rmforge.data.sources import SourceConfig, load_source

pa.set_cpu_count(1)


@register_converter("test-stream-pairs")
def _pairs(rec, ctx):
    return Sample(id=rec["id"], prompt=[user(rec["prompt"])], chosen=[assistant(rec["chosen"])],
                  rejected=[assistant(rec["rejected"])], source=ctx.source)


path, mode, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "stream":
    items = load_source(SourceConfig(path=path, converter="test-stream-pairs", batch_size=1024))
else:  # control: keep every record
    held = []
    items = (held.append(rec) for rec in iter_file(path))
proc = psutil.Process()
base = peak = n = 0
for n, _ in enumerate(items, start=1):
    if n == warmup:
        gc.collect()
        base = peak = proc.memory_info().rss
    elif n > warmup and n % 250 == 0:
        peak = max(peak, proc.memory_info().rss)
print(json.dumps({"rows": n, "growth": max(0, peak - base)}))
"""


def _measure(path, mode: str) -> tuple[int, int]:
    """(rows, RSS growth after the warm-up) of streaming or holding ``path``, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), mode, str(WARMUP)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["rows"], result["growth"]


@pytest.mark.parametrize("name", ["big.jsonl.gz", "big.csv", "big.parquet"])
def test_memory_stays_flat(big, name):
    folder, size = big
    n, growth = _measure(folder / name, "stream")
    assert n == ROWS
    assert growth < size / 4, f"RSS grew by {growth / 2**20:.1f} MiB while streaming {size / 2**20:.1f} MiB"


def test_materializing_would_be_caught(big):
    """Control: holding every record must grow far beyond the bound used above."""
    folder, size = big
    n, growth = _measure(folder / "big.jsonl.gz", "hold")
    assert n == ROWS and growth > size / 4
