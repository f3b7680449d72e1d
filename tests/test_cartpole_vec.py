"""CartPoleVec (NumPy, all copies at once) equals SyncVectorEnv of gym.make("CartPole-v1")."""

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rlfoundry.envs.cartpole import CartPoleVec
from rlfoundry.envs.vec import make_vec_env


def test_cartpole_vec_equals_sync_vector_env_bit_for_bit():
    n, seed = 6, 7
    ref = SyncVectorEnv(
        [lambda: gym.make("CartPole-v1")] * n, autoreset_mode=AutoresetMode.SAME_STEP
    )
    vec = CartPoleVec(n)
    o1, _ = ref.reset(seed=seed)
    o2, _ = vec.reset(seed=seed)
    assert o1.dtype == o2.dtype and np.array_equal(o1, o2)
    rng = np.random.default_rng(0)
    ends = {"term": 0, "trunc": 0}
    for _ in range(3000):
        # a balancing rule with noise: long episodes (truncation at 500) and falls both
        act = ((o1[:, 2] + 0.5 * o1[:, 3] > 0) ^ (rng.random(n) < 0.08)).astype(np.int64)
        o1, r1, te1, tr1, i1 = ref.step(act)
        o2, r2, te2, tr2, i2 = vec.step(act)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2)
        assert np.array_equal(te1, te2) and np.array_equal(tr1, tr2)
        for i in np.flatnonzero(te1 | tr1):
            assert np.array_equal(i1["final_obs"][i], i2["final_obs"][i])
        ends["term"] += int(te1.sum())
        ends["trunc"] += int(tr1.sum())
    assert ends["term"] > 10 and ends["trunc"] > 5, ends  # both kinds of ending were compared


def test_make_vec_env_uses_it_for_cartpole_only():
    assert isinstance(make_vec_env("CartPole-v1", 4, 0), CartPoleVec)
    assert not isinstance(
        make_vec_env("CartPole-v1", 4, 0, env_kwargs={"render_mode": None}), CartPoleVec
    )
    assert not isinstance(make_vec_env("Acrobot-v1", 2, 0), CartPoleVec)


def test_batched_evaluation_equals_one_episode_at_a_time(monkeypatch):
    from rlfoundry.envs import evaluation

    def batch(obs):  # a balancing rule: episodes of every length up to truncation at 500
        return (obs[:, 2] + obs[:, 3] > 0).astype(np.int64)

    def policy(obs):
        return int(batch(np.asarray(obs)[None])[0])

    policy.batch = batch
    env = gym.make("CartPole-v1")
    assert evaluation._plain_cartpole(env)
    fast = evaluation.evaluate(policy, env, 12, 10_000)
    monkeypatch.setattr(evaluation, "_plain_cartpole", lambda env: False)
    slow = evaluation.evaluate(policy, env, 12, 10_000)
    assert fast == slow
    returns = set(fast["eval_returns"])
    assert 500.0 in returns and min(returns) < 500.0, returns  # truncations and falls


def test_batched_evaluation_only_for_the_plain_env():
    from rlfoundry.envs import evaluation

    assert not evaluation._plain_cartpole(gym.make("CartPole-v1", max_episode_steps=200))
    assert not evaluation._plain_cartpole(gym.make("CartPole-v1", sutton_barto_reward=True))
    assert not evaluation._plain_cartpole(gym.make("Acrobot-v1"))
    wrapped = gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: 2 * r)
    assert not evaluation._plain_cartpole(wrapped)
