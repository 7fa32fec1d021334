"""`einsearch export`: from an architecture string, from the store (with weights), and bad input."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from typer.testing import CliRunner

from einsearch import build, parse
from einsearch.cli import _load_commands, app
from einsearch.tasks import get_task
from einsearch.storage import Store

TASK = "toy-causal:vocab=16,seq=16"
ARCH = "net(32, block(pre:rms, short_conv()), block(pre:rms, glu()))"


@pytest.fixture(scope="module")
def cli():
    _load_commands()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["export", *args])


def _import(path) -> object:
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stored(tmp_path):
    """A database with one finished evaluation of ARCH and its saved weights; (url, eval id, state)."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    torch.manual_seed(0)
    state = build(ARCH, TASK).state_dict()
    with Store.open(url) as store:
        eval_id = store.start_evaluation(None, {"arch": parse(ARCH), "task": TASK, "steps": 5, "seed": 0})
        store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "accuracy", "metric": 0.5})
        store.save_weights(eval_id, state)
    return url, eval_id, state


def _assert_one_line_error(result) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_export_from_an_architecture_string(cli, tmp_path):
    out = tmp_path / "model.py"
    result = cli("--arch", ARCH, "--task", TASK, "-o", str(out))
    assert result.exit_code == 0, result.output
    model = _import(out).build()
    assert set(model.state_dict()) == set(build(ARCH, TASK).state_dict())


def test_export_from_the_store_with_weights(cli, stored, tmp_path):
    url, eval_id, state = stored
    out = tmp_path / "out" / "best.py"
    out.parent.mkdir()
    result = cli(f"e{eval_id}", "-o", str(out), "--weights", "--db", url)
    assert result.exit_code == 0, result.output
    assert (out.parent / "best.safetensors").is_file()
    exported = _import(out).build().eval()  # loads best.safetensors by default
    reference = build(ARCH, TASK).eval()
    reference.load_state_dict(state)
    x = get_task(TASK).example_input(2)
    with torch.no_grad():
        assert (exported(x) - reference(x)).abs().max().item() <= 1e-6


def test_export_by_architecture_hash(cli, stored, tmp_path):
    url, _, _ = stored
    out = tmp_path / "by_hash.py"
    result = cli(parse(ARCH).hash[:8], "-o", str(out), "--db", url)
    assert result.exit_code == 0, result.output
    assert _import(out).TASK == TASK


def test_bad_input_is_one_line_and_exit_2(cli, stored, tmp_path):
    url, eval_id, _ = stored
    out = str(tmp_path / "m.py")
    _assert_one_line_error(cli("e999", "-o", out, "--db", url))  # unknown id
    _assert_one_line_error(cli("--arch", "net(32, block(pre:rms, nope()))", "--task", TASK, "-o", out))
    _assert_one_line_error(cli("--arch", "net(32, block(pre:rms, glu())", "--task", TASK, "-o", out))
    _assert_one_line_error(cli("--arch", ARCH, "--task", "no-such-task", "-o", out))
    _assert_one_line_error(cli("--arch", ARCH, "-o", out))  # --arch without --task
    _assert_one_line_error(cli("-o", out))  # neither ID nor --arch
    _assert_one_line_error(cli("--arch", ARCH, "--task", TASK, "-o", str(tmp_path / "missing" / "m.py")))
    _assert_one_line_error(cli("--arch", ARCH, "--task", TASK, "-o", str(tmp_path)))  # a directory
    _assert_one_line_error(cli("--arch", ARCH, "--task", TASK, "-o", "/proc/einsearch-export.py"))  # unwritable
    _assert_one_line_error(cli("e1", "-o", out, "--db", f"sqlite:///{tmp_path / 'none.db'}"))  # no database


def test_corrupted_weights_are_one_line_and_exit_2(cli, stored, tmp_path):
    url, eval_id, _ = stored
    with Store.open(url) as store:
        path = store.weights_path(eval_id)
    path.write_bytes(path.read_bytes()[:-16])
    result = cli(f"e{eval_id}", "-o", str(tmp_path / "m.py"), "--weights", "--db", url)
    _assert_one_line_error(result)
    assert "corrupted" in result.stderr


def test_stored_factory_task_is_not_imported_unless_asked(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'plugin.db'}"
    with Store.open(url) as store:
        eval_id = store.start_evaluation(None, {"arch": parse(ARCH), "task": "no_such_plugin_module:make",
                                                "steps": 5, "seed": 0})
        store.finish_evaluation(eval_id, {"status": "ok", "metric_name": "accuracy", "metric": 0.5})
    result = cli(f"e{eval_id}", "-o", str(tmp_path / "m.py"), "--db", url)
    _assert_one_line_error(result)
    assert "not a registered task" in result.stderr
