"""Text -> derivation tree, with lark. Errors become one-line `ArchError`s with line and column."""
from __future__ import annotations

import functools
import re
from fractions import Fraction
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from einsearch.grammar.tree import (MAX_BLOCKS, MAX_KERNEL, MAX_LINEAR, MAX_NUMBER_CHARS, MAX_REPEAT, MAX_SHIFT,
                                    MAX_WIDTH, MIN_WIDTH, ArchError, Node)
from einsearch.ops.catalogue import op_info

MAX_TEXT = 200_000  # characters; longer input is refused before parsing
BLOCK_CALL = re.compile(r"\bblock\s*\(")


@functools.lru_cache(maxsize=1)
def grammar_parser() -> Lark:
    text = resources.files("einsearch.grammar").joinpath("einsearch.lark").read_text()
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _where(meta: Any) -> str:
    return f"line {meta.line}, column {meta.column}" if getattr(meta, "line", None) else "?"


def _numeral(token: Any, what: str) -> str:
    """The token's text, refused (with its position) when too long to be a sensible number."""
    text = str(token)
    if len(text) > MAX_NUMBER_CHARS:
        raise ArchError(f"{_where(token)}: {what} {text[:12]}... is too long a number "
                        f"({len(text)} characters, limit {MAX_NUMBER_CHARS})")
    return text


def _bounded_int(token: Any, what: str, low: int, high: int) -> int:
    """An INT token within [low, high], or an ArchError naming it and its position."""
    value = int(_numeral(token, what))
    if not low <= value <= high:
        raise ArchError(f"{_where(token)}: {what} must be {low}..{high}, got {value}")
    return value


@v_args(meta=True, inline=True)
class _ToTree(Transformer):
    """Parse tree -> Node. Registered primitives are checked and completed with their defaults."""

    def start(self, meta, net):
        return net

    def net(self, meta, dim, *stages):
        return Node("net", (_bounded_int(dim, "net width", MIN_WIDTH, MAX_WIDTH),), tuple(stages))

    def repeat(self, meta, times, *blocks):
        return Node("repeat", (_bounded_int(times, "repeat count", 1, MAX_REPEAT),), tuple(blocks))

    def block(self, meta, norm, layer):
        return Node("block", norm, (layer,))

    def placed_norm(self, meta, place, kind):
        return (str(place), str(kind))

    def no_norm(self, meta):
        return ("none", None)

    def op_call(self, meta, name, *args):
        where = _where(meta)
        try:
            spec = op_info(str(name))
        except KeyError:
            raise ArchError(f"{where}: unknown primitive {str(name)!r} (see `einsearch ops`)") from None
        given: dict[str, Any] = {}
        for key, value in args:
            if key in given:
                raise ArchError(f"{where}: {name} gives {key!r} twice")
            given[key] = value
        try:
            resolved = spec.resolve(given)
        except (KeyError, ValueError) as err:
            raise ArchError(f"{where}: {err.args[0]}") from None
        # Store the registry's own choice object so 1 and 1.0 print the same way.
        canon = tuple((k, spec.hparams[k][spec.hparams[k].index(v)]) for k, v in resolved.items())
        return Node("op", (spec.name, canon))

    def arg(self, meta, key, value):
        return (str(key), value)

    def word(self, meta, token):
        text = str(token)
        return {"true": True, "false": False}.get(text, text)

    def number(self, meta, token):
        text = _numeral(token, "hyperparameter value")
        return int(text) if text.lstrip("+-").isdigit() else float(text)

    def parallel(self, meta, *items):
        # mean is the default and is not spelled out, so each architecture keeps one canonical string
        aggs = [str(item) for item in items if isinstance(item, Token)]
        layers = tuple(item for item in items if not isinstance(item, Token))
        return Node("parallel", () if aggs in ([], ["mean"]) else tuple(aggs), layers)

    def compose(self, meta, mod):
        return Node("compose", (), (mod,))

    def seq(self, meta, *mods):
        return Node("seq", (), tuple(mods))

    def branch(self, meta, agg, a, b):
        return Node("branch", (str(agg),), (a, b))

    def split(self, meta, agg, a, b):
        return Node("split", (str(agg),), (a, b))

    def attend(self, meta, score, q, k, v):
        return Node("attend", (str(score),), (q, k, v))

    def permute(self, meta, mod):
        return Node("permute", (), (mod,))

    def linear(self, meta, width):
        text = _numeral(width, "linear width")
        try:
            exponent = text.lower().partition("e")[2]
            if exponent and abs(int(exponent)) > MAX_NUMBER_CHARS:  # 1e999999: refused before it is expanded
                raise ValueError
            value = Fraction(text)
        except ValueError:
            raise ArchError(f"{_where(width)}: bad width {text!r}") from None
        if value <= 0:
            raise ArchError(f"{_where(width)}: linear width must be positive, got {text}")
        if value > MAX_LINEAR:
            raise ArchError(f"{_where(width)}: linear width must be at most {MAX_LINEAR} (times the axis), got {text}")
        return Node("linear", (value,))

    def conv(self, meta, kernel):
        return Node("conv", (_bounded_int(kernel, "conv kernel", 1, MAX_KERNEL),))

    def act(self, meta, fn):
        return Node("act", (str(fn),))

    def fnorm(self, meta, kind):
        return Node("fnorm", (str(kind),))

    def shift(self, meta, k):
        return Node("shift", (_bounded_int(k, "shift", 1, MAX_SHIFT),))

    def identity(self, meta):
        return Node("identity")


def _expected(err: UnexpectedInput) -> str:
    names = sorted(getattr(err, "expected", None) or getattr(err, "allowed", None) or [])
    shown = [n.strip("_").lower() if n.isupper() else n for n in names][:8]
    return f"; expected {', '.join(shown)}" if shown else ""


def parse_tree(text: str) -> Node:
    """Parse a sentence of the grammar into a derivation tree (no type check)."""
    if not isinstance(text, str):
        raise ArchError(f"an architecture is a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ArchError(f"architecture text is too long ({len(text)} characters, limit {MAX_TEXT})")
    spelled = len(BLOCK_CALL.findall(text))  # a lower bound on the blocks, before the (slower) parse
    if spelled > MAX_BLOCKS:
        raise ArchError(f"the net has at least {spelled:,} blocks, limit {MAX_BLOCKS}")
    try:
        tree = grammar_parser().parse(text)
    except UnexpectedEOF as err:
        raise ArchError(f"unexpected end of input{_expected(err)}") from None
    except UnexpectedCharacters as err:
        raise ArchError(f"line {err.line}, column {err.column}: unexpected character "
                        f"{text[err.pos_in_stream]!r}{_expected(err)}") from None
    except UnexpectedInput as err:
        token = getattr(err, "token", None)
        what = "end of input" if token is None or token.type == "$END" else repr(str(token))
        raise ArchError(f"line {err.line}, column {err.column}: unexpected {what}{_expected(err)}") from None
    except RecursionError:
        raise ArchError("architecture is nested too deeply") from None
    try:
        return _ToTree().transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, ArchError):
            raise err.orig_exc from None
        raise ArchError(f"bad architecture: {err.orig_exc}") from None
    except RecursionError:
        raise ArchError("architecture is nested too deeply") from None


def parse(text: str) -> "Arch":
    """Parse an architecture string into an `Arch` (canonical string: `str(arch)`)."""
    from einsearch.grammar.tree import Arch

    return Arch(parse_tree(text))
