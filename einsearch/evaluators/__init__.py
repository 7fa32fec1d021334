"""Tasks, training and executors that turn candidates into results."""
from einsearch.evaluators.task import Batch, Task, TaskError, get_task, list_tasks, register_task

__all__ = ["Batch", "Task", "TaskError", "get_task", "list_tasks", "register_task"]
