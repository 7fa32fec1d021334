"""The static description of a primitive (`OpInfo`): what the grammar accepts and how it is classified.

Torch-free on purpose: the registry's `OpSpec` extends it with the class and the size formulas, and
`catalogue.py` keeps the built-in primitives' `OpInfo`s on disk for processes that never import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Categories that mix information across positions; the rest act per token.
TOKEN_CATEGORIES = ("attention", "recurrent", "ssm", "convolution", "token_mlp")
CHANNEL_CATEGORIES = ("ffn", "moe")  # dense feed-forward; routed experts
CATEGORIES = TOKEN_CATEGORIES + CHANNEL_CATEGORIES


@dataclass(frozen=True)
class OpInfo:
    """The static description of a primitive: what the grammar accepts and how it is classified."""

    name: str
    category: str
    cost: str = "L"  # growth of compute with sequence length L, e.g. "L", "L^2", "L log L"
    hparams: dict[str, tuple] = field(default_factory=dict)  # name -> allowed choices
    defaults: dict[str, Any] = field(default_factory=dict)
    causal: bool = True  # can run in causal mode
    noncausal: bool = True  # can run in non-causal mode
    needs_seq_len: bool = False  # constructor takes `seq_len` (e.g. token-mixing MLPs)
    # cross-layer values read during forward ("embedding", "attention"; see einsearch.ops.context)
    needs_context: tuple[str, ...] = ()
    # False for FFT-based forms: causal in exact arithmetic, but a later input moves earlier outputs
    # by rounding (~1e-16 relative). Tests then bound the leak instead of requiring identical outputs.
    exact_causal: bool = True
    # hyperparameters that change how the output is computed (speed, memory), not what it is, e.g. a
    # scan's chunk size. Search never draws or mutates them: a variant would train to the same figures
    # and spend an evaluation. A user may still write them; tests check the output does not change.
    compute_only: tuple[str, ...] = ()
    doc: str = ""

    @property
    def is_token_mixer(self) -> bool:
        return self.category in TOKEN_CATEGORIES

    def resolve(self, hparams: dict[str, Any]) -> dict[str, Any]:
        """Full hyperparameters in declared order, defaults filled in; raises KeyError/ValueError."""
        unknown = set(hparams) - set(self.hparams)
        if unknown:
            raise KeyError(f"{self.name} has no hyperparameter {sorted(unknown)[0]!r}")
        out = {}
        for key, choices in self.hparams.items():
            value = hparams.get(key, self.defaults.get(key, choices[0]))
            if value not in choices:
                raise ValueError(f"{self.name}: {key}={value!r} is not one of {list(choices)}")
            out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category, "cost": self.cost,
                "hparams": {k: list(v) for k, v in self.hparams.items()}, "defaults": dict(self.defaults),
                "causal": self.causal, "noncausal": self.noncausal, "needs_seq_len": self.needs_seq_len,
                "needs_context": list(self.needs_context), "exact_causal": self.exact_causal,
                "compute_only": list(self.compute_only), "doc": self.doc}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpInfo:
        return cls(**{**data, "hparams": {k: tuple(v) for k, v in data["hparams"].items()},
                      "needs_context": tuple(data["needs_context"]),
                      "compute_only": tuple(data.get("compute_only", ()))})
