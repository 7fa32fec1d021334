"""What the search hands an executor (`Candidate`) and what it gets back (`Result`)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the grammar imports the evaluators' task module: import it lazily here
    from einsearch.grammar import Arch


@dataclass(frozen=True)
class Candidate:
    """One architecture to train on one task for `steps` steps with training seed `seed`.

    `arch` may be given as a canonical string or an `Arch`; it is stored as an `Arch` (parsed once),
    so `candidate.arch.hash` and `str(candidate.arch)` both work."""

    arch: Arch
    task: str  # task spec
    steps: int  # training steps: the fidelity
    seed: int = 0
    parents: tuple[str, ...] = ()  # arch hashes of the parents
    op: str | None = None  # how it was made: seed, sample, mutate, crossover, promote, ...
    lr: float | None = None  # peak learning rate; None: the task's recipe rate (an --lr-grid sets one per run)

    def __post_init__(self) -> None:
        from einsearch.grammar import Arch, parse

        if isinstance(self.arch, str):
            object.__setattr__(self, "arch", parse(self.arch))
        if not isinstance(self.arch, Arch):
            raise TypeError(f"Candidate.arch must be an Arch or a string, got {type(self.arch).__name__}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"Candidate.steps must be a positive int, got {self.steps!r}")
        object.__setattr__(self, "parents", tuple(self.parents))
        if self.lr is not None:
            if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < 10:
                raise ValueError(f"Candidate.lr must be a positive number below 10, got {self.lr!r}")
            object.__setattr__(self, "lr", float(self.lr))

    @property
    def key(self) -> tuple[str, str, int, int, float | None]:
        """Identity for caching: the same key never needs training twice."""
        return (self.arch.hash, self.task, self.steps, self.seed, self.lr)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": str(self.arch), "task": self.task, "steps": self.steps, "seed": self.seed,
                "parents": list(self.parents), "op": self.op, "lr": self.lr}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Candidate":
        return cls(arch=data["arch"], task=data["task"], steps=int(data["steps"]), seed=int(data.get("seed", 0)),
                   parents=tuple(data.get("parents", ())), op=data.get("op"), lr=data.get("lr"))


@dataclass(frozen=True)
class Result:
    """The outcome of training one candidate. Failures are results too: status 'failed' + `error`."""

    status: str  # "ok" | "failed"
    metric_name: str = ""
    metric: float | None = None  # final metric on the validation batches
    best_metric: float | None = None  # best over the learning curve
    loss: float | None = None  # final training loss (mean of the last few steps)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, metric)
    params: int | None = None
    flops_per_token: int | None = None
    wall_time_s: float = 0.0  # whole evaluation, including build and data
    train_time_s: float = 0.0  # inside the training steps only
    eval_time_s: float = 0.0  # scoring the held-out batches for the learning curve
    tokens_per_s: float | None = None
    peak_mem_bytes: int | None = None
    device: str | None = None
    host: str | None = None
    node_id: str | None = None  # the Ray node that trained it (None outside Ray)
    error: str | None = None  # one line, None unless failed
    # Task-specific figures reported beside the metric (e.g. icl-regression's ridge_mse and mse_ratio).
    extra_metrics: dict[str, float | None] = field(default_factory=dict)
    # Attention-pattern analysis of the trained model (einsearch.evaluators.patterns), None when not run.
    patterns: list[dict[str, Any]] | None = None
    # Trained weights (state_dict on the CPU), only when the caller asks to keep them; never in to_dict.
    weights: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ValueError(f"Result.status must be 'ok' or 'failed', got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN/inf become None, the curve a list of [step, metric] pairs."""
        data = dataclasses.asdict(dataclasses.replace(self, weights=None))
        del data["weights"]
        data["curve"] = [[int(s), _finite(m)] for s, m in self.curve]
        return {k: _finite(v) for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["curve"] = [(int(s), m) for s, m in (data.get("curve") or [])]
        for name in ("wall_time_s", "train_time_s", "eval_time_s", "extra_metrics"):
            if kwargs.get(name) is None:
                kwargs.pop(name, None)
        return cls(**kwargs)

    @classmethod
    def failure(cls, error: str, **fields: Any) -> "Result":
        """A failed result whose reason is cut to one line."""
        return cls(status="failed", error=one_line(error), **fields)


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _finite(value: Any) -> Any:
    """NaN and infinities become None, inside dicts and lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
