"""The task registry: tasks by name, and task specs resolved into `Task` instances.

A task is a `Task` subclass registered by name; a user task is one file:

    @register_task("my-task")
    class MyTask(Task): ...

or `--task my_module:make_task` for a factory in an importable module. Specs take parameters by
name: `toy-causal:vocab=128,seq=64`.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from einsearch.tasks.base import Task, TaskError

_TASKS: dict[str, type[Task]] = {}
_LOADED = False
# The modules whose `@register_task` classes are the built-in tasks: a new task is one file plus one
# line here. Imported on first lookup, so that naming a task never costs more than the registry.
BUILTIN_TASK_MODULES = (
    "einsearch.tasks.toy",
    "einsearch.tasks.mqar",
    "einsearch.tasks.mad",
    "einsearch.tasks.lm",
    "einsearch.tasks.image",
    "einsearch.tasks.icl_regression",
)


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    def wrap(cls: type[Task]) -> type[Task]:
        cls.name = name
        _TASKS[name] = cls
        return cls

    return wrap


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in BUILTIN_TASK_MODULES:
            importlib.import_module(module)


def list_tasks() -> list[type[Task]]:
    _load_all()
    return [_TASKS[k] for k in sorted(_TASKS)]


def _convert(value: str, like: Any, where: str) -> Any:
    try:
        if isinstance(like, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        return type(like)(value) if like is not None else value
    except ValueError:
        raise TaskError(f"{where}: {value!r} is not a valid {type(like).__name__}") from None


def get_task(spec: str | Task, *, allow_factory: bool = True) -> Task:
    """Parse 'name', 'name:key=value,...' or 'module:factory' into a Task instance.

    A 'module:factory' spec imports and calls code, so it is only for specs a user typed: pass
    `allow_factory=False` for a spec read from data (a database, a file someone else can write),
    and such a spec is refused with a TaskError before anything is imported."""
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        raise TaskError(f"a task spec is a string, got {type(spec).__name__}")
    _load_all()
    name, _, rest = spec.strip().partition(":")
    if name not in _TASKS:
        if rest and "=" not in rest and rest.isidentifier():
            if not allow_factory:
                raise TaskError(f"task {spec.strip()[:80]!r} is not a registered task; a module:factory spec "
                                f"is imported only when typed on the command line (--task)")
            return _from_factory(name, rest)
        known = ", ".join(sorted(_TASKS))
        raise TaskError(f"unknown task {name!r} (known: {known})")
    cls = _TASKS[name]
    if hasattr(cls, "from_spec"):
        return cls.from_spec(rest)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise TaskError(f"task {name}: expected key=value, got {item!r}")
        if key not in fields:
            raise TaskError(f"task {name} has no parameter {key!r} (has: {', '.join(fields)})")
        kwargs[key] = _convert(value, fields[key].default, f"task {name}, parameter {key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise TaskError(f"task {name}: {err}") from None


def _from_factory(module: str, factory: str) -> Task:
    where = f"task {module}:{factory}"
    try:
        target = getattr(importlib.import_module(module), factory)
    except (ImportError, AttributeError) as err:
        raise TaskError(f"{where}: {err}") from None
    if not callable(target):
        raise TaskError(f"{where}: {module}.{factory} is a {type(target).__name__}, not a function or class "
                        f"that makes a Task")
    try:
        task = target()
    except TaskError:
        raise
    except Exception as err:  # the user's factory failed: one line naming it
        raise TaskError(f"{where}: calling it raised {type(err).__name__}: {err}") from None
    if not isinstance(task, Task):
        raise TaskError(f"{where} returned a value of type {type(task).__name__}, not a Task")
    return task
