"""`export_source(arch, task)`: one standalone Python file (torch alone) for an architecture.

The file holds: a header naming the architecture and task, the import lines torch and the standard
library need, the source of exactly the classes and helpers used (see `source.SourceBundle`), the
safetensors reader, a `Model` class and `build(weights=None)` with one readable constructor call
per node of the derivation tree (see `wiring.WiringWalker`).
"""
from __future__ import annotations

import ast
import re
import sys

from torch import nn

import einsearch
from einsearch.tasks import Task, TaskError, get_task
from einsearch.export import safetensors_io
from einsearch.export.source import ExportError, SourceBundle
from einsearch.export.wiring import Call, WiringWalker, recorded_call, render, targets
from einsearch.grammar import modules as M
from einsearch.grammar.checker import check
from einsearch.grammar.compact import compact
from einsearch.grammar.parser import parse
from einsearch.grammar.tree import Arch, to_text

# Names the generated part of the file defines; exported definitions never take them.
RESERVED = ("Model", "build", "ARCH", "TASK", "WEIGHTS", "os")
SAFE_ARCH_TEXT = re.compile(r"[A-Za-z0-9_(),.:=+\- ]*")
SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}")
COMMENT_WIDTH = 88


def _nn_name(target: object) -> str | None:
    name = getattr(target, "__name__", "")
    return f"nn.{name}" if isinstance(target, type) and getattr(nn, name, None) is target else None


def _header(arch: Arch, task: Task, params: int) -> str:
    text, spec = str(arch), task.spec
    if not SAFE_ARCH_TEXT.fullmatch(text):
        raise ExportError("the canonical architecture string has unexpected characters")
    if not spec.isprintable() or any(c in spec for c in "\\\"'"):
        raise ExportError(f"task spec {spec[:40]!r} has characters export does not write into a docstring")
    lines = [
        f"Standalone PyTorch model exported by einsearch {einsearch.__version__}; it needs torch alone.",
        "",
        f"Architecture: {text}",
        f"Compact:      {compact(arch)}",
        f"Task:         {spec}",
        f"Parameters:   {params:,}",
    ]
    try:
        example = task.example_input(1)
        lines.append(f"Input:        {tuple(example.shape[1:])} per example, {example.dtype}; "
                     f"output {tuple(task.output_shape(1)[1:])} per example")
    except NotImplementedError:
        pass
    lines += ["", "Usage:", "    model = build()                    # fresh weights",
              "    model = build(weights=PATH)        # a safetensors file, e.g. saved by einsearch"]
    return '"""' + "\n".join(lines) + '\n"""'


def _imports(statements: set[str]) -> str:
    def group(s: str) -> tuple[int, str]:
        root = s.split()[1].split(".")[0]
        return (0 if root == "__future__" else 2 if root == "torch" else 1), s.startswith("from"), s

    ordered = sorted(statements | {"from __future__ import annotations"}, key=group)
    out, previous = [], None
    for statement in ordered:
        if previous is not None and group(statement)[0] != previous:
            out.append("")
        out.append(statement)
        previous = group(statement)[0]
    return "\n".join(out)


def _block_comment(node) -> str:
    text = to_text(node)
    if not SAFE_ARCH_TEXT.fullmatch(text):
        raise ExportError("an architecture node has unexpected characters")
    return text if len(text) <= COMMENT_WIDTH else text[:COMMENT_WIDTH - 3] + "..."


def export_source(arch: Arch | str, task: Task | str, weights_file: str | None = None) -> str:
    """Python source of a standalone module for `arch` on `task`; raises ArchError / ExportError.

    `weights_file`: a file name next to the exported file; `build()` then loads it by default.
    """
    # Parsed again even when given an Arch: every name and value is checked against the registry.
    arch = parse(str(arch) if isinstance(arch, Arch) else arch)
    try:
        task = get_task(task)
    except TaskError as err:
        raise ExportError(str(err)) from None
    if weights_file is not None and not SAFE_FILE_NAME.fullmatch(weights_file):
        raise ExportError(f"weights file name {weights_file[:40]!r} must be a plain file name")
    report = check(arch, task)

    walker = WiringWalker(task, arch.dim)
    blocks = walker.block_calls(arch.root)
    stem, head = recorded_call(lambda: task.make_stem(arch.dim)), recorded_call(lambda: task.make_head(arch.dim))
    calls = [stem, head] + [call for _, call in blocks]

    extra = tuple({type_.target.__module__ for type_ in (stem, head)} - {"torch"})
    bundle = SourceBundle(reserved=RESERVED, extra_modules=extra)
    uses_nn = False
    # Blocks' classes first, then the net and the task's stem and head, then the weights reader.
    for target in {id(t): t for c in calls[2:] + calls[:2] for t in targets(c)}.values():
        if _nn_name(target):
            uses_nn = True
        else:
            bundle.add_object(target)
    first = [bundle.add_object(M.Net), bundle.add_object(safetensors_io.load_weights)]
    bundle.assign_names(first)  # the public names keep their own names
    if uses_nn:
        bundle.add_import("nn", "from torch import nn", nn)

    def name_of(target: object) -> str:
        return _nn_name(target) or bundle.name_of(target)

    statements = bundle.import_lines() | ({"import os"} if weights_file else set())
    parts = [_header(arch, task, report.params), "", _imports(statements), "", f"ARCH = {str(arch)!r}",
             f"TASK = {task.spec!r}"]
    if weights_file:
        parts.append(f"WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), {weights_file!r})")
    module, previous = None, None
    for definition in bundle.ordered():
        if definition.module != module:
            module, previous = definition.module, None
            parts += ["", "", f"# ---- from {module.replace('.', '/')}.py " + "-" * max(0, 70 - len(module))]
        constant = isinstance(definition.node, (ast.Assign, ast.AnnAssign))
        parts += ([] if constant and previous else ["", ""]) + [bundle.text_of(definition)]
        previous = constant
    parts += ["", "", _model_code(blocks, stem, head, name_of, bool(weights_file))]
    source = "\n".join(parts) + "\n"
    _check_output(source)
    return source


def _model_code(blocks: list, stem: Call, head: Call, name_of, with_weights: bool) -> str:
    lines = [f"class Model({name_of(M.Net)}):", '    """The architecture in ARCH for the task in TASK."""',
             "", "",
             f"def build(weights: str | None = {'WEIGHTS' if with_weights else 'None'}) -> Model:",
             '    """A Model with fresh weights, then the safetensors file `weights` loaded if given."""',
             "    model = Model(",
             f"        stem={render(stem, name_of, 8)},",
             "        blocks=["]
    for node, call in blocks:
        lines.append(f"            # {_block_comment(node)}")
        lines.append(f"            {render(call, name_of, 12)},")
    lines += ["        ],",
              f"        head={render(head, name_of, 8)},",
              "    )",
              "    if weights is not None:",
              f"        {name_of(safetensors_io.load_weights)}(model, weights)",
              "    return model"]
    return "\n".join(lines)


def _check_output(source: str) -> None:
    """The file must compile and import nothing but torch and the standard library."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ExportError(f"generated code does not parse: {err.msg} (line {err.lineno})") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                root = name.split(".")[0]
                if root != "torch" and root not in sys.stdlib_module_names:
                    raise ExportError(f"generated code would import {name}")
