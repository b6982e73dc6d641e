"""Label Studio export -> canonical samples with every annotator's label, then one aggregated label.

Each annotation becomes a record in ``metadata.annotations`` of its sample, in the
*original* orientation (the display order is undone): ``annotator`` (e-mail), ``annotator_id``,
``lead_time`` (seconds), ``annotation_id``, and

- pairwise: ``label`` (``first`` = the pushed sample's ``chosen``, ``second`` = its
  ``rejected``, ``tie``), ``position`` (``A``/``B``/``Tie`` as shown), ``strength``, ``comment``;
- pointwise: ``scores`` (attribute -> value);
- ranking: ``ranks`` (rank per original candidate).

:func:`aggregate_samples` then sets the sample's own label from those records (majority
vote or Dawid-Skene) and writes a summary to ``metadata.annotation``, so the file feeds
``rmforge data build`` and the trainers directly. Cancelled (skipped) annotations and tasks
without annotations are counted, never silently lost.
"""

from __future__ import annotations

from collections import Counter
from statistics import mean
from typing import Any

from rmforge.annotate.aggregate import METHODS, dawid_skene, majority_vote, mean_ranks, median_score
from rmforge.annotate.configs import ConfigSpec
from rmforge.data.schema import Sample, Scale
from rmforge.errors import ConfigError, DataError

PAIR_LABELS = ("first", "second", "tie")


def _results(ann: dict) -> dict[str, dict]:
    return {r.get("from_name"): r.get("value") or {} for r in ann.get("result") or []}


def _where(task: dict, ann: dict, annotator: str) -> str:
    return (f"task {task.get('id')} (sample '{task['data'].get('rmforge_id')}'), "
            f"annotation {ann.get('id')} by {annotator}")


def _one_choice(values: dict, name: str, where: str) -> str:
    value = values.get(name, {}).get("choices") or []
    if len(value) != 1:
        raise DataError(f"{where}: no '{name}' selected" if not value else f"{where}: several '{name}' values {value}")
    return value[0]


def annotation_record(task: dict, ann: dict, spec: ConfigSpec, annotator: str) -> dict:
    """One annotation in the original orientation (see the module docstring)."""
    values, where = _results(ann), _where(task, ann, annotator)
    order = task["data"].get("rmforge_order") or []
    rec: dict[str, Any] = {"annotator": annotator, "annotation_id": ann.get("id"), "lead_time": ann.get("lead_time")}
    if spec.kind == "pairwise":
        position = _one_choice(values, "choice", where)
        if position not in ("A", "B", "Tie"):
            raise DataError(f"{where}: unknown choice '{position}' (expected A, B or Tie)")
        rec["position"] = position
        rec["label"] = "tie" if position == "Tie" else PAIR_LABELS[order["AB".index(position)]]
        if "rating" in values.get("strength", {}):
            rec["strength"] = values["strength"]["rating"]
        comment = values.get("comment", {}).get("text")
        if comment:
            rec["comment"] = "\n".join(comment) if isinstance(comment, list) else str(comment)
    elif spec.kind == "pointwise":
        scores = {}
        for attr in spec.attributes:
            if "number" in values.get(attr, {}):
                scores[attr] = float(values[attr]["number"])
            else:
                scores[attr] = float(_one_choice(values, attr, where))
        rec["scores"] = scores
    else:
        shown = [int(_one_choice(values, f"rank_{k}", where)) for k in range(spec.n_candidates)]
        ranks = [0] * len(shown)
        for k, original in enumerate(order):
            ranks[original] = shown[k]
        rec["ranks"] = ranks
        rec["ranks_shown"] = shown
    return rec


def export_to_samples(tasks: list[dict], spec: ConfigSpec, users: dict[int, str]) -> tuple[list[Sample], dict]:
    """Samples (original content + ``metadata.annotations``) for annotated tasks, and counts."""
    samples, counts = [], Counter(tasks=len(tasks))
    for task in tasks:
        data = task.get("data") or {}
        if "rmforge_sample" not in data:
            counts["foreign_tasks"] += 1
            continue
        records = []
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                counts["cancelled_annotations"] += 1
                continue
            raw = ann.get("completed_by")
            user_id = raw.get("id") if isinstance(raw, dict) else raw
            who = (raw.get("email") if isinstance(raw, dict) else None) or users.get(user_id, str(user_id))
            records.append(annotation_record(task, ann, spec, str(who)) | {"annotator_id": user_id})
        if not records:
            counts["unannotated_tasks"] += 1
            continue
        counts["annotations"] += len(records)
        sample = Sample.model_validate(data["rmforge_sample"])
        sample.metadata = dict(sample.metadata) | {"annotations": records, "label_studio_task": task.get("id")}
        samples.append(sample)
    counts["annotated_tasks"] = len(samples)
    return samples, dict(counts)


def _pair_sample(s: Sample, label: str, records: list[dict]) -> Sample:
    first, second = (s.chosen, s.rejected) if s.metadata.get("annotation_orientation") != "swapped" else (s.rejected, s.chosen)
    strengths = [r["strength"] for r in records if r.get("label") == label and r.get("strength") is not None]
    chosen, rejected = (second, first) if label == "second" else (first, second)
    return s.model_copy(update={"chosen": chosen, "rejected": rejected, "tie": label == "tie",
                                "margin": float(mean(strengths)) if strengths and label != "tie" else None})


def aggregate_samples(samples: list[Sample], kind: str, method: str = "majority", tie_policy: str = "tie",
                      spec: ConfigSpec | None = None) -> tuple[list[Sample], int]:
    """Set each sample's label from its ``metadata.annotations``; returns (samples, number dropped).

    Pairwise samples keep the pushed order in ``metadata.annotation_orientation`` (``pushed`` or
    ``swapped``), so aggregating an already aggregated file again gives the same result."""
    if method not in METHODS:
        raise ConfigError(f"unknown aggregation method '{method}' (expected one of {', '.join(METHODS)})")
    if method == "dawid-skene" and kind == "ranking":
        raise ConfigError("dawid-skene aggregates pairwise choices and pointwise ratings, not rankings; use majority")
    anns = [s.metadata.get("annotations") or [] for s in samples]
    labels: list[Any] = []
    confidence: list[float | None] = [None] * len(samples)
    if kind == "pairwise":
        if method == "majority":
            labels = [majority_vote([r["label"] for r in a], tie_policy) for a in anns]
        else:
            post, _ = dawid_skene([{r["annotator"]: r["label"] for r in a} for a in anns], PAIR_LABELS)
            labels = [PAIR_LABELS[int(p.argmax())] for p in post]
            confidence = [round(float(p.max()), 6) for p in post]
    elif kind == "pointwise":
        attrs = list(spec.attributes) if spec else sorted({k for a in anns for r in a for k in r["scores"]})
        per_attr = {}
        for attr in attrs:
            if method == "majority":
                per_attr[attr] = [median_score([r["scores"][attr] for r in a]) for a in anns]
            else:
                classes = sorted({r["scores"][attr] for a in anns for r in a})
                post, _ = dawid_skene([{r["annotator"]: r["scores"][attr] for r in a} for a in anns], classes)
                per_attr[attr] = [float(classes[int(p.argmax())]) for p in post]
        labels = [{attr: per_attr[attr][i] for attr in attrs} for i in range(len(samples))]
    else:
        labels = [mean_ranks([r["ranks"] for r in a]) for a in anns]
    out, dropped = [], 0
    for s, a, label, conf in zip(samples, anns, labels, confidence):
        if label is None:
            dropped += 1
            continue
        summary = {"method": method, "annotators": len(a)}
        if kind == "pairwise":
            summary |= {"label": label, "votes": dict(Counter(r["label"] for r in a))}
            if conf is not None:
                summary["confidence"] = conf
            orientation = "swapped" if label == "second" else "pushed"
            new = _pair_sample(s, label, a)
        elif kind == "pointwise":
            scale = Scale(min=spec.scale[0], max=spec.scale[1]) if spec else s.scale
            new = s.model_copy(update={"scores": label, "scale": scale})
        else:
            new = s.model_copy(update={"ranks": label})
        meta = dict(s.metadata) | {"annotation": summary}
        if kind == "pairwise":
            meta["annotation_orientation"] = orientation
        new.metadata = meta
        out.append(Sample.model_validate(new.model_dump()))
    return out, dropped


def pull_project(client, title: str, kind: str | None = None, method: str = "majority",
                 tie_policy: str = "tie") -> tuple[list[Sample], dict]:
    """Export a project and convert it: (aggregated samples, counts)."""
    from rmforge.annotate.client import LabelStudioError, export_tasks, find_project, project_spec, user_emails

    project = find_project(client, title)
    if project is None:
        raise LabelStudioError(f"no project titled '{title}' on {getattr(client, 'rmforge_url', 'the server')}")
    spec = project_spec(project, kind)
    samples, counts = export_to_samples(export_tasks(client, project.id), spec, user_emails(client))
    samples, dropped = aggregate_samples(samples, spec.kind, method, tie_policy, spec)
    counts |= {"kind": spec.kind, "written": len(samples), "dropped_ties": dropped}
    return samples, counts
