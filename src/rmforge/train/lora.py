"""LoRA / QLoRA reward models through peft, with the reward head fully trained and saved.

:func:`apply_lora` puts LoRA on the transformer's linear layers and the whole head module in
``modules_to_save`` (trained in full), the rest frozen. :func:`save_lora_run` writes ``OUT/adapter/``
and the merged plain model into ``OUT`` (loadable without peft). :func:`merge_run` backs
``rmforge export merge``. QLoRA needs bitsandbytes and a CUDA GPU: load the model with
``quantization_config=bnb_config(opts)`` before :func:`apply_lora`.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from rmforge.train.config import LoraOptions
from rmforge.errors import RmforgeError
from rmforge.fileio import atomic_dir, check_replaceable

ADAPTER_DIR = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json", "metrics.jsonl"}


def is_peft_model(model: Any) -> bool:
    """True for a peft ``PeftModel`` (unwrap DDP first)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def is_quantized(model: Any) -> bool:
    """True for a model loaded in 4 or 8 bits (bitsandbytes)."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def check_quantize(quantize: str) -> None:
    """Raise a clear RmforgeError when ``quantize`` is set but bitsandbytes or a CUDA GPU is missing."""
    import importlib.util

    missing = [why for why, absent in (("the bitsandbytes package is not installed (pip install bitsandbytes)",
                                         importlib.util.find_spec("bitsandbytes") is None),
                                        ("no CUDA GPU is available", not torch.cuda.is_available())) if absent]
    if quantize != "none" and missing:
        raise RmforgeError(f"lora.quantize={quantize} (QLoRA) needs bitsandbytes and a CUDA GPU: "
                           f"{'; '.join(missing)}. Set lora.quantize=none to train LoRA unquantised.")


def bnb_config(opts: LoraOptions) -> Any:
    """The ``BitsAndBytesConfig`` to pass to ``from_pretrained`` for QLoRA (None when ``quantize=none``)."""
    check_quantize(opts.quantize)
    if opts.quantize == "none":
        return None
    from transformers import BitsAndBytesConfig

    if opts.quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def auto_target_modules(model: Any, head: str) -> list[str]:
    """Leaf names of every Linear/Conv1D outside the head and the output embeddings (like ``all-linear``)."""
    from transformers.pytorch_utils import Conv1D

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
             if isinstance(mod, (torch.nn.Linear, Conv1D)) and mod is not output
             and name.split(".")[0] != head}
    return sorted(names)


def apply_lora(model: Any, opts: LoraOptions, *, gradient_checkpointing: bool | None = None) -> Any:
    """Wrap ``model`` in a peft ``SEQ_CLS`` model: LoRA adapters + fully trainable head, base frozen.

    ``gradient_checkpointing``: make the input embeddings' output require grad so that checkpointed
    blocks backpropagate into the adapters (default: on when the model already checkpoints). For
    QLoRA the model must have been loaded with ``quantization_config=bnb_config(opts)``.
    The whole top-level head module (``classifier`` of a composite head) goes to ``modules_to_save``.
    Returns the PeftModel (its base model name is recorded as an absolute local path when local).
    """
    import peft

    from rmforge.reward_model.modeling import find_head

    check_quantize(opts.quantize)
    if is_peft_model(model):
        raise RmforgeError("apply_lora: the model already has adapters")
    head = find_head(model)[0].split(".")[0]
    if gradient_checkpointing is None:  # follow the model
        gradient_checkpointing = bool(getattr(model, "is_activation_checkpointing", False))
    if opts.quantize != "none":
        if not is_quantized(model):
            raise RmforgeError(f"lora.quantize={opts.quantize}: load the model with "
                               "quantization_config=rmforge.train.lora.bnb_config(opts) first")
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        model.enable_input_require_grads()
    targets = auto_target_modules(model, head) if opts.target_modules == "auto" else list(opts.target_modules)
    config = peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=opts.r, lora_alpha=opts.alpha, bias=opts.bias,
                             lora_dropout=opts.dropout, target_modules=targets, modules_to_save=[head])
    try:
        peft_model = peft.get_peft_model(model, config)
    except ValueError as exc:
        raise RmforgeError(f"cannot apply LoRA (target_modules={targets}): {exc}") from None
    peft_model.peft_config[peft_model.active_adapter].base_model_name_or_path = _base_path(model)
    head_params = [(n, p) for n, p in peft_model.named_parameters() if f".{head}.modules_to_save." in n]
    if not head_params or not all(p.requires_grad for _, p in head_params):
        raise RmforgeError(f"LoRA: the reward head '{head}' is not fully trainable in the wrapped model")
    return peft_model


def load_adapter_weights(model: Any, folder: str | Path) -> None:
    """Load ``folder/adapter_model.safetensors`` (a checkpoint of this run) into a PeftModel."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    file = Path(folder) / "adapter_model.safetensors"
    if not file.is_file():
        raise RmforgeError(f"{folder}: no adapter_model.safetensors")
    result = set_peft_model_state_dict(model, load_file(str(file)))
    if result.unexpected_keys:
        raise RmforgeError(f"{folder}: adapter does not match the model (unexpected {result.unexpected_keys[:3]})")


def save_lora_run(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Write ``OUT/adapter/`` (adapter, head, tokenizer) and the merged plain model + tokenizer into ``OUT``.

    The merge happens on a deep copy (the training model is untouched; it costs one model's memory).
    A quantised base is merged from a fresh float32 load of the base instead. Give a fresh folder
    (``checkpoint.save_final``'s temporary one); files in it are overwritten.
    """
    if not is_peft_model(model):
        raise RmforgeError("save_lora_run needs a peft model (apply_lora); save a plain model with save_pretrained")
    out = Path(out_dir)
    adapter = out / ADAPTER_DIR
    base = model.get_base_model()
    model.peft_config[model.active_adapter].base_model_name_or_path = _base_path(base)
    model.save_pretrained(str(adapter), safe_serialization=True, save_embedding_layers=_resized(base))
    tokenizer.save_pretrained(str(adapter))
    merged = merge_adapter(adapter)[0] if is_quantized(base) else copy.deepcopy(model).merge_and_unload()
    _clean(merged, tokenizer)
    merged.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def find_adapter(folder: str | Path) -> Path | None:
    """``folder/adapter`` or ``folder`` itself when it holds an ``adapter_config.json``, else None."""
    return next((d for d in (Path(folder) / ADAPTER_DIR, Path(folder)) if (d / ADAPTER_CONFIG).is_file()), None)


def merge_adapter(adapter_dir: str | Path) -> tuple[Any, Any]:
    """Load the base model recorded in the adapter, apply the adapter, merge: ``(plain model, tokenizer)``."""
    import transformers as tf
    from peft import PeftModel

    from rmforge.models import resolve_model
    from rmforge.reward_model.modeling import quiet_transformers

    adapter = Path(adapter_dir)
    base = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise RmforgeError(f"{adapter / ADAPTER_CONFIG}: no base_model_name_or_path recorded")
    try:
        path = resolve_model(base)
        tok_dir = next((d for d in (adapter, adapter.parent) if (d / "tokenizer_config.json").is_file()), path)
        tokenizer = tf.AutoTokenizer.from_pretrained(str(tok_dir))
        config = tf.AutoConfig.from_pretrained(path, num_labels=1)
        with quiet_transformers():
            model = tf.AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
    except (RmforgeError, OSError, ValueError) as exc:
        raise RmforgeError(f"{adapter}: cannot load the base model '{base}' recorded in {ADAPTER_CONFIG}: "
                           f"{exc}") from None
    rows = _saved_embedding_rows(model, adapter) or max(len(tokenizer), model.get_input_embeddings().num_embeddings)
    if rows != model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(rows, mean_resizing=False)
    try:
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except (ValueError, RuntimeError, KeyError) as exc:
        raise RmforgeError(f"{adapter}: cannot apply the adapter to '{base}': {exc}") from None
    return _clean(merged, tokenizer).eval(), tokenizer


def merge_run(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """``rmforge export merge``: write a plain checkpoint (model + tokenizer) of a run into ``out_dir``.

    ``run_dir``: a run or checkpoint folder with ``adapter/`` or a top-level ``adapter_config.json``
    (merged onto the recorded base model), or a folder with a full model (``config.json`` + weights:
    its files are copied, training state left out). ``manifest.json`` / ``config.yaml`` are copied
    with ``merged_from`` added to the manifest. The output appears atomically.
    """
    run, out = Path(run_dir), Path(out_dir)
    if not run.is_dir():
        raise RmforgeError(f"{run}: no such folder")
    if out.resolve() == run.resolve():
        raise RmforgeError(f"{out}: the output folder must differ from the run folder")
    adapter = find_adapter(run)
    weights = [*run.glob("*.safetensors"), *run.glob("pytorch_model*.bin")]
    full = (run / "config.json").is_file() and any(not f.name.startswith("adapter_model") for f in weights)
    if adapter is None and not full:
        raise RmforgeError(f"{run}: nothing to export: no LoRA adapter ({ADAPTER_DIR}/{ADAPTER_CONFIG} or "
                           f"{ADAPTER_CONFIG}) and no full model (config.json + *.safetensors / pytorch_model.bin)")
    check_replaceable(out, overwrite, "merged model folder")
    info: dict[str, Any] = {"output": str(out), "source": str(run.resolve())}
    with atomic_dir(out) as tmp:
        if adapter is not None:
            model, tokenizer = merge_adapter(adapter)
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
            info.update(mode="merged", adapter=str(adapter.resolve()), base_model=model.config._name_or_path)
        else:
            for item in run.iterdir():
                if item.is_file() and item.name not in {*TRAINING_STATE, "manifest.json", "config.yaml"}:
                    shutil.copy2(item, tmp / item.name)
            info.update(mode="copied")
        _provenance(run, adapter, tmp, info)
    return info


# ----------------------------------------------------------------------------- helpers

def _base_path(model: Any) -> str:
    """The base model's source as recorded for merging: an absolute folder when local."""
    info = getattr(model, "rmforge_info", None) or {}
    source = info.get("source") or getattr(model, "name_or_path", "") or model.config._name_or_path
    path = Path(str(source)).expanduser()
    return str(path.resolve()) if path.is_dir() else str(source)


def _resized(base: Any) -> bool:
    """Whether the input embeddings differ in size from the base checkpoint's (then they are saved)."""
    rows = base.get_input_embeddings().num_embeddings
    path = Path(_base_path(base))
    if (path / "config.json").is_file():
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(path)).get_text_config().vocab_size != rows
    return bool((getattr(base, "rmforge_info", None) or {}).get("pad_added"))


def _saved_embedding_rows(model: Any, adapter: Path) -> int | None:
    """Rows of the input embedding saved in the adapter (a vocabulary grown during loading), else None."""
    from safetensors import safe_open

    file = adapter / "adapter_model.safetensors"
    if not file.is_file():
        return None
    name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    with safe_open(str(file), framework="pt") as fh:
        keys = [k for k in fh.keys() if k.endswith(f"{name}.weight")]  # noqa: SIM118
        return fh.get_slice(keys[0]).get_shape()[0] if keys else None


def _clean(model: Any, tokenizer: Any) -> Any:
    """A merged model as a plain checkpoint: no peft/quantisation leftovers, the tokenizer's pad id."""
    for obj in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        for key in [k for k in vars(obj) if "peft" in k.lower() or k == "quantization_config"]:
            delattr(obj, key)
        obj.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None  # a plain float checkpoint now
    return model


def _provenance(run: Path, adapter: Path | None, tmp: Path, info: dict) -> None:
    """Copy config.yaml and write manifest.json (the run's, if any) with ``merged_from`` added."""
    src = run.parent if adapter == run and run.name == ADAPTER_DIR else run  # RUN/adapter given directly
    if (src / "config.yaml").is_file():
        shutil.copy2(src / "config.yaml", tmp / "config.yaml")
    found = src / "manifest.json"
    manifest = json.loads(found.read_text(encoding="utf-8")) if found.is_file() else {}
    manifest.update({k: info[k] for k in ("base_model",) if k in info}, merged_from=info["source"])
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
