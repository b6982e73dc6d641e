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


# ---------------------------------------------------------------- bad configs: one line each (issue 16)

@pytest.mark.parametrize("text, message", [
    ("kind: test-kind\nname: [a\n", r"^{path}, line 3, column 1: invalid YAML: expected ',' or '\]', but got "
                                     r"'<stream end>'; while parsing a flow sequence$"),
    ("kind: test-kind\n\tname: a\n", r"^{path}, line 2, column 1: invalid YAML: found character '\\t' that cannot "
                                     r"start any token; while scanning for the next token$"),
    ("kind: [test-kind]\n", r"^{path}: 'kind' must be one of .*\(got \['test-kind'\]\); did you mean 'test-kind'\?$"),
    ("kind: test-kind\noptim: {lr: x, layers: y}\n",
     r"^{path}: optim.lr: Input should be a valid number, unable to parse string as a number \(and 1 more: "
     r"optim.layers: Input should be a valid list\)$"),
])
def test_config_errors_are_one_line(tmp_path, text, message):
    import re

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "\n" not in str(exc.value) and re.match(message.format(path=re.escape(str(path))), str(exc.value))


def test_unreadable_recipe_files(tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"kind: test-kind\nname: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid UTF-8 at byte 25 \(line 2\)$"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r": is a folder, not a YAML file$"):
        load_config(tmp_path)
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfkind: test-kind\nname: y\n")
    assert load_config(tmp_path / "bom.yaml").name == "y"


def test_override_into_a_scalar_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^override key 'name.first': 'name' is a string, not a section$"):
        load_config(None, ["name=x", "name.first=y"], cls=Outer)
    with pytest.raises(ConfigError, match=r"^override key 'optim.lr.x': 'optim.lr' is a number, not a section$"):
        load_config(None, ["optim.lr=1", "optim.lr.x.y=2"], cls=Outer)


def test_recipe_of_another_kind(tmp_path):
    from rmforge.data.recipe import DataRecipe

    path = tmp_path / "c.yaml"
    path.write_text("kind: test-kind\n")
    with pytest.raises(ConfigError, match=r"c.yaml: this is a 'kind: test-kind' recipe; this command reads "
                                          r"'kind: data' recipes$"):
        load_config(path, cls=DataRecipe)
