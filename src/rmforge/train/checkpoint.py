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
import tempfile
from pathlib import Path
from typing import Any

import torch

from rmforge.errors import OutputExistsError, RmforgeError
from rmforge.fileio import atomic_dir

STATE_FILE = "trainer_state.json"


def prepare_run_dir(output_dir: str, overwrite: bool, resume: str | None) -> tuple[Path, Path | None]:
    """Create/validate the run directory; return it and the checkpoint to resume from (if any)."""
    out = Path(output_dir)
    if resume and resume != "auto":
        ckpt = Path(resume)
        if not (ckpt / STATE_FILE).exists():
            raise RmforgeError(f"resume={resume}: not a checkpoint folder (no {STATE_FILE})")
        out.mkdir(parents=True, exist_ok=True)
        return out, ckpt
    if resume == "auto":
        ckpt = latest_checkpoint(out)
        if ckpt is not None:
            return out, ckpt
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out} already holds a run; set overwrite=true, resume=auto or a new output_dir")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, None


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
    for old in checkpoints(out)[:-keep_last]:
        if protect is None or old.resolve() != Path(protect).resolve():
            shutil.rmtree(old)
    return final


def load_checkpoint(ckpt: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; return the trainer state."""
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
    """Write the final model into the run directory; manifest.json goes last (completion marker)."""
    from rmforge.train.lora import is_peft_model, save_lora_run

    tmp = Path(tempfile.mkdtemp(prefix=".final.", dir=out))
    try:
        if is_peft_model(model):  # adapter under adapter/, merged plain model at the top
            save_lora_run(model, tokenizer, tmp)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
        for item in tmp.iterdir():
            os.replace(item, out / item.name)
        write_json_atomic(out / "manifest.json", manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)
