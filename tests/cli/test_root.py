"""The rmforge command itself: version, config show, models list."""

import subprocess
import sys

from typer.testing import CliRunner

from rmforge import __version__
from rmforge.cli import app

runner = CliRunner()


def test_version_via_console_script():
    out = subprocess.run([sys.executable, "-m", "rmforge", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"rmforge {__version__}"


def test_config_show_resolves_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("kind: data\nsources: [{path: x.jsonl}]\n")
    result = runner.invoke(app, ["config", "show", str(recipe), "seed=7", "split.validation=0.1"])
    assert result.exit_code == 0, result.output
    assert "seed: 7" in result.output and "validation: 0.1" in result.output
    assert "output_dir: out/data" in result.output  # defaults are filled in


def test_config_show_unknown_key_exit_1(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("kind: data\nsources: [{path: x.jsonl}]\n")
    result = runner.invoke(app, ["config", "show", str(recipe), "sed=7"])
    assert result.exit_code == 1
    assert "unknown key 'sed'; did you mean 'seed'?" in result.output


def test_models_list_shows_minilm():
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "minilm" in result.output
