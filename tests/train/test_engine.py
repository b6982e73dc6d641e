"""precision=auto on CPU: bf16 only where the flags allow it and a measured matmul pays; cached; overridable."""

import json

import pytest
import torch

from rmforge.train import engine


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RMFORGE_CACHE", str(tmp_path))
    monkeypatch.delenv("RMFORGE_CPU_BF16", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU rule, on any host
    return tmp_path / "cpu_bf16.json"


def _flags(monkeypatch, text):
    real_open = open

    def fake_open(path, *a, **kw):
        if path == "/proc/cpuinfo":
            import io

            return io.StringIO(text)
        return real_open(path, *a, **kw)

    monkeypatch.setattr("builtins.open", fake_open)


@pytest.mark.parametrize("speedup, expect", [(2.7, True), (1.19, False), (0.6, False)])
def test_measured_speedup_decides_and_is_cached(cache, monkeypatch, speedup, expect):
    _flags(monkeypatch, "model name\t: Some Xeon\nflags\t\t: avx512f avx512_bf16\n")
    calls = []
    monkeypatch.setattr(engine, "bf16_matmul_speedup", lambda: calls.append(1) or speedup)
    assert engine.cpu_has_fast_bf16() is expect
    assert engine.cpu_has_fast_bf16() is expect and len(calls) == 1  # measured once, then read from the cache
    (key, value), = json.loads(cache.read_text()).items()
    assert key.startswith("Some Xeon|threads=") and value == speedup
    assert engine.resolve_precision("auto") == ("bf16" if expect else "fp32")
    assert engine.resolve_precision("fp32") == "fp32" and engine.resolve_precision("bf16") == "bf16"


@pytest.mark.parametrize("bf16, expect", [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_never_measures_the_cpu(monkeypatch, bf16, expect):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: pytest.fail("measured the CPU on a GPU host"))
    assert engine.resolve_precision("auto") == expect


def test_no_bf16_flags_means_fp32_without_measuring(cache, monkeypatch):
    _flags(monkeypatch, "model name\t: Old CPU\nflags\t\t: avx2\n")
    monkeypatch.setattr(engine, "bf16_matmul_speedup", lambda: pytest.fail("measured without the flags"))
    assert engine.cpu_has_fast_bf16() is False and not cache.exists()


def test_environment_override(cache, monkeypatch):
    monkeypatch.setattr(engine, "bf16_matmul_speedup", lambda: pytest.fail("measured despite the override"))
    monkeypatch.setenv("RMFORGE_CPU_BF16", "1")
    assert engine.cpu_has_fast_bf16() is True
    monkeypatch.setenv("RMFORGE_CPU_BF16", "0")
    assert engine.cpu_has_fast_bf16() is False


def test_speedup_probe_runs():
    assert engine.bf16_matmul_speedup(size=64, reps=1) > 0


@pytest.mark.parametrize("name,warmup,expect", [
    ("constant", 2, [0.0, 0.5, 1.0, 1.0]),   # transformers' plain "constant" would give 1, 1, 1, 1
    ("constant", 0, [1.0, 1.0, 1.0, 1.0]),
    ("linear", 2, [0.0, 0.5, 1.0, 0.5]),
])
def test_lr_scheduler_warmup(name, warmup, expect):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = engine.lr_scheduler(name, opt, warmup, 4)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(expect)
