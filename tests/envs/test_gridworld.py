"""GridWorld: the transition table by hand, validation messages, rendering, registration."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlfoundry.envs as envs
from rlfoundry.envs.gridworld import (
    AGENT_COLOUR,
    CELL_PX,
    DOWN,
    LEFT,
    RIGHT,
    UP,
    GridWorld,
    parse_layout,
)

# Default layout, for reading the cell indices below (s = row * 7 + col):
#   .......      row 0: 0..6
#   .#####.      row 1: 7..13
#   .#PPP#.      row 2: 14..20   pits 16, 17, 18
#   S.....G      row 3: 21..27   start 21, goal 27
#   .#PPP#.      row 4: 28..34   pits 30, 31, 32
#   .#...#.
#   ...#...
START, GOAL = 21, 27


def outcomes(env, s, a):
    """P[s][a] as {next_s: (prob, reward, terminated)}."""
    return {s2: (p, r, t) for p, s2, r, t in env.P[s][a]}


def test_conventions_of_default_layout():
    env = GridWorld()
    assert env.observation_space.n == 49 and env.action_space.n == 4
    assert (UP, RIGHT, DOWN, LEFT) == (0, 1, 2, 3)
    assert env.initial_state_distrib[START] == 1.0 and env.initial_state_distrib.sum() == 1.0
    assert env.layout[3] == "S.....G"
    obs, info = env.reset(seed=0)
    assert obs == START


def test_deterministic_moves_walls_and_edges():
    env = GridWorld()
    assert outcomes(env, START, RIGHT) == {22: (1.0, -0.04, False)}
    assert outcomes(env, START, UP) == {14: (1.0, -0.04, False)}
    # Off the grid, and into the wall above cell 22: the agent stays and pays the step.
    assert outcomes(env, START, LEFT) == {START: (1.0, -0.04, False)}
    assert outcomes(env, 22, UP) == {22: (1.0, -0.04, False)}
    assert outcomes(env, 26, RIGHT) == {GOAL: (1.0, 1.0, True)}


def test_pits_terminate_with_their_reward():
    env = GridWorld(pit_reward=-5.0)
    assert outcomes(env, 23, UP) == {16: (1.0, -5.0, True)}
    assert outcomes(env, 23, DOWN) == {30: (1.0, -5.0, True)}
    # Goal and pits are absorbing terminal states, as FrozenLake's holes are.
    assert env.P[16][LEFT] == [(1.0, 16, 0.0, True)]
    env.reset(seed=0)
    env.s = 23
    obs, rew, terminated, truncated, _ = env.step(UP)
    assert (obs, rew, terminated, truncated) == (16, -5.0, True, False)


def test_slip_splits_between_the_two_perpendicular_moves():
    env = GridWorld(slip=0.2)
    # Right from S: right 0.8, up 0.1, down 0.1 (AIMA's 0.8/0.1/0.1).
    got = outcomes(env, START, RIGHT)
    assert got.keys() == {22, 14, 28}
    assert got[22][0] == pytest.approx(0.8)
    assert got[14][0] == pytest.approx(0.1) and got[28][0] == pytest.approx(0.1)
    # Right from the bridge cell 23: the slips fall into the pits above and below.
    got = outcomes(env, 23, RIGHT)
    assert got[24] == (pytest.approx(0.8), -0.04, False)
    assert got[16] == (pytest.approx(0.1), -1.0, True)
    assert got[30] == (pytest.approx(0.1), -1.0, True)
    # Up from 22 hits the wall (stay, 0.8); the slips go left to 21 and right to 23.
    got = outcomes(env, 22, UP)
    assert got[22][0] == pytest.approx(0.8) and got[21][0] == pytest.approx(0.1)
    assert got[23][0] == pytest.approx(0.1)


@pytest.mark.parametrize("slip", [0.0, 0.1, 0.2, 1 / 3, 1.0])
def test_probabilities_sum_to_one_everywhere(slip):
    env = GridWorld(slip=slip)
    for s in range(env.observation_space.n):
        for a in range(4):
            probs = [p for p, *_ in env.P[s][a]]
            assert sum(probs) == pytest.approx(1.0)
            assert all(p > 0 for p in probs)
            assert len({s2 for _, s2, _, _ in env.P[s][a]}) == len(probs)  # merged


def test_step_samples_from_P():
    env = GridWorld(slip=0.2)
    env.reset(seed=123)
    counts = {}
    n = 4000
    for _ in range(n):
        env.s = START
        obs, *_ = env.step(RIGHT)
        counts[obs] = counts.get(obs, 0) + 1
    # Binomial std at p=0.1, n=4000 is 19 counts; allow 5 sigma.
    assert abs(counts[22] - 0.8 * n) < 5 * 25
    assert abs(counts[14] - 0.1 * n) < 5 * 19 and abs(counts[28] - 0.1 * n) < 5 * 19


def test_seeding_reproduces_trajectories():
    def run(seed):
        env = GridWorld(slip=0.3)
        env.reset(seed=seed)
        return [env.step(RIGHT)[0] for _ in range(20)]

    assert run(7) == run(7)
    assert run(7) != run(8)


@pytest.mark.parametrize("env_id", envs.GRIDWORLD_ENVS)
@pytest.mark.parametrize("mode", [None, "ansi", "rgb_array"])
def test_passes_gymnasium_env_checker(env_id, mode):
    check_env(gym.make(env_id, render_mode=mode).unwrapped, skip_render_check=False)


def test_ansi_render_shows_the_agent():
    env = GridWorld(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.splitlines()[3] == "A.....G"
    env.step(RIGHT)
    lines = env.render().splitlines()
    assert lines[0].strip() == "(Right)" and lines[4] == "SA....G"


def test_rgb_render_shape_and_agent():
    env = GridWorld(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (7 * CELL_PX, 7 * CELL_PX, 3) and img.dtype == np.uint8
    centre = (3 * CELL_PX + CELL_PX // 2, CELL_PX // 2)  # the start cell (3, 0)
    assert tuple(img[centre]) == AGENT_COLOUR
    env.step(RIGHT)
    assert tuple(env.render()[centre]) != AGENT_COLOUR


def test_render_policy_draws_arrows():
    env = GridWorld(["S.G"])
    assert env.render_policy(np.array([RIGHT, LEFT, UP])) == "→←G"


@pytest.mark.parametrize(
    "layout, words",
    [
        (["S.G", "..."], None),
        (["S.G", ".."], "different lengths"),
        (["S.X"], "unknown character"),
        (["..G"], "exactly one start"),
        (["S.S", "..G"], "exactly one start"),
        (["S.."], "no goal"),
        (["S#G"], "no path"),
        (["SPG"], "no path"),
        ([], "non-empty"),
        ("S.G", "list of strings"),
    ],
)
def test_layout_validation(layout, words):
    if words is None:
        assert parse_layout(layout).shape == (2, 3)
        return
    with pytest.raises(ValueError, match=words):
        GridWorld(layout)


def test_bad_slip_and_render_mode():
    with pytest.raises(ValueError, match="slip"):
        GridWorld(slip=1.5)
    with pytest.raises(ValueError, match="render_mode"):
        GridWorld(render_mode="human")


def test_registered_ids_and_time_limit():
    assert set(envs.GRIDWORLD_ENVS) <= set(envs.BUILTIN_ENVS)
    env = gym.make("rlfoundry/GridWorld-v0")
    assert env.spec.max_episode_steps == 100 and env.unwrapped.slip == 0.0
    assert gym.make("rlfoundry/GridWorldSlippery-v0").unwrapped.slip == 0.2
    # Pushing into the left edge forever: truncated, not terminated, at step 100.
    env.reset(seed=0)
    for t in range(1, 101):
        _, rew, terminated, truncated, _ = env.step(LEFT)
        assert rew == -0.04 and not terminated
        assert truncated == (t == 100)
