"""Tasks, training and executors that turn candidates into results."""
from einsearch.evaluators.task import Batch, Task, TaskError, get_task, list_tasks, register_task
from einsearch.evaluators.types import Candidate, Result

__all__ = ["Batch", "Candidate", "Result", "Task", "TaskError", "get_task", "list_tasks", "register_task"]
