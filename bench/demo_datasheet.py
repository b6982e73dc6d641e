"""Print the numbers of docs/demo-dataset.md (composition, error types, cue table, split) for a seed.

    python bench/demo_datasheet.py [--seed 0] [--pairs 2400]

Not a benchmark of speed: it regenerates the datasheet's tables whenever the generator changes.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

from rmforge.data.demo import DEMO_VERSION, demo_splits, generate_demo, shortcut_report, template_splits

CUES = ("contains_digit", "ends_with_period", "starts_with_I", "contains_sorry", "contains_cant")


def _cue_cells(row: dict) -> str:
    return " | ".join(f"{row['cues'][c]['accuracy']:.2f} ({row['cues'][c]['chosen']:.2f}/{row['cues'][c]['rejected']:.2f})"
                      for c in CUES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=2400)
    args = ap.parse_args()
    demo = generate_demo(args.pairs, seed=args.seed)
    splits = demo_splits(seed=args.seed, n_pairs=args.pairs)
    tsplit = template_splits(args.seed)
    print(f"demo v{DEMO_VERSION}, seed {args.seed}, {len(demo)} pairs\n")
    print("| category | pairs | train | test | templates (in test) |\n|---|---|---|---|---|")
    per = {name: Counter(s.category for s in rows) for name, rows in splits.items()}
    cats = sorted({s.category for s in demo}, key=[s.category for s in demo].index)
    for cat in cats:
        tpls = [k for k in tsplit if k.startswith(cat + "/")]
        n_test = sum(tsplit[k] == "test" for k in tpls)
        print(f"| {cat} | {per['train'][cat] + per['test'][cat]} | {per['train'][cat]} | {per['test'][cat]} | "
              f"{len(tpls)} ({n_test}) |")
    print("\ntest templates:")
    for cat in cats:
        print(f"- {cat}: " + ", ".join(f"`{k.split('/')[1]}`" for k, v in tsplit.items()
                                         if v == "test" and k.startswith(cat + "/")))
    types, errors, shares = Counter(), Counter(), defaultdict(Counter)
    for s in demo:
        et = s.metadata.get("error_type")
        if et:
            types[et] += 1
            shares[s.category][et] += 1
            if et == "contradiction":
                errors[s.metadata.get("error")] += 1
    print(f"\nerror types: {dict(types)}\ncontradiction errors: {dict(errors.most_common())}")
    print("copied_wrong share: " + ", ".join(f"{c} {v['copied_wrong'] / sum(v.values()):.2f}" for c, v in shares.items()))
    rep = shortcut_report(demo)
    print("\n| category | longer wins | shorter wins | ties | " + " | ".join(CUES) + " |")
    print("|---" * (4 + len(CUES)) + "|")
    for cat, row in list(rep["per_category"].items()) + [("**overall**", rep["overall"])]:
        print(f"| {cat} | {row['longer_wins']:.3f} | {row['shorter_wins']:.3f} | {row['ties']:.2f} | {_cue_cells(row)} |")
    print("\n| split | pairs | longer wins | shorter wins | cue accuracies |\n|---|---|---|---|---|")
    for name, rows in splits.items():
        r = shortcut_report(rows)["overall"]
        accs = [r["cues"][c]["accuracy"] for c in CUES]
        print(f"| {name} | {r['n']} | {r['longer_wins']:.3f} | {r['shorter_wins']:.3f} | "
              f"{min(accs):.2f} to {max(accs):.2f} |")


if __name__ == "__main__":
    main()
