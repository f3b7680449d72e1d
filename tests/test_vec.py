"""Vector envs: SAME_STEP auto-reset keys, exact replay, running statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rlfoundry.envs.vec import (
    ObsNormalizer,
    RewardNormalizer,
    RunningMeanStd,
    VecActionLog,
    check_replayed,
    make_vec_env,
)
from rlfoundry.errors import EnvError, RLFoundryError

torch.set_num_threads(1)


def _random_actions(envs, steps: int, seed: int) -> list[np.ndarray]:
    envs.action_space.seed(seed)
    return [envs.action_space.sample() for _ in range(steps)]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("CartPole-v1", {}), ("Pendulum-v1", {"max_episode_steps": 7})],
)
def test_replay_restores_identical_state(env_id, kwargs):
    """After replaying the log, the env returns the same obs now AND on later steps
    (which needs the sub-envs' RNGs restored too: later resets draw from them)."""
    a = VecActionLog(make_vec_env(env_id, 3, seed=5, env_kwargs=kwargs), seed=5)
    a.reset()
    acts = _random_actions(a, 60, seed=0)
    dones = 0
    for act in acts[:40]:
        obs_a, _, term, trunc, _ = a.step(act)
        dones += int((term | trunc).sum())
    assert dones > 0  # the replay crossed episode boundaries (auto-resets)
    log = a.state_arrays()["replay/actions"]
    assert log.shape[:2] == (40, 3)

    b = VecActionLog(make_vec_env(env_id, 3, seed=5, env_kwargs=kwargs), seed=5)
    obs_b, _ = b.restore(torch.as_tensor(log))
    np.testing.assert_array_equal(obs_a, obs_b)
    check_replayed(obs_b, obs_a, env_id)
    for act in acts[40:]:
        ra = a.step(act)
        rb = b.step(act)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
    a.close()
    b.close()


def test_check_replayed_raises_on_divergence():
    with pytest.raises(RLFoundryError, match="not deterministic"):
        check_replayed(np.zeros((2, 4)), np.ones((2, 4)), "X-v0")


def test_same_step_autoreset_puts_final_obs_in_info():
    """Gymnasium 1.x SAME_STEP: on truncation, step returns the reset obs and the last
    obs of the finished episode is info["final_obs"][i] (mask info["_final_obs"])."""
    envs = make_vec_env("Pendulum-v1", 2, seed=0, env_kwargs={"max_episode_steps": 3})
    envs.reset(seed=0)
    act = np.zeros((2, 1), dtype=np.float32)
    for _ in range(2):
        _, _, term, trunc, info = envs.step(act)
        assert not (term | trunc).any() and "final_obs" not in info
    obs, _, term, trunc, info = envs.step(act)
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all()
    final = np.stack(info["final_obs"])
    assert final.shape == obs.shape
    assert not np.allclose(final, obs)  # obs is already the new episode's
    envs.close()


def test_make_vec_env_unknown_id_is_env_error():
    with pytest.raises(EnvError, match="Unknown environment"):
        make_vec_env("NoSuchEnv-v9", 2, seed=0)


batches = st.lists(
    st.integers(1, 6).flatmap(
        lambda n: arrays(
            np.float64, (n, 3), elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)
        )
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_running_mean_std_matches_concatenated_batches(xs):
    rms = RunningMeanStd((3,), epsilon=0.0)
    for x in xs:
        rms.update(x)
    allx = np.concatenate(xs)
    np.testing.assert_allclose(rms.mean, allx.mean(0), rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(rms.var, allx.var(0), rtol=1e-7, atol=1e-6)
    assert rms.count == len(allx)


def test_running_mean_std_default_prior_weight_is_tiny():
    rms = RunningMeanStd(())
    x = np.array([1.0, 2.0, 3.0, 4.0])
    rms.update(x)
    assert rms.mean == pytest.approx(2.5, rel=1e-4)
    assert rms.var == pytest.approx(1.25, rel=1e-3)


def test_reward_normalizer_resets_return_on_termination_and_truncation():
    gamma = 0.5
    norm = RewardNormalizer(3, gamma)
    f = np.array([False, False, False])
    norm(np.array([1.0, 1.0, 1.0]), f, f)
    np.testing.assert_allclose(norm.ret, [1.0, 1.0, 1.0])
    # env 0 terminates, env 1 is truncated, env 2 continues
    norm(np.array([2.0, 2.0, 2.0]), np.array([True, False, False]), np.array([False, True, False]))
    np.testing.assert_allclose(norm.ret, [0.0, 0.0, 2.5])
    # the statistics saw the returns before the reset: 1,1,1 then 2.5,2.5,2.5
    assert norm.rms.mean == pytest.approx(1.75, rel=1e-3)


def test_reward_normalizer_scales_by_return_std():
    norm = RewardNormalizer(1, 0.0, clip=100.0)  # gamma 0: the "return" is the reward
    rng = np.random.default_rng(0)
    f = np.array([False])
    for _ in range(2000):
        norm(rng.normal(3.0, 2.0, size=1), f, f)
    out = norm(np.array([2.0]), f, f)
    assert out[0] == pytest.approx(2.0 / np.sqrt(norm.rms.var), rel=1e-6)
    assert np.sqrt(norm.rms.var) == pytest.approx(2.0, rel=0.05)  # std, not RMS: not centred


def test_normalizer_state_round_trip():
    obs = ObsNormalizer((2,), clip=5.0)
    obs.update(np.array([[0.0, 10.0], [2.0, 30.0]]))
    rew = RewardNormalizer(2, 0.9)
    rew(np.array([1.0, -1.0]), np.array([False, False]), np.array([False, True]))
    saved = {
        k: torch.as_tensor(np.ascontiguousarray(v))
        for k, v in {**obs.state_arrays(), **rew.state_arrays()}.items()
    }
    obs2, rew2 = ObsNormalizer((2,), clip=5.0), RewardNormalizer(2, 0.9)
    obs2.load(saved)
    rew2.load(saved)
    x = np.array([[1.0, 20.0], [5.0, -7.0]])
    np.testing.assert_array_equal(obs(x), obs2(x))
    np.testing.assert_array_equal(rew.ret, rew2.ret)
    assert rew2.rms.mean.shape == ()
    assert np.abs(obs(np.array([[1e6, 1e6]]))).max() == 5.0


def test_async_vector_env_replays_and_reports_final_obs():
    kwargs = {"max_episode_steps": 4}
    a = VecActionLog(make_vec_env("Pendulum-v1", 2, seed=1, async_=True, env_kwargs=kwargs), 1)
    a.reset()
    acts = [np.full((2, 1), 0.1 * i, dtype=np.float32) for i in range(6)]
    for act in acts:
        obs_a, _, _, trunc, info = a.step(act)
        if trunc.any():
            assert info["_final_obs"].all() and np.stack(info["final_obs"]).shape == (2, 3)
    b = VecActionLog(make_vec_env("Pendulum-v1", 2, seed=1, env_kwargs=kwargs), 1)
    obs_b, _ = b.restore(a.state_arrays()["replay/actions"])  # sync replays async's log
    np.testing.assert_array_equal(obs_a, obs_b)
    a.close()
    b.close()


def test_array_log_grows_in_one_array_and_copies_its_input():
    from rlfoundry.envs.replay import ArrayLog

    log = ArrayLog(capacity=2)
    assert log.array() is None
    buf = np.zeros(3, dtype=np.float32)
    for i in range(5):  # grows 2 -> 4 -> 8
        buf[:] = i  # the caller reuses its array: the log must have copied it
        log.append(buf)
    arr = log.array()
    assert len(log) == 5 and arr.shape == (5, 3) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr[:, 0], np.arange(5))
    log.clear()
    assert len(log) == 0 and log.array() is None


def test_action_log_keeps_actions_in_one_int_array():
    """The earlier list of per-step 0-d arrays cost ~100 bytes of Python object per step."""
    from rlfoundry.envs.evaluation import make_env
    from rlfoundry.envs.replay import ActionLog

    env = ActionLog(make_env("CartPole-v1"), seed=3)
    env.reset()
    acts = np.random.default_rng(0).integers(0, 2, size=3000)
    for a in acts:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    logged = env.state_arrays()["replay/actions"]
    assert logged.dtype == np.int64 and logged.shape == (3000,)
    np.testing.assert_array_equal(logged, acts)
    assert env.log._buf.nbytes <= 2 * 8 * 4096  # one buffer: 8 bytes per action (x2 slack)
    obs, _ = ActionLog(make_env("CartPole-v1"), seed=3).restore(logged)
    np.testing.assert_array_equal(obs, env.unwrapped.state.astype(np.float32))
    env.close()
