"""Training-data reading: ``data.limit`` keeps a seeded random subset (files are often grouped)."""

from rmforge.data.demo import demo_splits
from rmforge.data.io import write_samples
from rmforge.train.data import read_any


def test_limit_random_spans_the_file_and_is_seeded(tmp_path):
    train = demo_splits(seed=0)["train"]  # grouped by category
    write_samples(tmp_path / "train.jsonl", train)
    head = read_any(str(tmp_path / "train.jsonl"), limit=100, limit_order="head")
    assert [s.id for s in head] == [s.id for s in train[:100]]
    assert len({s.category for s in head}) == 1
    a = read_any(str(tmp_path / "train.jsonl"), limit=100, limit_order="random", seed=1)
    b = read_any(str(tmp_path / "train.jsonl"), limit=100, limit_order="random", seed=1)
    c = read_any(str(tmp_path / "train.jsonl"), limit=100, limit_order="random", seed=2)
    assert [s.id for s in a] == [s.id for s in b] != [s.id for s in c]
    assert len(a) == 100 and len({s.category for s in a}) == 7
    order = {s.id: i for i, s in enumerate(train)}
    assert [order[s.id] for s in a] == sorted(order[s.id] for s in a)  # file order kept
    assert len(read_any(str(tmp_path / "train.jsonl"), limit=10**6, limit_order="random")) == len(train)
