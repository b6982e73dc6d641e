"""Load benchmark for ``rmforge serve``: dynamic batching vs one forward per request, same run.

Starts real server processes on loopback, one at a time (``rmforge serve MODEL --port 0 --no-auth``,
then the same with ``--no-batching``: the naive baseline, one forward per request in arrival order),
and drives each with 1, 8 and 64 concurrent clients (httpx, keep-alive). Every request scores one
(prompt, response) pair drawn from the bundled demo preference set. Each level stops after
``--requests`` requests or ``--seconds`` seconds, whichever comes first, after a short warm-up.
Reports throughput (requests/s), p50 and p99 latency per level and server, and the ratio of
throughputs (batched / naive). Both servers run at once and each level alternates batched, naive,
naive, batched (half the budget each), so changes in the machine's load hit both alike, which is what to compare across machines (the CPU may be shared).

``--threads-sweep 1 2 4`` instead compares batched servers that differ only in ``--threads`` (0: no
``--threads`` option, the server's default), all up at once, each level run in the order 1 2 4 4 2 1.

Usage::

    python bench/serve_load.py                       # MiniLM (minilm-l6), about 2-3 minutes
    python bench/serve_load.py --model RUN_DIR --levels 1 8 64 --seconds 10 --json out.json
    python bench/serve_load.py --threads-sweep 1 2 4 --levels 64 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import httpx


def _pairs(n: int = 256) -> list[dict]:
    from rmforge.data.demo import generate_demo

    items = []
    for s in generate_demo(n // 2, seed=1):
        for resp in (s.chosen, s.rejected):
            items.append({"prompt": [m.model_dump(exclude_none=True) for m in s.prompt],
                          "response": [m.model_dump(exclude_none=True) for m in resp]})
    return items


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rmforge", "serve", model, "--port", "0", "--no-auth", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("serving on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    return proc, line.split()[-1]


async def drive(url: str, items: list[dict], clients: int, max_requests: int, seconds: float) -> dict:
    """``clients`` concurrent loops posting one item each until the count or time budget is spent."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        start = time.perf_counter()
        end = start + seconds

        async def loop(worker: int) -> None:
            nonlocal sent, errors
            while sent < max_requests and time.perf_counter() < end:
                item = items[(sent * 7 + worker) % len(items)]
                sent += 1
                t0 = time.perf_counter()
                resp = await http.post("/score", json={"items": [item]})
                latencies.append(time.perf_counter() - t0)
                errors += resp.status_code != 200

        await asyncio.gather(*(loop(w) for w in range(clients)))
        wall = time.perf_counter() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"clients": clients, "requests": len(latencies), "errors": errors, "seconds": round(wall, 2),
            "rps": round(len(latencies) / wall, 1), "p50_ms": round(1000 * q[49], 1), "p99_ms": round(1000 * q[98], 1)}


def combine(parts: list[dict]) -> dict:
    """Two half-runs of one server at one level: summed counts, request-weighted latencies."""
    n = sum(p["requests"] for p in parts)
    wall = sum(p["seconds"] for p in parts)
    out = {"clients": parts[0]["clients"], "requests": n, "errors": sum(p["errors"] for p in parts),
           "seconds": round(wall, 2), "rps": round(n / wall, 1) if wall else 0.0}
    for key in ("p50_ms", "p99_ms"):
        out[key] = round(sum(p[key] * p["requests"] for p in parts) / max(n, 1), 1)
    return out


def measure(model: str, batched_args: list[str], naive_args: list[str], levels: list[int], items: list[dict],
            args) -> list[tuple[dict, dict]]:
    """Both servers up at once (an idle one costs nothing); each level runs batched, naive, naive,
    batched (half the budget each), so drift in the machine's load hits both alike."""
    servers = [start_server(model, batched_args), start_server(model, naive_args)]
    try:
        for _, url in servers:
            asyncio.run(drive(url, items, 8, 64, 5.0))  # warm-up
        out = []
        for c in levels:
            runs: list[list[dict]] = [[], []]
            for which in (0, 1, 1, 0):
                runs[which].append(asyncio.run(drive(servers[which][1], items, c, args.requests // 2,
                                                     args.seconds / 2)))
            out.append((combine(runs[0]), combine(runs[1])))
        return out
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(30)


def sweep_threads(model: str, counts: list[int], levels: list[int], items: list[dict], args) -> list[list[dict]]:
    """Batched servers differing only in --threads, run in the order a b c c b a per level."""
    servers = [start_server(model, ["--threads", str(n)] if n else []) for n in counts]
    try:
        for _, url in servers:
            asyncio.run(drive(url, items, 8, 64, 5.0))  # warm-up
        out = []
        for c in levels:
            runs: list[list[dict]] = [[] for _ in counts]
            order = list(range(len(counts)))
            for which in order + order[::-1]:
                runs[which].append(asyncio.run(drive(servers[which][1], items, c, args.requests // 2,
                                                     args.seconds / 2)))
            out.append([combine(r) for r in runs])
        return out
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="minilm-l6", help="run directory, model folder or embedded name")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 64], help="concurrent clients")
    ap.add_argument("--requests", type=int, default=2000, help="most requests per level")
    ap.add_argument("--seconds", type=float, default=15.0, help="most seconds per level")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of both servers (0: torch's default)")
    ap.add_argument("--server-args", default="", help="extra options for the batched server")
    ap.add_argument("--threads-sweep", type=int, nargs="+", help="compare batched servers at these --threads "
                    "(0: the server's default) instead of batched vs naive")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    items = _pairs()
    if args.threads_sweep:
        results = sweep_threads(args.model, args.threads_sweep, args.levels, items, args)
        print(f"model {args.model}; batched servers; one (prompt, response) per request; {os.cpu_count()} CPUs")
        print(f"{'clients':>7} | {'threads':>7} | {'rps':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
        for level in results:
            for n, r in zip(args.threads_sweep, level):
                print(f"{r['clients']:>7} | {n or 'default':>7} | {r['rps']:>6} {r['p50_ms']:>7} {r['p99_ms']:>7} "
                      f"{r['errors']:>6}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump({"model": args.model, "threads": args.threads_sweep, "levels": results}, fh, indent=2)
        return
    common = ["--threads", str(args.threads)] if args.threads else []
    results = measure(args.model, common + args.server_args.split(), common + ["--no-batching"], args.levels,
                      items, args)
    print(f"model {args.model}; one (prompt, response) per request; {os.cpu_count()} CPUs")
    print(f"{'clients':>7} | {'batched rps':>11} {'p50 ms':>7} {'p99 ms':>7} | {'naive rps':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} | {'ratio':>5}")
    rows = []
    for b, n in results:
        ratio = b["rps"] / n["rps"] if n["rps"] else float("nan")
        rows.append({"batched": b, "naive": n, "throughput_ratio": round(ratio, 2)})
        print(f"{b['clients']:>7} | {b['rps']:>11} {b['p50_ms']:>7} {b['p99_ms']:>7} | {n['rps']:>9} "
              f"{n['p50_ms']:>7} {n['p99_ms']:>7} | {ratio:>5.2f}")
        if b["errors"] or n["errors"]:
            print(f"        errors: batched {b['errors']}, naive {n['errors']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": args.model, "levels": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
