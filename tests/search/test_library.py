"""Baselines: every file renders, parses and checks for the tasks it fits; the full set is present."""
import json

import pytest

from einsearch import build, check
from einsearch.search.library import baselines, get_baseline, library, templates
from einsearch.tasks import get_task

EXPECTED = {"transformer", "mamba", "mamba2", "retnet", "gla", "deltanet", "gated_deltanet", "hyena", "h3",
            "baseconv", "hgrn2", "mlp_mixer", "convmixer", "jamba", "griffin", "hymba"}


def test_every_expected_baseline_has_a_file():
    assert EXPECTED <= {t.name for t in templates()}


@pytest.mark.parametrize("task", ["toy-causal", "toy-classify"])
def test_every_baseline_whose_primitives_exist_checks_for_its_task(task):
    found, skipped = library(get_task(task))
    for name, arch in found:
        report = check(arch, task)
        assert report.params > 0 and report.dim == 64, name
    # Only missing primitives or causality may exclude a baseline.
    for name, reason in skipped:
        assert reason.startswith("needs primitive") or reason.startswith("non-causal only"), (name, reason)


def test_all_baselines_are_available_once_their_primitives_exist():
    found, skipped = library(get_task("toy-classify"))
    missing = {name: reason for name, reason in skipped}
    assert not missing, f"baselines not available: {missing}"
    assert {name for name, _ in found} == {t.name for t in templates()}


def test_noncausal_baselines_are_kept_from_causal_tasks():
    causal = dict(library(get_task("toy-causal"))[1])
    assert causal["mlp_mixer"].startswith("non-causal") and causal["convmixer"].startswith("non-causal")


def test_transformer_is_prenorm_rope_swiglu_and_builds():
    arch = get_baseline("transformer", get_task("toy-causal"), width=32, depth=1)
    assert str(arch) == ("net(32, repeat(1, block(pre:rms, attention(heads=2, kv_heads=2, rope=true)), "
                         "block(pre:rms, glu(expand=4, act=swish))))")
    assert build(arch, "toy-causal") is not None


def test_sizes_scale_to_the_parameter_budget():
    small = dict(baselines(get_task("toy-causal"), max_params=150_000))
    large = dict(baselines(get_task("toy-causal"), max_params=1_000_000))
    for name, arch in small.items():
        assert check(arch, "toy-causal").params <= 150_000
        assert check(large[name], "toy-causal").params > check(arch, "toy-causal").params
    deep = get_baseline("retnet", get_task("toy-causal"), width=32, max_params=200_000)
    assert deep.dim == 32 and check(deep, "toy-causal").params <= 200_000


def test_unknown_baseline_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        get_baseline("nope", get_task("toy-causal"))


def test_cli_lists_baselines_as_json(cli):
    result = cli("baselines", "--task", "toy-causal", "--width", "32", "--depth", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    names = {row["name"] for row in rows}
    assert "transformer" in names and "mlp_mixer" not in names
    for row in rows:
        assert check(row["arch"], "toy-causal").params == row["params"]
    assert cli("baselines", "--width", "3").exit_code == 2
