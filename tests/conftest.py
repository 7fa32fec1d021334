import pytest
import torch
from typer.testing import CliRunner

from einsearch.cli import _load_commands, app

# Tests share a 2-core machine: one thread each keeps them predictable.
torch.set_num_threads(1)


class _Run:
    def __init__(self):
        _load_commands()
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict | None = None):
        return self.runner.invoke(app, list(args), env=env)


@pytest.fixture(scope="session")
def cli():
    return _Run()
