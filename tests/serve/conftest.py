"""Fixtures for the serving tests: a tiny trained run, a tiny encoder model, real server processes."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from rmforge.data.demo import generate_demo
from rmforge.data.io import write_samples
from rmforge.train.tiny import tiny_model


@pytest.fixture(scope="session")
def demo():
    return generate_demo(60, seed=0)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, demo) -> Path:
    """A 4-step Bradley-Terry run on a tiny llama (manifest with encoding and normalisation)."""
    from rmforge.config import load_config
    from rmforge.train.config import BTConfig
    from rmforge.train.trainer import train_bt

    root = tmp_path_factory.mktemp("serve_run")
    tiny_model("llama", root / "tiny")
    write_samples(root / "train.jsonl", demo[:24])
    write_samples(root / "val.jsonl", demo[40:52])
    cfg = load_config(None, [f"model={root / 'tiny'}", f"data.train={root / 'train.jsonl'}",
                             f"data.validation={root / 'val.jsonl'}", f"output_dir={root / 'run'}",
                             "train.max_steps=4", "train.batch_size=8", "train.precision=fp32", "train.lr=1e-3",
                             "logging.progress=false", "seed=0", "max_length=256"], cls=BTConfig)
    train_bt(cfg)
    return root / "run"


def nan_copy(run: Path, dest: Path) -> Path:
    """A copy of ``run`` whose top-level ``model.safetensors`` float32 data bytes are all NaN (the
    header stays valid, so the model loads): a corrupted model."""
    import json
    import shutil
    import struct

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoint*", "checkpoints"))
    weights = dest / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    for name, meta in header.items():
        if name != "__metadata__" and meta["dtype"] == "F32":
            start, end = (8 + size + o for o in meta["data_offsets"])
            raw[start:end] = b"\x00\x00\xc0\x7f" * ((end - start) // 4)
    weights.write_bytes(bytes(raw))
    return dest


@pytest.fixture(scope="session")
def nan_run_dir(run_dir, tmp_path_factory) -> Path:
    return nan_copy(run_dir, tmp_path_factory.mktemp("serve_nan") / "run")


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("serve_bert") / "bert")


class ServerProcess:
    """``python -m rmforge serve ...`` in a subprocess; ``url`` from its one stdout line."""

    def __init__(self, args: list[str], ready_timeout: float = 120.0):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rmforge", "serve", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout] and None,
                         daemon=True).start()
        self.stdout_lines = lines
        try:
            self.first_line = lines.get(timeout=ready_timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"server not ready: {self.proc.stderr.read()}") from None
        assert self.first_line.startswith("serving on http://"), self.first_line + self.proc.stderr.read()
        self.url = self.first_line.split()[-1]

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@contextmanager
def server_process(*args: str):
    server = ServerProcess([str(a) for a in args])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def serve_process():
    """``with serve_process(MODEL, "--port", "0", ...) as server:`` a real server process."""
    return server_process
