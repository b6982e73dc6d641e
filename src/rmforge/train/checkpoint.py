"""Run directories, resumable checkpoints and the final model, all written atomically.

Layout of a run directory::

    OUTPUT_DIR/
      config.json, model.safetensors, tokenizer files   final model (plain from_pretrained)
      config.yaml      resolved rmforge config
      manifest.json    written last: its presence marks a finished run
      metrics.jsonl    one JSON object per logged step / evaluation
      checkpoints/step-N/   config.json, model.safetensors, tokenizer files (plain from_pretrained)
                            + Accelerate's training state: optimizer.bin (FSDP/DeepSpeed: their own
                            files), scheduler.bin, random_states_<rank>.pkl, scaler.pt (fp16 only)
                            + trainer_state.json (step, data position, best so far), written last
      checkpoints/best/     the best evaluation's model (config.json + weights)

The Bradley-Terry trainer writes and reads checkpoints with :func:`save_training_checkpoint`,
:func:`load_weights` and :func:`restore_training_state`, collectives that every process calls: the
weights are gathered from the shards under FSDP/DeepSpeed and written by the main process, and each
process writes its own part of the training state. Checkpoints of the earlier layout (optimizer.pt,
scheduler.pt, rng.pt; still written by the SFT trainer, :func:`save_checkpoint`) are read as well.
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


_DECIDE = object()


def prepare_run_dir(output_dir: str, overwrite: bool, resume: str | None,
                    ckpt: Path | None | object = _DECIDE) -> tuple[Path, Path | None]:
    """Create the run folder (clearing it under ``overwrite`` when rmforge wrote it) and mark it as
    rmforge's; return it and the checkpoint to resume from (if any). Only the main process calls this,
    after the configuration, data and model checks have passed (a failed run leaves no folder).
    ``ckpt``: the resume point already decided by :func:`resume_point` (the folder is not looked at again,
    so the run resumes from the checkpoint every process loaded)."""
    out = Path(output_dir)
    if ckpt is _DECIDE:
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
    return _damaged(ckpt, lambda: _load_checkpoint(ckpt, model, optimizer, scheduler))


def _load_checkpoint(ckpt: Path, model, optimizer, scheduler) -> dict:
    from rmforge.train.lora import is_peft_model, load_adapter_weights

    if is_peft_model(model):
        load_adapter_weights(model, ckpt)
    else:
        model.load_state_dict(read_weights(ckpt, model), strict=False)  # checked: only tied copies may be absent
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
    set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
    return json.loads((ckpt / STATE_FILE).read_text())


def _tied_keys(model) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or []
    return set(keys) if not isinstance(keys, dict) else set(keys)


def read_weights(folder: Path, model) -> dict:
    """The weights saved in ``folder`` (``*.safetensors``, sharded or not), checked against ``model``'s
    parameter names: an RmforgeError names the file and the first missing / unexpected keys (only the
    tied copies that ``save_pretrained`` drops may be absent)."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise RmforgeError(f"{folder}: no model weights (*.safetensors)")
    state_dict: dict = {}
    for f in files:
        state_dict.update(load_file(str(f)))
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict) - _tied_keys(model))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        where = files[0] if len(files) == 1 else f"{folder}/*.safetensors"
        parts = [f"{len(keys)} {what} key(s), first {keys[:3]}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise RmforgeError(f"{where} does not match the model: {'; '.join(parts)} (a checkpoint of another model "
                           "or architecture?)")
    return state_dict


def save_model(engine, model, folder: Path, tokenizer=None) -> None:
    """Write ``model``'s whole weights (gathered from the shards, :meth:`Engine.full_state_dict`) and
    config into ``folder`` atomically, loadable with ``from_pretrained``. A collective: every process
    calls it; the main process writes."""
    weights = engine.full_state_dict(model)

    def write():
        with atomic_dir(folder) as tmp:
            _write_model(engine.unwrap(model), tmp, weights, tokenizer)
            normal_modes(tmp)

    engine.on_main(write, share=False)


def _write_model(net, folder: Path, weights: dict, tokenizer=None) -> None:
    net.save_pretrained(folder, state_dict=weights, safe_serialization=True)  # a PeftModel keeps its adapter keys
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def load_model(engine, model, folder: Path) -> None:
    """Load the weights :func:`save_model` wrote into the (prepared, possibly sharded) ``model``; every
    process calls it. Mismatched keys are an RmforgeError on every process (nothing is loaded)."""
    from rmforge.train.lora import is_peft_model, load_adapter_weights

    net = engine.unwrap(model)
    if is_peft_model(net):
        engine.on_main(lambda: load_adapter_weights(net, folder), share=False)
        return
    weights = engine.on_main(lambda: read_weights(folder, net), share=False)
    engine.load_full_state_dict(model, weights if engine.is_main else {})


def save_training_checkpoint(engine, out: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict,
                             keep_last: int, protect: Path | None = None) -> Path:
    """Write checkpoints/step-N (every process calls it): the whole model + tokenizer (main process),
    Accelerate's training state (each process its part, :meth:`Engine.save_training_state`), then
    trainer_state.json; the folder appears under its name only when complete. Old ones are pruned
    (never ``protect``, the best)."""
    import contextlib

    final = out / "checkpoints" / f"step-{step}"
    with contextlib.ExitStack() as stack:
        tmp = Path(engine.on_main(lambda: str(stack.enter_context(atomic_dir(final)))))
        weights = engine.full_state_dict(model)
        engine.save_training_state(tmp, model, optimizer, scheduler)
        engine.barrier()  # every process's files are in place

        def finish():
            _write_model(engine.unwrap(model), tmp, weights, tokenizer)
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))

        engine.on_main(finish, share=False)
    if engine.is_main:
        for old in checkpoints(out)[:-keep_last]:
            if protect is None or old.resolve() != Path(protect).resolve():
                shutil.rmtree(old)
    engine.barrier()
    return final


def load_weights(engine, ckpt: Path, model) -> dict:
    """Load a checkpoint's model weights into the (not yet prepared) ``model`` and return its trainer
    state; every process calls it. A damaged checkpoint or one of another model is an RmforgeError naming
    it. Under DeepSpeed the weights come with the training state (:func:`restore_training_state`)."""
    from rmforge.train.lora import is_peft_model, load_adapter_weights

    def load():
        legacy = (ckpt / "optimizer.pt").exists()
        if legacy and engine.sharding != "none":
            raise RmforgeError(f"cannot resume from {ckpt} under {engine.sharding}: it was written by an earlier "
                               "rmforge for one process or DDP (optimizer.pt); resume it without sharding")
        if not legacy and not (ckpt / "scheduler.bin").exists():
            raise RmforgeError(f"cannot resume from {ckpt}: no training state (scheduler.bin or optimizer.pt); "
                               "remove it to resume from an earlier one")
        if is_peft_model(model):
            load_adapter_weights(model, ckpt)
        elif engine.sharding != "deepspeed":
            model.load_state_dict(read_weights(ckpt, model), strict=False)  # checked: only tied copies absent
        return json.loads((ckpt / STATE_FILE).read_text())

    return _damaged(ckpt, load)


def restore_training_state(engine, ckpt: Path, model, optimizer, scheduler) -> None:
    """Restore optimizer, scheduler, GradScaler and RNG after :meth:`Engine.prepare` (every process):
    Accelerate's state, or the earlier layout's optimizer.pt / scheduler.pt / rng.pt."""
    def restore():
        if (ckpt / "optimizer.pt").exists():
            optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
            scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
            set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
        else:
            engine.load_training_state(ckpt, model, optimizer, scheduler)

    _damaged(ckpt, restore)


def _damaged(ckpt: Path, fn):
    from safetensors import SafetensorError

    try:
        return fn()
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, SafetensorError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RmforgeError(f"cannot resume from {ckpt} ({type(exc).__name__}: {first}): the checkpoint is damaged "
                           "or from another model; remove it to resume from an earlier one") from None


def save_final(out: Path, model, tokenizer, config_yaml: str, manifest: dict, weights: dict | None = None) -> None:
    """Write the final model into the run directory; manifest.json goes last (completion marker).
    ``weights``: the whole model's state dict when it is sharded (:meth:`Engine.full_state_dict`).
    Files get the permissions a plain ``open`` would give them under the umask."""
    from rmforge.train.lora import is_peft_model, save_lora_run

    tmp = temp_dir(out, prefix=".final.")
    try:
        if is_peft_model(model):  # adapter under adapter/, merged plain model at the top
            save_lora_run(model, tokenizer, tmp)
        else:
            model.save_pretrained(tmp, state_dict=weights, safe_serialization=True)
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
