"""bench/bt_vs_trl.py's measuring and printing (bench/_bt_report.py): MFU, peak FLOP/s by device, rates with
the first optimizer step excluded, the step clock, and the side-by-side table with its GPU rows. No training run."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rep = _load("_bt_report")


def test_peak_flops_by_device_name_or_option():
    assert rep.peak_flops("NVIDIA H200") == 790e12
    assert rep.peak_flops("NVIDIA H200 NVL") == 790e12
    assert rep.peak_flops("cpu") is None
    assert rep.peak_flops(None) is None
    assert rep.peak_flops("NVIDIA A10G") is None  # unknown device: MFU is n/a unless --peak-tflops
    assert rep.peak_flops("cpu", 0.5) == 0.5e12
    assert rep.peak_flops("NVIDIA H200", 989) == 989e12  # the option wins
    with pytest.raises(ValueError, match="--peak-tflops"):
        rep.peak_flops("NVIDIA H200", 0)


def test_mfu_is_six_params_tokens_per_second_over_peak():
    assert rep.mfu(1_700_000_000, 31_000, 790e12) == pytest.approx(6 * 1.7e9 * 31_000 / 790e12)
    assert rep.mfu(1_700_000_000, 31_000, 790e12) == pytest.approx(0.4003, abs=1e-4)
    assert rep.mfu(10, 5.0, None) is None
    assert rep.mfu(10, None, 790e12) is None


def test_rate_after_the_first_step_leaves_its_time_and_work_out():
    ends = [30.0, 31.0, 32.0, 33.0]  # the first step compiled for 30 s
    assert rep.after_first_step(ends, [16, 16, 16, 16]) == pytest.approx(16.0)
    assert rep.after_first_step(ends, [16, 8, 16, 24]) == pytest.approx(16.0)
    assert rep.after_first_step([2.0], [16]) is None
    assert rep.after_first_step([], []) is None
    assert rep.after_first_step([1.0, 2.0], [16]) is None  # mismatched lists are not a rate


def test_step_clock_records_each_steps_own_work(monkeypatch):
    now = iter([100.0, 102.5, 103.0, 104.0])
    monkeypatch.setattr(rep, "time", SimpleNamespace(perf_counter=lambda: next(now)))
    synced = []
    clock = rep.StepClock(lambda: synced.append(1))
    clock.begin()
    clock.step_end(16, 5000)
    clock.step_end(32, 9000)
    clock.step_end(40, 9500)
    assert clock.as_dict() == {"step_ends": [2.5, 3.0, 4.0], "step_pairs": [16, 16, 8],
                               "step_tokens": [5000, 4000, 500]}
    assert len(synced) == 3  # the device is synchronised before every timestamp


def test_flop_params_leave_embedding_tables_out_and_count_tied_weights_once():
    emb, head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3)
    tied_head = torch.nn.Linear(4, 10, bias=False)
    tied_head.weight = emb.weight
    model = torch.nn.ModuleDict({"emb": emb, "head": head, "tied": tied_head})
    assert rep.flop_params(model) == 4 * 3 + 3


def _side(**kw) -> dict:
    base = {"pairs_trained": 64, "tokens": 40_000, "pair_tokens": 60_000, "loop_s": 10.0, "end_to_end_s": 20.0,
            "peak_rss_mb": 3000.0, "gpu_peak_mb": None, "flop_params": 100_000_000,
            "step_ends": [4.0, 6.0, 8.0, 10.0], "step_pairs": [16] * 4, "step_tokens": [10_000] * 4}
    return base | kw


def _table(rows) -> dict[str, list[str]]:
    lines = rep.render_table(rows)
    return {row[0]: lines[i + 1][len(row[0]):].split() for i, row in enumerate(rows)}


def test_warmup_is_the_time_above_the_median_pace_wherever_it_happens():
    # steps of 10, 20, 10, 10, 20 tokens at 0.1 s a token; step 1 compiles 5 s, step 2 (a new width) 3 s
    took = [1.0 + 5.0, 2.0 + 3.0, 1.0, 1.0, 2.0]
    ends = [sum(took[:i + 1]) for i in range(len(took))]
    assert rep.warmup_seconds(ends, [10, 20, 10, 10, 20]) == pytest.approx(8.0)
    assert rep.warmup_seconds([1.0, 2.0, 3.0], [10, 10, 10]) == pytest.approx(0.0)  # a steady loop
    assert rep.warmup_seconds([2.0], [16]) is None
    assert rep.warmup_seconds([1.0, 2.0], [16, 0]) is None
    figures = rep.side_figures({"step_ends": ends, "step_tokens": [10, 20, 10, 10, 20], "step_pairs": [1] * 5,
                                "loop_s": ends[-1], "tokens": 70, "pairs_trained": 5}, None)
    assert figures["warmup_share"] == pytest.approx(8.0 / 15.0)


def test_speed_rows_on_a_cpu_say_n_a_for_gpu_memory_and_mfu():
    cells = _table(rep.speed_rows(_side(), _side(loop_s=20.0, tokens=80_000, pair_tokens=80_000), None))
    assert cells["pairs/s (train loop)"] == ["6.40", "3.20", "2.000"]
    assert cells["pairs/s (first step excluded)"] == ["8.00", "8.00", "1.000"]  # 48 pairs in 6 s
    assert cells["tokens/s (train loop)"] == ["4000", "4000", "1.000"]
    assert cells["tokens/s (first step excluded)"] == ["5000", "5000", "1.000"]
    assert cells["tokens computed"] == ["40000", "80000", "0.500"]
    assert cells["pair tokens (unshared)"] == ["60000", "80000", "0.750"]
    assert cells["first step s"] == ["4.00", "4.00", "1.000"]
    assert cells["GPU peak MB"] == ["n/a", "(cpu)", "n/a", "(cpu)", "-"]
    assert cells["MFU"] == ["n/a", "n/a", "-"]


def test_speed_rows_on_an_h200_give_gpu_peak_and_mfu_of_the_steady_loop():
    rm = _side(gpu_peak_mb=30_000.0)
    tr = _side(gpu_peak_mb=60_000.0, step_tokens=[10_000, 20_000, 20_000, 20_000])
    cells = _table(rep.speed_rows(rm, tr, rep.peak_flops("NVIDIA H200")))
    assert cells["GPU peak MB"] == ["30000", "60000", "0.500"]
    # steady: 30k tokens in 6 s (rmforge), 60k in 6 s (TRL); 6 * 1e8 * 5000 / 790e12 = 0.38%
    assert cells["MFU"] == ["0.4%", "0.8%", "0.500"]
    assert cells["MFU (train loop)"] == ["0.3%", "0.3%", "1.000"]  # 4000 tokens/s over the whole loop


def test_render_table_aligns_and_shows_ratios_only_between_numbers():
    lines = rep.render_table([("a", 3, 2, None), ("text", "n/a", 1.5, 2), ("share", 0.25, 0.5, "%"),
                              ("missing", None, 2.0, 1)])
    assert lines[0].split() == ["rmforge", "TRL", "rmforge/TRL"]
    assert lines[1].split() == ["a", "3", "2", "1.500"]
    assert lines[2].split() == ["text", "n/a", "1.50", "-"]
    assert lines[3].split() == ["share", "25.0%", "50.0%", "0.500"]
    assert lines[4].split() == ["missing", "-", "2.0", "-"]
    assert len({len(line) for line in lines}) == 1


def test_bt_vs_trl_prints_the_new_rows(capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts bench/ on the path
    script = _load("bt_vs_trl")
    common = {"precision": "bf16", "threads": 1, "train_used": 64, "train_dropped": 0, "train_truncated": 0,
              "steps": 4, "final_loss": 0.69, "final_loss_steps": "1-4", "device": "NVIDIA H200"}
    res = {"rmforge": _side(**common, gpu_peak_mb=1000.0, run={"packing": "prefix_shared", "compiles": 2}),
           "trl": _side(**common, gpu_peak_mb=2000.0, trl_version="1.16", tokenization="TRL chat template"),
           "load": {"rmforge": (0.1, 0.2), "trl": (0.2, 0.3)}, "loops": {}}
    args = SimpleNamespace(model="m", batch_size=16, max_length=1024, lr=5e-5, repeat=1, peak_tflops=None)
    script.report(args, {"train": "f", "n_val": 0}, {"steps": 4}, res)
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    for name in ("GPU peak MB", "MFU", "pairs/s (first step excluded)", "tokens/s (first step excluded)",
                 "tokens/s (train loop)", "pair tokens (unshared)", "warm-up share of loop"):
        assert name in rows, name
    assert rows["GPU peak MB"].split()[-3:] == ["1000", "2000", "0.500"]
    assert "790 TFLOP/s peak" in out and "rmforge run: packing prefix_shared, compiles 2" in out
