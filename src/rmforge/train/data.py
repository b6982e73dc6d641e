"""Training/validation samples for the trainers: canonical files or anything a converter reads."""

from __future__ import annotations

import hashlib
import os

from rmforge.data.schema import Sample
from rmforge.errors import RmforgeError


def read_any(path: str, fmt: str = "canonical", fields: dict | None = None, options: dict | None = None,
             limit: int | None = None, limit_order: str = "head", seed: int = 0) -> list[Sample]:
    """Samples from a canonical file, a converter-readable file/folder, or a hub id (``format`` = converter).

    ``limit`` keeps the first samples (``limit_order="head"``) or a ``seed``-ed random subset in file
    order (``"random"``: the whole input is read).
    """
    if limit and limit_order == "random":
        everything = read_any(path, fmt, fields, options)
        if len(everything) <= limit:
            return everything
        import random

        keep = sorted(random.Random(f"rmforge-limit:{seed}").sample(range(len(everything)), limit))
        return [everything[i] for i in keep]
    from rmforge.data.sources import SourceConfig, load_source

    looks_local = os.path.exists(path)
    if fmt == "canonical":
        if not looks_local:
            raise RmforgeError(f"data file '{path}' not found (for a hub dataset set data.format to a converter, "
                               "e.g. data.format=hh-rlhf)")
        from rmforge.data.io import read_samples

        out = []
        for s in read_samples(path):
            out.append(s)
            if limit and len(out) >= limit:
                break
        return out
    src = SourceConfig(path=path, converter=fmt, fields=fields or {}, options=options or {}, limit=limit) \
        if looks_local else SourceConfig(hf=path, converter=fmt, fields=fields or {}, options=options or {}, limit=limit)
    return list(load_source(src))


def holdout(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split off ``fraction`` of the prompts (grouped, so no prompt is in both parts)."""
    from rmforge.data.split import SplitConfig, split_samples

    parts = split_samples(samples, SplitConfig(validation=fraction, seed=seed, keep_existing=False))
    return parts.get("train", []), parts.get("validation", [])


def fingerprint(samples: list[Sample]) -> str:
    """Order-sensitive hash of the sample ids and texts (recorded in the manifest)."""
    h = hashlib.sha256()
    for s in samples:
        h.update(s.model_dump_json().encode())
    return h.hexdigest()[:16]
