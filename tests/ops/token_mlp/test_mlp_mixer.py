import math

import pytest
import torch

from einsearch.ops import count_params, create
from tests.ops.conv.test_checks import assert_causal, assert_matches_reference

SEQ_LEN = 9
SHAPES = [(2, 1), (2, 5), (1, 9)]


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def ref_token_mlp(mlp, x, causal):
    """Position by position: hidden unit j sits at position ceil((j+1)T/H)-1; causal units read inputs <= it,
    and output t reads causal units at positions <= t. Inputs past L count as zeros."""
    length, seq_len, hidden = x.shape[1], mlp.seq_len, mlp.w_in.shape[0]
    pos = [math.ceil((j + 1) * seq_len / hidden) - 1 for j in range(hidden)]
    h = []
    for j in range(hidden):
        acc = mlp.b_in[j].expand_as(x[:, 0])  # (B, D)
        for s in range(length):
            if not causal or s <= pos[j]:
                acc = acc + mlp.w_in[j, s] * x[:, s]
        h.append(gelu(acc))
    outs = []
    for t in range(length):
        acc = mlp.b_out[t].expand_as(x[:, 0])
        for j in range(hidden):
            if not causal or pos[j] <= t:
                acc = acc + mlp.w_out[t, j] * h[j]
        outs.append(acc)
    return torch.stack(outs, 1)


def reference(module, x):
    return ref_token_mlp(module.token_mlp, x, module.causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("expansion", [0.5, 1, 2])
def test_matches_reference(causal, expansion):
    torch.manual_seed(0)
    module = create("mlp_mixer", 6, causal=causal, seq_len=SEQ_LEN, expansion=expansion)
    assert_matches_reference(module, reference, 6, SHAPES)


@pytest.mark.parametrize("expansion", [0.5, 1, 2])
def test_causal(expansion):
    torch.manual_seed(0)
    module = create("mlp_mixer", 6, causal=True, seq_len=SEQ_LEN, expansion=expansion)
    for t in (0, 4, 8):
        assert_causal(module, 6, length=SEQ_LEN, t=t)


def test_noncausal_reads_the_future():
    torch.manual_seed(0)
    module = create("mlp_mixer", 6, causal=False, seq_len=SEQ_LEN)
    x = torch.randn(1, SEQ_LEN, 6)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(module(x)[:, 0], module(x2)[:, 0])


def test_too_long_input_is_an_error_and_params_depend_on_seq_len_only():
    module = create("mlp_mixer", 6, causal=True, seq_len=SEQ_LEN)
    with pytest.raises(ValueError, match="seq_len"):
        module(torch.randn(1, SEQ_LEN + 1, 6))
    assert count_params("mlp_mixer", 6, True, {"expansion": 1}, seq_len=SEQ_LEN) == 2 * SEQ_LEN * SEQ_LEN + 2 * SEQ_LEN
