"""Tasks: data, stem, head, loss and metric of each problem a candidate is trained on, by name."""
from einsearch.tasks.base import (Batch, PooledHead, Recipe, SequenceHead, Task, TaskError, TokenSequenceTask,
                                  TokenStem)
from einsearch.tasks.registry import get_task, list_tasks, register_task

__all__ = ["Batch", "PooledHead", "Recipe", "SequenceHead", "Task", "TaskError", "TokenSequenceTask", "TokenStem",
           "get_task", "list_tasks", "register_task"]
