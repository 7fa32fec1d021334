"""The recipe key: equal for runs trained the same way, different when anything in the recipe is."""
import pytest

from einsearch.evaluators import recipe_key as module
from einsearch.evaluators.recipe_key import recipe_key
from einsearch.evaluators.types import Candidate
from einsearch.tasks import get_task
from einsearch.tasks.base import Recipe

ARCH = "net(16, block(pre:rms, mlp(expand=2, act=gelu)))"


def key(task="mqar-tiny", steps=100, seed=0, lr=None):
    return recipe_key(Candidate(ARCH, task, steps, seed, lr=lr))


def test_same_recipe_same_key_whatever_the_seed_or_the_data():
    assert key() == key(seed=3) and len(key()) == 16
    # mqar-64 trains as mqar-tiny does; its data differ, and the task spec is a cache column of its own.
    assert key(task="mqar-64") == key()


@pytest.mark.parametrize("changed", [dict(steps=101), dict(lr=1e-2)])
def test_steps_and_rate_change_the_key(changed):
    assert key(**changed) != key()


def test_a_task_recipe_change_changes_the_key(monkeypatch):
    before = key()
    task_class = type(get_task("mqar-tiny"))
    recipe = get_task("mqar-tiny").recipe
    monkeypatch.setattr(task_class, "recipe", property(lambda self: Recipe(**{**recipe.__dict__, "batch_size": 8})))
    assert key() != before


def test_a_trainer_revision_changes_the_key(monkeypatch):
    before = key()
    monkeypatch.setattr(module, "TRAINER_REVISION", module.TRAINER_REVISION + 1)
    assert key() != before


def test_an_aggregate_is_keyed_by_its_members_and_a_bad_spec_has_none():
    assert key(task="mad:size=cpu") == key(task="mad:size=cpu") != key(task="mad:size=cpu", lr=1e-2)
    assert key(task="nonsense-task") is None


def test_several_training_seeds_are_another_recipe_and_one_is_the_old_key():
    candidate = Candidate(ARCH, "mqar-tiny", 100, 0)
    assert recipe_key(candidate, train_seeds=1) == recipe_key(candidate) == key()
    assert recipe_key(candidate, train_seeds=3) != key() and recipe_key(candidate, 3) != recipe_key(candidate, 2)
