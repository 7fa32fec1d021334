"""export_source: the file's contents, and what it refuses to write."""
from __future__ import annotations

import ast
import math

import pytest

from einsearch import ArchError, parse
from einsearch.export import ExportError, export_source
from einsearch.export.wiring import literal
from einsearch.grammar.compact import compact
from einsearch.grammar.tree import Arch, Node
from einsearch.ops import get_op
from tests.export.cases import CAUSAL, NONCAUSAL, primitive_cases

GLU_ARCH = "net(32, block(pre:rms, glu()))"


def _imports(source: str) -> list[str]:
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append(node.module)
    return out


def _classes(source: str) -> set[str]:
    return {n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}


def test_header_model_and_build():
    source = export_source(GLU_ARCH, CAUSAL)
    canonical = str(parse(GLU_ARCH))
    doc = ast.get_docstring(ast.parse(source))
    assert f"Architecture: {canonical}" in doc and f"Task:         {CAUSAL}" in doc
    assert f"Compact:      {compact(parse(GLU_ARCH))}" in doc
    assert f"ARCH = {canonical!r}" in source and f"TASK = {CAUSAL!r}" in source
    assert "def build(weights: str | None = None) -> Model:" in source and "class Model(Net):" in source
    assert "Block(GLU(dim=32, causal=True, expand=4, act='swish'), 32, 'pre', 'rms')" in source


def test_only_the_classes_used_are_written():
    source = export_source(GLU_ARCH, CAUSAL)
    # Context and ContextConsumer: Net's cross-layer context (einsearch.ops.context)
    assert _classes(source) == {"GLU", "Block", "Net", "Model", "RMSNorm", "TokenStem", "SequenceHead",
                                "Context", "ContextConsumer"}
    classify = export_source(GLU_ARCH, NONCAUSAL)
    assert "PooledHead" in _classes(classify) and "SequenceHead" not in _classes(classify)


@pytest.mark.parametrize("arch,task", primitive_cases())
def test_every_primitive_exports_to_torch_only_code(arch, task):
    source = export_source(arch, task)
    compile(source, "exported.py", "exec")
    assert all(name.split(".")[0] in ("__future__", "torch", "json", "math", "sys", "os", "typing",
                                      "functools", "dataclasses", "itertools")
               for name in _imports(source)), _imports(source)
    name = parse(arch).ops()[0]
    assert f"class {get_op(name).cls.__name__}(" in source


def test_weights_file_becomes_builds_default():
    source = export_source(GLU_ARCH, CAUSAL, weights_file="model.safetensors")
    assert "WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'model.safetensors')" in source
    assert "def build(weights: str | None = WEIGHTS) -> Model:" in source
    for bad in ("../model.safetensors", "a'b.safetensors", "x\ny"):
        with pytest.raises(ExportError):
            export_source(GLU_ARCH, CAUSAL, weights_file=bad)


def test_injected_hyperparameter_is_refused_before_any_code():
    spec = get_op("glu")
    evil = Node("op", ("glu", (("expand", 4), ("act", "swish'); import os; os.system('true"))))
    arch = Arch(Node("net", (32,), (Node("block", ("pre", "rms"), (evil,)),)))
    with pytest.raises(ArchError):
        export_source(arch, CAUSAL)
    bad_place = Arch(Node("net", (32,), (Node("block", ("pre'", "rms"), (Node("op", ("glu", ())),)),)))
    with pytest.raises(ArchError):
        export_source(bad_place, CAUSAL)
    assert "swish" in spec.hparams["act"]


def test_unknown_primitive_and_task_are_refused():
    with pytest.raises(ArchError, match="unknown primitive"):
        export_source("net(32, block(pre:rms, no_such_op()))", CAUSAL)
    with pytest.raises(ExportError, match="unknown task"):
        export_source(GLU_ARCH, "no-such-task")


def test_literal_accepts_only_safe_constants():
    assert [literal(v).text for v in (3, 0.5, True, None, "swish", (1, 2))] == \
        ["3", "0.5", "True", "None", "'swish'", "(1, 2)"]
    for bad in ("a b", "x'", "", math.nan, math.inf, object(), [1], b"x", "a" * 65):
        with pytest.raises(ExportError):
            literal(bad)
