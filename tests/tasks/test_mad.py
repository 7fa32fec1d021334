import random

import pytest
import torch

from einsearch.tasks import mad_data
from einsearch.tasks import TaskError, get_task
from einsearch.tasks.mad import MAD_TASKS, MadSuite


def _pairs_before(tokens, upto, half):
    """key -> value pairs seen in tokens[:upto] (single-token keys)."""
    return {tokens[i]: tokens[i + 1] for i in range(0, upto - 1, 2) if tokens[i] < half}


def test_recall_scores_exactly_the_values_of_keys_seen_before():
    rng = random.Random(0)
    for _ in range(20):
        tokens, scored = mad_data.recall(rng, 16, 64)
        assert len(tokens) == 65 and len(scored) == 64
        for i in range(0, 64, 2):  # input i is a key, its target tokens[i + 1] the value
            seen = _pairs_before(tokens, i, 8)
            assert scored[i] == (tokens[i] in seen)
            if scored[i]:
                assert tokens[i + 1] == seen[tokens[i]]  # the same map throughout the sequence
        assert not any(scored[1::2])  # a value's next token (a fresh key) is never scored


def test_fuzzy_and_noisy_recall_properties():
    rng = random.Random(1)
    tokens, scored = mad_data.recall(rng, 16, 128, fuzzy=True)
    assert any(scored) and all(tokens[i + 1] >= 8 for i, s in enumerate(scored) if s)  # targets are values
    tokens, scored = mad_data.recall(rng, 32, 256, noise_vocab=16, frac_noise=0.5)
    noise = [t for t in tokens if t >= 16]
    assert 0.3 < len(noise) / len(tokens) < 0.7  # about half the slots are noise pairs
    assert not any(s for i, s in enumerate(scored) if tokens[i + 1] >= 16)  # noise is never a target


def test_selective_copy_copies_content_in_order():
    tokens, scored = mad_data.selective_copy(random.Random(2), 16, 64, 8)
    region = 64 - 8
    content = [t for t in tokens[:region] if t != 0]
    assert tokens[region] == 1 and tokens[region + 1:] == content and len(content) == 8
    assert [i for i, s in enumerate(scored) if s] == list(range(region, 64))


def test_memorization_uses_one_map_and_compression_reconstructs_inputs():
    kv = mad_data.fixed_map(32)
    for seed in range(3):
        tokens, scored = mad_data.memorization(random.Random(seed), 32, 16, kv)
        assert all(tokens[i + 1] == kv[tokens[i]] for i in range(0, 16, 2)) and scored == [True, False] * 8
    task = get_task("mad-compression:vocab=16,seq=8")
    batch = next(task.batches("train", 4, seed=0))
    assert torch.equal(batch.inputs, batch.targets)
    assert task.make_head(12)(torch.zeros(4, 8, 12)).shape == (4, 8, 16)


def test_every_mad_task_batches_scores_and_lists_variations():
    for name, cls in ((n, f()) for n, f in MAD_TASKS.items()):
        tiny = cls.sized("tiny")
        batch = next(tiny.batches("train", 3, seed=0))
        assert batch.inputs.shape == batch.targets.shape == batch.scored.shape == (3, tiny.seq)
        assert batch.scored.any(), name
        perfect = torch.nn.functional.one_hot(batch.targets, tiny.vocab).float()
        hits, n = tiny.score(perfect, batch)
        assert hits == n == int(batch.scored.sum())
        variations = cls.variations()
        assert variations[0] == cls() and len({v.spec for v in variations}) == len(variations)


def test_suite_members_and_bad_settings():
    assert [n for n, _ in MadSuite(size="tiny").members()] == list(MAD_TASKS)
    assert len(MadSuite(settings="all").members()) == sum(len(f().variations()) for f in MAD_TASKS.values())
    with pytest.raises(TaskError, match="settings must be"):
        get_task("mad:settings=some")
    with pytest.raises(TaskError, match="give size=default"):
        get_task("mad:settings=all,size=cpu")


def test_cpu_size_keeps_sequences_short_and_every_member_carries_the_recipe():
    members = get_task("mad:size=cpu").members()
    assert [n for n, _ in members] == list(MAD_TASKS)
    for _, task in members:
        assert task.seq <= 64 and get_task(task.spec) == task  # each member is a task of its own
        assert (task.recipe.steps, task.recipe.schedule, task.recipe.warmup) == (600, "constant", 0)
    assert get_task("mad:size=cpu").recipe == members[0][1].recipe  # the suite trains as its members do


def test_suite_score_is_the_mean_of_its_members():
    from einsearch.evaluators.trainer import evaluate
    from einsearch.evaluators.types import Candidate
    from tests.evaluators.helpers import small_arch

    arch = small_arch("transformer", "mad-recall", width=32)
    suite = evaluate(Candidate(arch, "mad:size=tiny", 4), device="cpu")
    members = [evaluate(Candidate(arch, t.spec, 4), device="cpu").metric for _, t in MadSuite(size="tiny").members()]
    assert suite.status == "ok" and suite.metric == pytest.approx(sum(members) / len(members))



def test_memorization_at_cpu_size_trains_on_almost_every_key():
    """Held-out pairs come from the same map, so keys that the training pool never shows cap the score."""
    task = MAD_TASKS["memorization"]().sized("cpu")
    pool = task.batches("train", 256, seed=0)  # 16 x 256 draws with replacement cover the 256 sequences
    keys = torch.cat([next(pool).inputs[:, ::2].flatten() for _ in range(16)])
    assert len(set(keys.tolist())) / (task.vocab // 2) >= 0.97
