import pytest
import torch

from einsearch.ops import create
from tests.ops.conv.test_checks import assert_causal, assert_matches_reference, linear
from tests.ops.conv.test_convmixer import gelu, layer_norm
from tests.ops.token_mlp.test_mlp_mixer import ref_token_mlp

SEQ_LEN = 9
SHAPES = [(2, 1), (2, 5), (1, 9)]


def reference(module, x):
    m = x + ref_token_mlp(module.token_mlp, layer_norm(x, module.token_norm), module.causal)
    gate = m + linear(gelu(linear(layer_norm(m, module.channel_norm), module.channel_in)), module.channel_out)
    return linear(x, module.proj) * gate


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("expansion", [1, 2, 4])
def test_matches_reference(causal, expansion):
    torch.manual_seed(0)
    module = create("ninformer", 6, causal=causal, seq_len=SEQ_LEN, expansion=expansion)
    assert_matches_reference(module, reference, 6, SHAPES)


@pytest.mark.parametrize("expansion", [1, 2, 4])
def test_token_and_channel_mlps_share_the_hidden_width(expansion):
    """The authors build MixerGatingUnit(d_model, seq_len, d_ffn, d_ffn): token MLP and channel
    MLP both have hidden width d_ffn = expansion * dim, whatever the sequence length."""
    for seq_len in (5, 40):
        module = create("ninformer", 6, causal=False, seq_len=seq_len, expansion=expansion)
        assert module.token_mlp.w_in.shape == (expansion * 6, seq_len)
        assert module.channel_in.out_features == expansion * 6


def test_causal():
    torch.manual_seed(0)
    module = create("ninformer", 6, causal=True, seq_len=SEQ_LEN)
    for t in (0, 5):
        assert_causal(module, 6, length=SEQ_LEN, t=t)
