"""Run directories, resumable checkpoints and the final model, all written atomically.

Layout of a run directory::

    OUTPUT_DIR/
      config.json, model.safetensors, tokenizer files   final model (plain from_pretrained)
      config.yaml      resolved rmforge config
      manifest.json    written last: its presence marks a finished run
      metrics.jsonl    one JSON object per logged step / evaluation
      checkpoints/step-N/   model + optimizer.pt + scheduler.pt + rng.pt + trainer_state.json
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from rmforge.errors import OutputExistsError, OutputPathError, RmforgeError
from rmforge.fileio import (
    atomic_dir,
    atomic_text,
    check_replaceable,
    is_rmforge_output,
    mark_output_dir,
    normal_modes,
    prepare_output_dir,
    temp_dir,
    temp_file,
)

STATE_FILE = "trainer_state.json"


def resume_point(output_dir: str, overwrite: bool, resume: str | None) -> Path | None:
    """Check ``output_dir`` / ``resume`` without writing anything (every process, before the data and model
    are loaded): the checkpoint to resume from, or None for a fresh run. Refuses a non-empty folder without
    ``overwrite``, one ``overwrite`` may not replace (see :func:`rmforge.fileio.check_replaceable`), a file,
    and a place that cannot be written."""
    out = Path(output_dir)
    if resume and resume != "auto":
        ckpt = Path(resume)
        if not (ckpt / STATE_FILE).exists():
            raise RmforgeError(f"resume={resume}: not a checkpoint folder (no {STATE_FILE})")
        if _non_empty(out) and latest_checkpoint(out) is None and not is_rmforge_output(out):
            raise OutputPathError(f"output_dir {out} is not empty and holds no rmforge run; resume into a new or "
                                  "empty output_dir")
        _check_writable(out)
        return ckpt
    if resume == "auto":
        ckpt = latest_checkpoint(out)
        if ckpt is not None:
            return ckpt
    if _non_empty(out) and not overwrite:
        if resume == "auto":
            raise OutputExistsError(f"output_dir {out} is not empty and holds no checkpoint to resume from; set "
                                    "overwrite=true (replaces a run rmforge wrote) or a new output_dir")
        raise OutputExistsError(f"output_dir {out} already exists and is not empty; set overwrite=true (replaces "
                                "a run rmforge wrote), resume=auto (continues it) or a new output_dir")
    check_replaceable(out, overwrite, "run folder")
    _check_writable(out)
    return None


def prepare_run_dir(output_dir: str, overwrite: bool, resume: str | None) -> tuple[Path, Path | None]:
    """Create the run folder (clearing it under ``overwrite`` when rmforge wrote it) and mark it as
    rmforge's; return it and the checkpoint to resume from (if any). Only the main process calls this,
    after the configuration, data and model checks have passed (a failed run leaves no folder)."""
    out = Path(output_dir)
    ckpt = resume_point(output_dir, overwrite, resume)
    if ckpt is None:
        prepare_output_dir(out, overwrite, "run folder")
    elif _non_empty(out):
        mark_output_dir(out)  # a run being continued (earlier versions wrote no marker)
    else:
        prepare_output_dir(out, False, "run folder")
    return out, ckpt


def discard_new_run_dir(out: Path) -> None:
    """Remove the run folder :func:`prepare_run_dir` made for a fresh run that then failed to start (it
    holds only rmforge's marker and what the run began to write); a folder without the marker stays."""
    if out.is_dir() and is_rmforge_output(out) and latest_checkpoint(out) is None \
            and not (out / "manifest.json").exists():
        shutil.rmtree(out, ignore_errors=True)


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _check_writable(out: Path) -> None:
    """The run folder (or the nearest folder above it that exists) must be a writable folder: a probe
    file is created and removed there (``os.access`` says yes to root on a read-only mount)."""
    found = out
    while not found.exists() and found != found.parent:
        found = found.parent
    if not found.is_dir():
        raise OutputPathError(f"cannot create run folder {out}: {found} is a file, not a folder")
    try:
        temp_file(found, prefix=".rmforge-probe-").unlink()
    except OSError as exc:
        raise OutputPathError(f"cannot create run folder {out}: folder {found} is not writable "
                              f"({exc.strerror})") from None


def checkpoints(out: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    import numpy as np

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(out: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict, keep_last: int,
                    protect: Path | None = None) -> Path:
    """Write checkpoints/step-N atomically and prune old ones (never ``protect``, the best)."""
    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        normal_modes(tmp)
    for old in checkpoints(out)[:-keep_last]:
        if protect is None or old.resolve() != Path(protect).resolve():
            shutil.rmtree(old)
    return final


def load_checkpoint(ckpt: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; return the trainer state.
    A damaged checkpoint (truncated weights, unreadable state) is an RmforgeError naming it."""
    from safetensors import SafetensorError

    try:
        return _load_checkpoint(ckpt, model, optimizer, scheduler)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, SafetensorError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RmforgeError(f"cannot resume from {ckpt} ({type(exc).__name__}: {first}): the checkpoint is damaged "
                           "or from another model; remove it to resume from an earlier one") from None


def _load_checkpoint(ckpt: Path, model, optimizer, scheduler) -> dict:
    from safetensors.torch import load_file

    from rmforge.train.lora import is_peft_model, load_adapter_weights

    weights = sorted(ckpt.glob("*.safetensors"))
    if is_peft_model(model):
        load_adapter_weights(model, ckpt)
    elif not weights:
        raise RmforgeError(f"{ckpt}: no model weights in checkpoint")
    else:
        state_dict = {}
        for f in weights:
            state_dict.update(load_file(str(f)))
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if k not in _tied_keys(model)]
        if missing or unexpected:
            raise RmforgeError(f"{ckpt}: checkpoint does not match the model (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})")
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
    set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
    return json.loads((ckpt / STATE_FILE).read_text())


def _tied_keys(model) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or []
    return set(keys) if not isinstance(keys, dict) else set(keys)


def save_final(out: Path, model, tokenizer, config_yaml: str, manifest: dict) -> None:
    """Write the final model into the run directory; manifest.json goes last (completion marker).
    Files get the permissions a plain ``open`` would give them under the umask."""
    from rmforge.train.lora import is_peft_model, save_lora_run

    tmp = temp_dir(out, prefix=".final.")
    try:
        if is_peft_model(model):  # adapter under adapter/, merged plain model at the top
            save_lora_run(model, tokenizer, tmp)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
        normal_modes(tmp)
        for item in tmp.iterdir():
            os.replace(item, out / item.name)
        write_json_atomic(out / "manifest.json", manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_text(path, overwrite=True) as fh:
        json.dump(data, fh, indent=2, default=str)
