"""TD targets against hand arithmetic; numpy / python-float calls from tabular agents."""

import numpy as np
import pytest
import torch

from rlfoundry.core import double_q_target, expected_sarsa_target, q_learning_target, sarsa_target

torch.set_num_threads(1)


def test_q_learning_target_batch():
    rew = torch.tensor([1.0, 1.0])
    next_q = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    term = torch.tensor([False, True])
    # row 0: 1 + 0.9 * max(1, 3) = 3.7; row 1: terminated -> 1
    assert torch.allclose(q_learning_target(rew, next_q, term, 0.9), torch.tensor([3.7, 1.0]))


def test_terminal_garbage_does_not_leak():
    next_q = torch.tensor([[float("nan"), float("inf")]])
    y = q_learning_target(torch.tensor([2.0]), next_q, torch.tensor([True]), 0.9)
    assert y.tolist() == [2.0]


def test_double_q_differs_from_plain_max_when_argmaxes_differ():
    online = torch.tensor([[5.0, 1.0]])  # online argmax: action 0
    target = torch.tensor([[2.0, 4.0]])  # target argmax: action 1
    rew, term = torch.tensor([1.0]), torch.tensor([False])
    # Double DQN: 1 + 0.9 * target[a*=0] = 1 + 1.8 = 2.8
    assert double_q_target(rew, online, target, term, 0.9).item() == pytest.approx(2.8)
    # plain DQN on the target net: 1 + 0.9 * 4 = 4.6
    assert q_learning_target(rew, target, term, 0.9).item() == pytest.approx(4.6)
    # terminated: no bootstrap at all
    assert double_q_target(rew, online, target, torch.tensor([True]), 0.9).item() == 1.0


def test_double_q_equals_plain_when_argmaxes_agree():
    q = torch.tensor([[1.0, 3.0], [4.0, 2.0]])
    rew, term = torch.zeros(2), torch.zeros(2, dtype=torch.bool)
    assert torch.allclose(
        double_q_target(rew, q, q, term, 0.5), q_learning_target(rew, q, term, 0.5)
    )


def test_sarsa_and_expected_sarsa():
    # SARSA: 1 + 0.5 * 2 = 2
    assert (
        sarsa_target(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(False), 0.5).item() == 2.0
    )
    # Expected SARSA: E[Q] = 0.25*2 + 0.75*4 = 3.5; 1 + 0.5 * 3.5 = 2.75
    y = expected_sarsa_target(
        torch.tensor([1.0]),
        torch.tensor([[2.0, 4.0]]),
        torch.tensor([[0.25, 0.75]]),
        torch.tensor([False]),
        0.5,
    )
    assert y.item() == pytest.approx(2.75)


def test_targets_are_detached():
    next_q = torch.tensor([[1.0, 3.0]], requires_grad=True)
    y = q_learning_target(torch.tensor([0.0]), next_q, torch.tensor([False]), 0.9)
    assert not y.requires_grad


def test_tabular_call_with_numpy_row_and_python_scalars():
    q_table = np.array([[0.0, 0.0], [1.0, 3.0]])
    y = q_learning_target(1.0, q_table[1], False, 0.9)  # one transition, s' = 1
    assert isinstance(y, float) and y == pytest.approx(3.7)
    assert q_learning_target(1.0, q_table[1], True, 0.9) == 1.0
    y = double_q_target(0.0, np.array([5.0, 1.0]), np.array([2.0, 4.0]), False, 1.0)
    assert isinstance(y, float) and y == 2.0
    assert sarsa_target(np.float64(1.0), np.float64(2.0), np.bool_(False), 0.5) == 2.0
    y = expected_sarsa_target(1.0, np.array([2.0, 4.0]), np.array([0.25, 0.75]), 0, 0.5)
    assert y == pytest.approx(2.75)
    ys = q_learning_target(
        np.array([1.0, 1.0]), np.array([[1.0, 3.0], [2, 0]]), np.array([0, 1]), 0.9
    )
    assert isinstance(ys, np.ndarray)
    np.testing.assert_allclose(ys, [3.7, 1.0])
