import pytest
import torch

from einsearch.evaluators import patterns
from einsearch.evaluators.patterns import analyse, classify, classify_matrices, masses
from einsearch.ops import create


def _rows(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.sum(-1, keepdim=True)


def test_synthetic_matrices_are_classified():
    length = 64
    eye = torch.eye(length)
    band = _rows(sum(torch.diag(torch.ones(length - abs(k)), k) for k in (-1, 0, 1)))
    column = torch.zeros(length, length)
    column[:, 5] = 1.0  # every query on token 5
    two_columns = torch.zeros(length, length)
    two_columns[:, [5, 40]] = 0.5
    mixed = 0.5 * eye + 0.5 * column
    for matrix, expected in ((eye, "local"), (band, "local"), (column, "global"), (two_columns, "global"),
                             (mixed, "hybrid"), (torch.full((length, length), 1 / length), "global")):
        result = classify_matrices(matrix.expand(2, 3, length, length))
        assert result["pattern"] == expected, (expected, result)
        assert result["heads"] == [expected] * 3
    local, glob = masses(mixed)
    # window w = L // 16 = 4: column 5 is near queries 1..9, where it counts as local, not global
    assert float(local) == pytest.approx(0.5 + 0.5 * 9 / length, abs=1e-9)
    assert float(glob) == pytest.approx(0.5 * (length - 9) / length, abs=1e-9)


def test_heads_are_classified_separately_and_rows_are_normalised():
    length = 32
    column = torch.zeros(length, length)
    column[:, 0] = 3.0  # unnormalised rows (as sigmoid attention's): normalised first
    weights = torch.stack([torch.eye(length) * 2, column])[None]  # (1, 2, L, L)
    result = classify_matrices(weights)
    assert result["heads"] == ["local", "global"] and result["pattern"] == "hybrid"


def test_grid_window_is_two_dimensional():
    grid = (4, 4)
    below = torch.zeros(16, 16)
    for i in range(16):
        below[i, min(15, i + 4)] = 1.0  # the cell below: far in 1-D (distance 4 > w=1), near on the grid
    assert classify_matrices(below[None, None], grid)["pattern"] == "local"
    assert classify_matrices(below[None, None])["pattern"] != "local"
    assert classify(0.9, 0.0) == "local" and classify(0.1, 0.1) == "global" and classify(0.4, 0.4) == "hybrid"


def test_analyse_captures_each_attention_layer_input():
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = create("attention", 16, causal=True, heads=2, kv_heads=2)
            self.mid = torch.nn.Linear(16, 16)
            self.second = create("sliding_window", 16, causal=True, heads=2, window=16)

        def forward(self, x):
            return self.second(self.mid(x + self.first(x)))

    net = Net().train()
    x = torch.randn(3, 20, 16)
    found = analyse(net, [x])
    assert net.training  # mode restored
    assert [(p["layer"], p["op"]) for p in found] == [("first", "attention"), ("second", "sliding_window")]
    with torch.no_grad():  # the second layer saw the first one's output, not the model input
        inner = net.mid(x + net.first(x))
        expected = classify_matrices(net.second.attention_weights(inner))
    assert {k: found[1][k] for k in expected} == expected
    assert analyse(torch.nn.Linear(4, 4), [torch.randn(2, 4)]) is None
    assert patterns.summary(found).count(",") == 1 and patterns.summary(None) == "none"
