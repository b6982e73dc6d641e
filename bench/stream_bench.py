"""Streaming benchmark: a large preference file -> load_source -> write_samples (parquet), flat memory.

1. Writes ``prefs.jsonl.gz`` (gzip level 1: exercises streaming decompression and keeps the file
   small on disk) with ``--rows`` synthetic prompt/chosen/rejected records, in chunks so that the
   generator's own memory stays small.
2. In a fresh process, streams the whole file through ``load_source`` (converter ``preference``)
   into ``write_samples(out.parquet)``, sampling RSS in a thread; reports rows/s, peak RSS and RSS
   at 25/50/75/100 % of the stream.
3. In another fresh process, the naive baseline on the first ``--baseline-rows`` rows: every line
   ``json.loads``-ed into a list, converted into a list of samples, then written.

Usage::

    python bench/stream_bench.py                    # 1,000,000 rows in a temporary folder
    python bench/stream_bench.py --rows 200000 --out /tmp/bench --keep

Not a test; takes about a minute or two for a million rows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

WORDS = ("reward model preference answer question helpful harmless honest data sample token train "
         "evaluate policy response prompt explain because therefore however example result value "
         "system user assistant careful detail clear short long better worse correct wrong safe").split()


def generate(path: str, rows: int, seed: int = 0, chunk: int = 10_000) -> int:
    """Write ``rows`` varied synthetic preference records; returns the uncompressed size in bytes."""
    rng = random.Random(seed)
    size = 0

    def sentence(lo: int, hi: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi))).capitalize() + rng.choice(".?!")

    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as fh:
        for start in range(0, rows, chunk):
            lines = []
            for i in range(start, min(rows, start + chunk)):
                rec = {"id": f"ex{i}", "prompt": f"#{i} " + sentence(8, 30),
                       "chosen": " ".join(sentence(5, 20) for _ in range(rng.randint(1, 4))),
                       "rejected": " ".join(sentence(3, 15) for _ in range(rng.randint(1, 3)))}
                lines.append(json.dumps(rec))
            text = "\n".join(lines) + "\n"
            size += len(text.encode())
            fh.write(text)
    return size


# ---------------------------------------------------------------- measured phases (child processes)

class RssSampler:
    """Peak resident memory, sampled every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        rss = self.proc.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.now()

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.now()


def ensure_preference_converter() -> str:
    """The built-in ``preference`` converter, or a minimal stand-in while it does not exist yet."""
    from rmforge.data import registry
    from rmforge.data.schema import Sample, assistant, user

    registry.load_plugins()
    if "preference" not in registry.CONVERTERS:
        @registry.register_converter("preference")
        def _stand_in(rec, ctx):
            prompt = ctx.get(rec, "prompt", required=False)
            return Sample(id=str(rec.get("id") or f"row{ctx.row}"), prompt=[user(prompt)] if prompt else [],
                          chosen=[assistant(ctx.get(rec, "chosen"))], rejected=[assistant(ctx.get(rec, "rejected"))],
                          source=ctx.source)
        return "stand-in (built-in 'preference' converter not present)"
    return "built-in"


def phase_stream(file: str, rows: int, out: str) -> dict:
    from rmforge.data import write_samples
    from rmforge.data.sources import SourceConfig, load_source

    which = ensure_preference_converter()
    marks = {max(1, rows * p // 100): p for p in (25, 50, 75, 100)}
    at: dict[int, int] = {}
    with RssSampler() as rss:
        base = rss.now()

        def counted(samples):
            for n, sample in enumerate(samples, start=1):
                if n in marks:
                    at[marks[n]] = rss.now()
                yield sample

        start = time.perf_counter()
        n = write_samples(out, counted(load_source(SourceConfig(path=file))), overwrite=True)
        elapsed = time.perf_counter() - start
    return {"rows": n, "seconds": elapsed, "base": base, "peak": rss.peak, "at": at, "converter": which,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "out_size": os.path.getsize(out)}


def phase_naive(file: str, rows: int, out: str) -> dict:
    from rmforge.data import write_samples
    from rmforge.data.registry import convert_records

    ensure_preference_converter()
    with RssSampler() as rss:
        base = rss.now()
        start = time.perf_counter()
        records = []
        with gzip.open(file, "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if i > rows:
                    break
                records.append((json.loads(line), i))
        samples = list(convert_records(records, "preference", file=file))
        n = write_samples(out, samples, overwrite=True)
        elapsed = time.perf_counter() - start
    return {"rows": n, "seconds": elapsed, "base": base, "peak": rss.peak}


# ---------------------------------------------------------------- driver

def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def run_child(phase: str, file: str, rows: int, out: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--file", file, "--rows", str(rows), "--out", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{phase} phase failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file (default 1,000,000)")
    ap.add_argument("--baseline-rows", type=int, default=200_000, help="rows for the materializing baseline")
    ap.add_argument("--out", help="folder for the generated and written files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the files (always kept with --out)")
    ap.add_argument("--phase", choices=["stream", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase:  # child process: one measured phase, result as a JSON line
        fn = phase_stream if args.phase == "stream" else phase_naive
        print(json.dumps(fn(args.file, args.rows, args.out)))
        return

    folder = args.out or tempfile.mkdtemp(prefix="rmforge-bench-")
    os.makedirs(folder, exist_ok=True)
    try:
        data = os.path.join(folder, "prefs.jsonl.gz")
        t = time.perf_counter()
        raw = generate(data, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s: {data} "
              f"({mib(os.path.getsize(data))} gzip, {mib(raw)} uncompressed)")

        s = run_child("stream", data, args.rows, os.path.join(folder, "stream.parquet"))
        print(f"\nstreaming  load_source -> write_samples (converter: {s['converter']})")
        print(f"  {s['rows']:,} rows in {s['seconds']:.1f} s = {s['rows'] / s['seconds']:,.0f} rows/s; "
              f"parquet {mib(s['out_size'])}")
        print(f"  RSS after imports {mib(s['base'])}, peak {mib(s['peak'])} (ru_maxrss {mib(s['maxrss'])}), "
              f"growth {mib(s['peak'] - s['base'])}")
        print("  RSS during the stream: " + ", ".join(f"{p}%: {mib(v)}" for p, v in sorted(
            ((int(k), v) for k, v in s["at"].items()))))

        b_rows = min(args.baseline_rows, args.rows)
        b = run_child("naive", data, b_rows, os.path.join(folder, "naive.parquet"))
        print(f"\nnaive baseline  json.loads every line into a list, convert to a list, write ({b['rows']:,} rows)")
        print(f"  {b['rows'] / b['seconds']:,.0f} rows/s; peak {mib(b['peak'])}, growth {mib(b['peak'] - b['base'])}"
              f" = {(b['peak'] - b['base']) / b['rows']:,.0f} bytes/row")
        s_growth = max(s["peak"] - s["base"], 1)
        b_growth = b["peak"] - b["base"]
        print(f"\npeak RSS growth: naive on {b['rows']:,} rows / streaming on {s['rows']:,} rows = "
              f"{b_growth / s_growth:,.1f}x; naive extrapolated to {s['rows']:,} rows ~ "
              f"{mib(b_growth / b['rows'] * s['rows'])} ({b_growth / b['rows'] * s['rows'] / s_growth:,.0f}x)")
    finally:
        if not (args.out or args.keep):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
