"""Exported files, imported in a fresh interpreter where einsearch cannot be imported, give the same
state_dict keys and shapes and the same outputs (<= 1e-6) as `einsearch.build` for the same weights."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

import einsearch
from einsearch import build, parse
from einsearch.tasks import get_task
from einsearch.export import export_source
from einsearch.ops import list_ops
from tests.export.cases import STRUCTURE, primitive_cases, sampled_cases

TOLERANCE = 1e-6

# Runs with `python -I -S`: no site-packages processing (so no editable install of einsearch), no
# environment variables, no script directory on sys.path; torch's directory is added by hand.
FRESH_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    sys.path.append(sys.argv[1])
    if importlib.util.find_spec("einsearch") is not None:
        raise SystemExit("einsearch is importable in the fresh interpreter")
    import torch
    torch.set_num_threads(1)
    work, count = sys.argv[2], int(sys.argv[3])
    for i in range(count):
        spec = importlib.util.spec_from_file_location(f"exported_{i}", f"{work}/model_{i}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.build(weights=f"{work}/weights_{i}.safetensors").eval()
        x = module.read_safetensors(f"{work}/input_{i}.safetensors")["x"]
        with torch.no_grad():
            torch.save(model(x), f"{work}/output_{i}.pt")
    print("done", count)
""")


def _exec(source: str) -> dict:
    namespace: dict = {"__name__": "exported"}
    exec(compile(source, "exported.py", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def cases() -> list[tuple[str, str]]:
    return primitive_cases() + STRUCTURE + sampled_cases(16, seed=11)


def test_cases_cover_every_node_kind(cases):
    kinds = {node.kind for arch, _ in cases for node in parse(arch).root.walk()}
    places = {node.args[0] for arch, _ in cases for node in parse(arch).root.walk() if node.kind == "block"}
    assert kinds >= {"net", "repeat", "block", "op", "parallel", "compose", "seq", "branch", "split", "attend",
                     "permute", "linear", "conv", "act", "fnorm", "shift", "identity"}
    assert places == {"pre", "post", "sandwich", "mixln", "none"}


def test_cases_cover_every_primitive_in_every_mode(cases):
    covered = {(name, task) for arch, task in cases for name in parse(arch).ops()}
    for spec in list_ops():
        if spec.causal:
            assert (spec.name, "toy-causal:vocab=16,seq=16") in covered, spec.name
        if spec.noncausal:
            assert (spec.name, "toy-classify:vocab=16,seq=16") in covered, spec.name


def test_fresh_interpreter_outputs_match_build(cases, tmp_path, monkeypatch):
    # exported code is the PyTorch form; the built model runs it too (not the CPU kernels, which
    # agree with it to rounding: tests/ops), so that the two must agree to TOLERANCE
    monkeypatch.setenv("EINSEARCH_CPU_KERNELS", "0")
    torch.manual_seed(0)
    expected = []
    for i, (arch, task) in enumerate(cases):
        source = export_source(arch, task)
        reference = build(arch, task).eval()
        exported = _exec(source)["build"]()
        ref_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in exported.state_dict().items()} == ref_shapes, arch
        (tmp_path / f"model_{i}.py").write_text(source)
        save_file({k: v.contiguous().clone() for k, v in reference.state_dict().items()},
                  str(tmp_path / f"weights_{i}.safetensors"))
        x = get_task(task).example_input(2)
        save_file({"x": x}, str(tmp_path / f"input_{i}.safetensors"))
        with torch.no_grad():
            expected.append(reference(x))
    torch_dir = os.path.dirname(os.path.dirname(torch.__file__))
    assert not os.path.exists(os.path.join(torch_dir, "einsearch")), "einsearch must not sit beside torch"
    script = tmp_path / "run_exported.py"
    script.write_text(FRESH_SCRIPT)
    done = subprocess.run([sys.executable, "-I", "-S", str(script), torch_dir, str(tmp_path), str(len(cases))],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for i, (arch, task) in enumerate(cases):
        got = torch.load(tmp_path / f"output_{i}.pt", weights_only=True)
        assert got.shape == expected[i].shape, arch
        assert (got - expected[i]).abs().max().item() <= TOLERANCE, f"{arch} on {task}"


def test_fresh_interpreter_cannot_import_einsearch(tmp_path):
    """The check the equivalence test relies on: the isolated interpreter really lacks einsearch."""
    torch_dir = os.path.dirname(os.path.dirname(torch.__file__))
    probe = "import sys; sys.path.append(sys.argv[1]); import torch; import einsearch"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, torch_dir], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "No module named 'einsearch'" in done.stderr
    assert einsearch.__version__  # while this process has it
