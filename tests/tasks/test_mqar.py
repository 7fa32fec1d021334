import pytest
import torch

from einsearch.tasks import TaskError, get_task
from einsearch.tasks.mqar import mqar_batch


def test_every_query_is_answered_by_its_earlier_pair():
    seq, pairs, vocab = 64, 6, 128
    inputs, labels = mqar_batch(32, seq, pairs, vocab, torch.Generator().manual_seed(0))
    assert inputs.shape == labels.shape == (32, seq)
    for row, lab in zip(inputs.tolist(), labels.tolist()):
        keys, values = row[0:2 * pairs:2], row[1:2 * pairs:2]
        assert len(set(keys)) == pairs and len(set(values)) == pairs  # without replacement
        assert all(1 <= k < vocab // 2 for k in keys) and all(vocab // 2 <= v < vocab for v in values)
        queries = [i for i, y in enumerate(lab) if y != -100]
        assert len(queries) == pairs and all(q >= 2 * pairs and (q - 2 * pairs) % 2 == 0 for q in queries)
        for q in queries:
            assert lab[q] == values[keys.index(row[q])]  # the value paired with that key earlier
        assert sorted(row[q] for q in queries) == sorted(keys)  # each key queried once
        others = [t for i, t in enumerate(row) if i >= 2 * pairs and i not in queries]
        assert set(others) == {0}  # non-query positions hold 0 in the paper's setting


def test_gaps_favour_short_distances_and_random_fill():
    inputs, labels = mqar_batch(256, 128, 8, 256, torch.Generator().manual_seed(1))
    slots = ((labels != -100).nonzero()[:, 1] - 16) // 2  # query slot index 0..55
    assert (slots < 28).float().mean() > 0.6  # p ~ g^(a-1): the first half of the slots is favoured
    filled, _ = mqar_batch(8, 128, 8, 256, torch.Generator().manual_seed(1), random_fill=True)
    assert (filled[:, 16:] != 0).float().mean() > 0.9


def test_presets_share_the_canonical_spec_and_constraints_are_checked():
    assert get_task("mqar-128").spec == get_task("mqar:seq=128,pairs=8,vocab=8192").spec
    assert get_task("mqar-512").pairs == 64 and get_task("mqar-cpu").vocab == 256
    with pytest.raises(TaskError, match="seq >= 4 \\* pairs"):
        get_task("mqar:seq=16,pairs=8")
    with pytest.raises(TaskError, match="vocab > seq"):
        get_task("mqar:seq=128,pairs=8,vocab=100")


def test_batches_are_seeded_and_splits_differ():
    task = get_task("mqar-tiny")
    a = next(task.batches("train", 4, seed=0)).inputs
    assert torch.equal(a, next(task.batches("train", 4, seed=0)).inputs)
    assert not torch.equal(a, next(task.batches("valid", 4, seed=0)).inputs)


def test_short_mqar_recipe_spends_no_steps_on_warm_up_or_decay():
    from einsearch.evaluators.trainer import TrainConfig, lr_factor

    cfg = TrainConfig.for_task(get_task("mqar:seq=64,pairs=4,vocab=128"))
    assert cfg.steps <= 600 and cfg.batch_size == 64 and cfg.lr == 3e-3 and cfg.betas == (0.9, 0.999)
    rates = [lr_factor(s, cfg.steps, cfg.warmup, cfg.schedule) for s in range(cfg.steps)]
    assert rates == [1.0] * cfg.steps  # the peak rate from the first step to the last
    longer = get_task("mqar-cpu").recipe  # T=128: warm-up + cosine over thousands of steps
    assert longer.schedule == "cosine" and longer.steps >= 2000


@pytest.mark.parametrize("pairs", [4, 16])
def test_plateau_is_the_score_of_guessing_among_the_values_in_context(pairs):
    """A predictor that knows the answer is one of the context's values but not which one scores 1/N."""
    task = get_task(f"mqar:seq=64,pairs={pairs},vocab=128")
    gen = torch.Generator().manual_seed(0)
    inputs, labels = mqar_batch(4096, 64, pairs, 128, gen)
    values = inputs[:, 1:2 * pairs:2]  # (B, N): the values of the context
    guess = values.gather(1, torch.randint(0, pairs, (4096, 1), generator=gen))  # one per sequence
    queried = labels != -100
    accuracy = (labels == guess).logical_and(queried).sum() / queried.sum()
    assert task.plateau == 1 / pairs
    assert accuracy.item() == pytest.approx(task.plateau, abs=0.01)
