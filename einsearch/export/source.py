"""Source extraction: the definitions a set of classes and functions needs, as one module's text.

Every module a root comes from is read with `ast`. A top-level statement that binds names (class,
def, assignment) is a `Definition`; its free names are resolved through that module's own
definitions and imports, transitively, so exactly what is used comes out. Imports of einsearch
(or of an extra module named by the caller, e.g. a user task's) are inlined; torch and standard
library imports are kept as import lines; anything else is an error. The registry's decorators
are dropped (the registry is not exported). Two definitions with the same name from different
modules are told apart by renaming the later one, references included.
"""
from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
from dataclasses import dataclass

from einsearch.errors import EinsearchError

INLINED_PACKAGE = "einsearch"
KEPT_PACKAGES = ("torch",)
# Decorators that only register things with einsearch, or add a compiled CPU fast path beside the
# PyTorch form (cpu_kernels.accelerated); exported code is the PyTorch form alone.
DROPPED_DECORATORS = {("einsearch.ops.registry", "register"), ("einsearch.tasks.base", "register_task"),
                      ("einsearch.ops.kernels.loader", "accelerated")}


class ExportError(EinsearchError, ValueError):
    """The architecture or task cannot be written out as standalone code. One line."""


@dataclass
class Definition:
    module: str
    name: str  # the first name it binds (the class or function name)
    node: ast.stmt
    names: tuple[str, ...]  # every top-level name it binds

    @property
    def key(self) -> tuple[str, str]:
        return self.module, self.name


@dataclass
class ModuleInfo:
    name: str
    lines: list[str]
    definitions: dict[str, Definition]  # every bound name -> its definition
    imports: dict[str, tuple[str, str | None, str]]  # alias -> (module, attribute or None, statement)
    order: dict[tuple[str, str], int]  # definition key -> position in the file


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def _imported_object(module: str, attribute: str | None) -> object:
    try:
        imported = importlib.import_module(module)
        if attribute is None:
            return imported
        return getattr(imported, attribute) if hasattr(imported, attribute) else \
            importlib.import_module(f"{module}.{attribute}")
    except ImportError as err:
        raise ExportError(f"cannot import {module}: {err}") from None


def _bound_names(node: ast.stmt) -> tuple[str, ...]:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return (node.name,)
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names: list[str] = []
    for target in targets:
        names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return tuple(names)


@functools.lru_cache(maxsize=None)
def load_module(name: str) -> ModuleInfo:
    """Parse module `name`'s source file into definitions and imports."""
    try:
        text = inspect.getsource(importlib.import_module(name))
    except (ImportError, OSError, TypeError) as err:
        raise ExportError(f"cannot read the source of module {name}: {err}") from None
    tree = ast.parse(text)
    info = ModuleInfo(name, text.splitlines(), {}, {}, {})
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                target = alias.name if alias.asname else bound
                statement = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                info.imports[bound] = (target, None, statement)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ExportError(f"{name}: relative imports are not supported by export")
            for alias in node.names:
                statement = f"from {node.module} import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                info.imports[alias.asname or alias.name] = (node.module, alias.name, statement)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign, ast.AnnAssign)):
            names = _bound_names(node)
            if names:
                definition = Definition(name, names[0], node, names)
                info.order[definition.key] = index
                for bound in names:
                    info.definitions[bound] = definition
    return info


def _annotation_ids(node: ast.AST) -> set[int]:
    """ids of the annotation subtrees (never evaluated under `from __future__ import annotations`)."""
    out: set[int] = set()
    for sub in ast.walk(node):
        parts = []
        if isinstance(sub, ast.arg):
            parts = [sub.annotation]
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts = [sub.returns]
        elif isinstance(sub, ast.AnnAssign):
            parts = [sub.annotation]
        for part in parts:
            if part is not None:
                out |= {id(n) for n in ast.walk(part)}
    return out


class SourceBundle:
    """Collects roots, resolves their dependencies, names them, and writes them out."""

    def __init__(self, reserved: tuple[str, ...] = (), extra_modules: tuple[str, ...] = ()):
        self.reserved = set(reserved)  # names the caller's own code defines
        self.extra_modules = set(extra_modules)
        self.defs: dict[tuple[str, str], Definition] = {}
        self.imports: dict[str, list[str]] = {}  # alias -> the import statements that bind it
        self._bound: dict[str, object] = {}  # alias -> the object it names
        self.names: dict[tuple[str, str], str] = {}  # definition key -> name in the output
        self.deps: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.dropped: dict[tuple[str, str], list[ast.expr]] = {}  # registry decorators left out
        self.op_names: dict[tuple[str, str], str] = {}  # name a dropped @register gave a class

    # ---- resolving -----------------------------------------------------------------------------
    def _inlined(self, module: str) -> bool:
        return module == INLINED_PACKAGE or module.startswith(INLINED_PACKAGE + ".") or module in self.extra_modules

    def _kept(self, module: str) -> bool:
        return _is_stdlib(module) or module.split(".")[0] in KEPT_PACKAGES

    def resolve(self, module: str, name: str, where: str) -> tuple[str, object] | None:
        """("def", Definition) | ("import", (alias, statement)) | None for builtins and locals."""
        info = load_module(module)
        if name in info.definitions:
            return "def", info.definitions[name]
        if name not in info.imports:
            return None
        target, attribute, statement = info.imports[name]
        if self._inlined(target):
            if attribute is None:
                raise ExportError(f"{where}: `{statement}` imports a whole module; export needs "
                                  f"`from {target} import NAME`")
            found = self.resolve(target, attribute, f"{target}.{attribute}")
            if found is None or found[0] != "def":
                raise ExportError(f"{where}: cannot find the definition of {target}.{attribute}")
            return found
        if self._kept(target):
            return "import", (name, statement, _imported_object(target, attribute))
        raise ExportError(f"{where}: `{statement}` needs a package other than torch")

    def add(self, module: str, name: str) -> Definition:
        """Add module.name (a top-level class, function or constant) and what it uses."""
        found = self.resolve(module, name, f"{module}.{name}")
        if found is None or found[0] != "def":
            raise ExportError(f"{module}.{name} is not a top-level definition")
        definition = found[1]
        stack = [definition]
        while stack:
            current = stack.pop()
            if current.key in self.defs:
                continue
            self.defs[current.key] = current
            self.deps[current.key] = []
            for kind, value in self._uses(current):
                if kind == "def":
                    self.deps[current.key].append(value.key)
                    stack.append(value)
                else:
                    self.add_import(*value)
        return definition

    def add_object(self, obj: object) -> Definition:
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
        if not module or "." in qualname or "<" in qualname:
            raise ExportError(f"{obj!r} is not a top-level class or function of a module")
        return self.add(module, qualname)

    def add_import(self, alias: str, statement: str, obj: object) -> None:
        """Keep an import line; two lines may bind one name only to the same object."""
        if alias in self.imports and self._bound[alias] is not obj:
            raise ExportError(f"two modules bind {alias!r} differently: `{self.imports[alias][0]}` "
                              f"and `{statement}`")
        self._bound[alias] = obj
        if statement not in self.imports.setdefault(alias, []):
            self.imports[alias].append(statement)

    def import_lines(self) -> set[str]:
        return {line for lines in self.imports.values() for line in lines}

    def _dropped_ids(self, definition: Definition) -> set[int]:
        """Finds the registry decorators of a definition; ids of their subtrees."""
        key, node = definition.key, definition.node
        if key not in self.dropped:
            self.dropped[key] = []
            for dec in getattr(node, "decorator_list", []):
                func = dec.func if isinstance(dec, ast.Call) else dec
                found = self.resolve(definition.module, func.id, key[1]) if isinstance(func, ast.Name) else None
                if found and found[0] == "def" and found[1].key in DROPPED_DECORATORS:
                    self.dropped[key].append(dec)
                    if isinstance(dec, ast.Call) and dec.args and isinstance(dec.args[0], ast.Constant):
                        self.op_names[key] = str(dec.args[0].value)
        return {id(n) for dec in self.dropped[key] for n in ast.walk(dec)}

    def _uses(self, definition: Definition) -> list[tuple[str, object]]:
        """Resolved free names of a definition; drops (and records) registry decorators."""
        node, where = definition.node, f"{definition.module}.{definition.name}"
        skip = _annotation_ids(node) | self._dropped_ids(definition)
        uses: list[tuple[str, object]] = []
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)) and id(sub) not in skip:
                module = sub.module if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                if not self._kept(module or ""):
                    raise ExportError(f"{where}: imports {module} inside a function; export needs torch alone")
            if isinstance(sub, ast.Name) and id(sub) not in skip and sub.id not in definition.names:
                found = self.resolve(definition.module, sub.id, where)
                if found is not None:
                    uses.append(found)
        return uses

    # ---- naming and writing --------------------------------------------------------------------
    def _module_order(self) -> list[str]:
        """Modules in dependency order (a module after every module it uses)."""
        order: list[str] = []
        state: dict[str, int] = {}
        module_deps: dict[str, set[str]] = {}
        for key, deps in self.deps.items():
            module_deps.setdefault(key[0], set()).update(d[0] for d in deps if d[0] != key[0])

        first_seen = list(dict.fromkeys(key[0] for key in self.defs))

        def visit(module: str) -> None:
            if state.get(module) == 2:
                return
            if state.get(module) == 1:
                raise ExportError(f"modules depend on each other in a cycle through {module}")
            state[module] = 1
            for dep in sorted(module_deps.get(module, ()), key=first_seen.index):
                visit(dep)
            state[module] = 2
            order.append(module)

        for module in dict.fromkeys(key[0] for key in self.defs):  # first added, first written
            visit(module)
        return order

    def ordered(self) -> list[Definition]:
        out = []
        for module in self._module_order():
            info = load_module(module)
            out += sorted((d for d in self.defs.values() if d.module == module), key=lambda d: info.order[d.key])
        return out

    def assign_names(self, first: tuple[Definition, ...] | list[Definition] = ()) -> None:
        """Output names: a definition keeps its own names unless an earlier one (or a reserved
        name, or an import alias) took them; then it gets a suffix from its module's name."""
        taken = set(self.reserved) | set(self.imports)
        first_keys = {d.key for d in first}
        for definition in list(first) + [d for d in self.ordered() if d.key not in first_keys]:
            if definition.key in self.names:
                continue
            if len(definition.names) > 1 and any(n in taken for n in definition.names):
                raise ExportError(f"{definition.module}: a multi-name assignment of "
                                  f"{', '.join(definition.names)} collides with another definition")
            name = definition.name
            if name in taken:
                name = f"{name}_{definition.module.rsplit('.', 1)[-1]}"
                while name in taken:
                    name += "_"
            self.names[definition.key] = name
            taken |= {name} | set(definition.names[1:])

    def name_of(self, obj_or_def: object) -> str:
        definition = obj_or_def if isinstance(obj_or_def, Definition) else self.add_object(obj_or_def)
        return self.names[definition.key]

    def text_of(self, definition: Definition) -> str:
        """The definition's source lines, dropped decorators removed, names rewritten."""
        info, node = load_module(definition.module), definition.node
        skip = self._dropped_ids(definition)
        renames: dict[str, str] = {}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and id(sub) not in skip:
                found = self.resolve(definition.module, sub.id, definition.name)
                if found and found[0] == "def" and found[1].key in self.names:
                    if self.names[found[1].key] != sub.id:
                        renames[sub.id] = self.names[found[1].key]
        own = self.names[definition.key]
        if own != definition.name:
            renames[definition.name] = own
        dropped = self.dropped[definition.key]
        kept = [d for d in getattr(node, "decorator_list", []) if all(d is not x for x in dropped)]
        first_line = min([node.lineno] + [d.lineno for d in kept])
        dropped_lines = set()
        for dec in dropped:
            dropped_lines |= set(range(dec.lineno, dec.end_lineno + 1))
        lines = [line for i, line in enumerate(info.lines[first_line - 1:node.end_lineno], start=first_line)
                 if i not in dropped_lines]
        text = "\n".join(lines)
        if renames:
            text = _rename(text, renames, f"{definition.module}.{definition.name}", first_line,
                           node, dropped_lines, skip)
        if definition.key in self.op_names:
            text += f"\n\n\n{own}.op_name = {self.op_names[definition.key]!r}"
        return text


def _rename(text: str, renames: dict[str, str], where: str, first_line: int, node: ast.stmt,
            dropped_lines: set[int], skip: set[int]) -> str:
    """Rewrite references (ast Name nodes and the def/class name) per `renames`, in place. An f-string
    holding a renamed name is written again whole (`ast.unparse`): positions inside f-strings are not
    reliable before Python 3.12."""
    local = set()
    for sub in ast.walk(node):
        if id(sub) in skip:
            continue
        if isinstance(sub, ast.arg) or (isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) and sub is not node):
            local.add(sub.arg if isinstance(sub, ast.arg) else sub.id)
    own_targets = set(_bound_names(node)) if isinstance(node, (ast.Assign, ast.AnnAssign)) else set()
    clash = (local - own_targets) & set(renames)
    if clash:
        raise ExportError(f"{where}: cannot rename {sorted(clash)[0]!r}, it is also a local name")
    raw = text.splitlines()
    line_numbers = [i for i in range(first_line, node.end_lineno + 1) if i not in dropped_lines]
    index_of = {number: k for k, number in enumerate(line_numbers)}
    starts = [0]
    for line in raw:
        starts.append(starts[-1] + len(line) + 1)

    def offset(lineno: int, col_bytes: int) -> int:
        """(line, UTF-8 byte column) in the original file -> character offset in `text`."""
        if lineno not in index_of:
            raise ExportError(f"{where}: a name to rename sits on a dropped decorator line")
        k = index_of[lineno]
        return starts[k] + len(raw[k].encode()[:col_bytes].decode())

    def renamed(sub: ast.AST) -> bool:
        return isinstance(sub, ast.Name) and sub.id in renames and id(sub) not in skip

    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) as character offsets in `text`
    covered: set[int] = set()  # nodes inside an f-string written again whole
    for sub in ast.walk(node):  # breadth first: an outer f-string comes before the ones inside it
        if isinstance(sub, ast.JoinedStr) and id(sub) not in skip | covered and any(map(renamed, ast.walk(sub))):
            copy = ast.parse(ast.unparse(sub), mode="eval").body
            for name in ast.walk(copy):
                if isinstance(name, ast.Name) and name.id in renames:
                    name.id = renames[name.id]
            edits.append((offset(sub.lineno, sub.col_offset), offset(sub.end_lineno, sub.end_col_offset),
                          ast.unparse(copy)))
            covered |= {id(n) for n in ast.walk(sub)}
    for sub in ast.walk(node):
        if renamed(sub) and id(sub) not in covered:
            start = offset(sub.lineno, sub.col_offset)
            edits.append((start, start + len(sub.id), renames[sub.id]))
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in renames:
        k = index_of[node.lineno]
        keyword = "class " if isinstance(node, ast.ClassDef) else "def "
        start = starts[k] + raw[k].index(keyword + node.name) + len(keyword)
        edits.append((start, start + len(node.name), renames[node.name]))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text
