from __future__ import annotations

import numpy as np
import pytest

from fedward.errors import ValidationError
from fedward.learning.training_args import TrainingArgs, held_out_split, round_rng


def test_defaults_follow_the_seed_names() -> None:
    args = TrainingArgs.from_mapping({}, default_metrics=("accuracy",))
    assert (args.batch_size, args.epochs, args.num_updates, args.test_ratio) == (32, 1, None, 0.2)
    assert args.test_metrics == ("accuracy",)
    assert args.test_on_global_updates and args.test_on_local_updates


def test_a_single_metric_name_is_accepted() -> None:
    assert TrainingArgs.from_mapping({"test_metrics": "F1"}).test_metrics == ("f1",)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"epochs": 1.5}, "epochs must be an integer"),
        ({"test_ratio": 1.0}, r"test_ratio must be in \[0, 1\)"),
        ({"test_ratio": -0.1}, "test_ratio must be a number >= 0"),
        ({"test_on_local_updates": "yes"}, "must be true or false"),
        ({"test_metrics": ["accuracy", "auc"]}, "unknown test metric.*auc"),
        ({"optimizer_args": [1]}, "optimizer_args must be a mapping"),
    ],
)
def test_bad_training_args_are_refused(args: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainingArgs.from_mapping(args)


def test_held_out_split_depends_only_on_seed_and_node() -> None:
    train, test = held_out_split(100, 0.2, seed=1, node_id="node-a")
    again_train, again_test = held_out_split(100, 0.2, seed=1, node_id="node-a")
    assert np.array_equal(test, again_test) and np.array_equal(train, again_train)
    assert len(test) == 20 and len(train) == 80
    assert not set(train) & set(test)
    _, other = held_out_split(100, 0.2, seed=1, node_id="node-b")
    assert not np.array_equal(test, other)


def test_round_randomness_is_a_function_of_seed_node_and_round() -> None:
    first = round_rng(0, "node-a", 1).permutation(50)
    assert np.array_equal(first, round_rng(0, "node-a", 1).permutation(50))
    for other in (round_rng(0, "node-a", 2), round_rng(0, "node-b", 1), round_rng(1, "node-a", 1)):
        assert not np.array_equal(first, other.permutation(50))
