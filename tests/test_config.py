"""Config loading: YAML + dotted overrides, unknown keys with suggestions, every shipped YAML validates."""

from pathlib import Path

import pytest
import yaml
from pydantic import Field

from rmforge.config import ConfigModel, apply_overrides, describe, dump_config, load_config, register_config
from rmforge.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


class Inner(ConfigModel):
    lr: float = 1e-3
    """Learning rate."""
    layers: list[int] = Field(default_factory=lambda: [1, 2])


@register_config("test-kind")
class Outer(ConfigModel):
    kind: str = "test-kind"
    name: str = "x"
    """Run name."""
    optim: Inner = Field(default_factory=Inner)
    steps: list[Inner] = Field(default_factory=list)


def test_overrides_parse_yaml_scalars_and_nest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: test-kind\nsteps: [{lr: 1}]\n")
    cfg = load_config(path, ["optim.lr=0.5", "name=run-1", "optim.layers=[3, 4]", "steps.0.lr=2"])
    assert cfg.optim.lr == 0.5 and cfg.name == "run-1" and cfg.optim.layers == [3, 4] and cfg.steps[0].lr == 2


def test_unknown_key_suggests_closest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: test-kind\noptim: {lrr: 1}\n")
    with pytest.raises(ConfigError, match=r"optim: unknown key 'lrr'; did you mean 'lr'\?"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown key 'nmae'; did you mean 'name'"):
        load_config(None, ["nmae=1"], cls=Outer)


def test_type_error_names_the_key():
    with pytest.raises(ConfigError, match=r"optim.lr: Input should be a valid number"):
        load_config(None, ["optim.lr=fast"], cls=Outer)


def test_bad_override_forms():
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides({"steps": [{}]}, ["steps.5.lr=1"])


def test_unknown_kind(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: test-knd\n")
    with pytest.raises(ConfigError, match="did you mean 'test-kind'"):
        load_config(path)


def test_dump_round_trip_and_docs():
    cfg = Outer(name="y")
    again = load_config(None, [], cls=Outer).model_validate(yaml.safe_load(dump_config(cfg)))
    assert again == cfg
    rows = {key: doc for key, _, doc in describe(Outer)}
    assert rows["optim.lr"] == "Learning rate." and rows["name"] == "Run name."


def shipped_yamls():
    return sorted(p for p in (REPO / "recipes").rglob("*.yaml")) + sorted((REPO / "src").rglob("*.yaml"))


@pytest.mark.parametrize("path", shipped_yamls(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_yaml_validates(path):
    import rmforge.data.recipe  # noqa: F401  (registers kind: data)

    cfg = load_config(path)
    assert cfg.kind == yaml.safe_load(path.read_text())["kind"]


def test_some_yaml_is_shipped():
    assert len(shipped_yamls()) >= 3


def test_overriding_one_key_keeps_a_sections_factory_defaults():
    """The quickstart's train section defaults to batch 16 / lr 1e-4 (not the class's 8 / 5e-5): one
    override in it must not reset the others (it did, and silently doubled the quickstart's steps)."""
    from rmforge.quickstart import QuickstartConfig

    base = load_config(None, [], cls=QuickstartConfig).train
    one = load_config(None, ["train.length_buckets=false"], cls=QuickstartConfig).train
    assert (one.batch_size, one.lr, one.length_buckets) == (base.batch_size, base.lr, False) == (16, 1e-4, False)
    assert load_config(None, ["train.batch_size=4"], cls=QuickstartConfig).train.batch_size == 4
