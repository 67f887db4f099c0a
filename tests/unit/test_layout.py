"""The project's shape: every top-level package imports, and the `fusion` CLI answers."""

from __future__ import annotations

import importlib

import pytest
from click.testing import CliRunner

from cli.main import fusion


@pytest.mark.parametrize("name", ["specs", "units", "host", "orchestrator", "lab", "cli", "common"])
def test_package_imports(name: str) -> None:
    importlib.import_module(name)


def test_fusion_help_and_version() -> None:
    runner = CliRunner()
    assert runner.invoke(fusion, ["--help"]).exit_code == 0
    result = runner.invoke(fusion, ["--version"])
    assert result.exit_code == 0
    assert "fusion, version" in result.output


def test_lazy_command_table_matches_the_modules() -> None:
    """cli.main.COMMANDS names exactly the commands each package's cli.py defines."""
    from cli.main import COMMAND_MODULES, COMMANDS

    defined = {
        command.name: module
        for module in COMMAND_MODULES
        for command in importlib.import_module(module).commands
    }
    assert defined == COMMANDS
