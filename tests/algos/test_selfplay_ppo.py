"""Self-play PPO on PettingZoo games: reference opponents, masking, resume, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from needs import need

from rlfoundry.algos.multiagent import selfplay, selfplay_ppo
from rlfoundry.api import resolve_config, train
from rlfoundry.cli.main import main
from rlfoundry.core import entropy_from_logits
from rlfoundry.envs import games
from rlfoundry.envs.evaluation import eval_seed
from rlfoundry.errors import ConfigError, EnvError
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

need("pettingzoo", "beyond")

TTT = "pettingzoo/tictactoe_v3"
C4 = "pettingzoo/connect_four_v3"
RPS = "pettingzoo/rps_v2"


def _board(me: list[int], opp: list[int]) -> tuple[int, ...]:
    b = [0] * 9
    for i in me:
        b[i] = 1
    for i in opp:
        b[i] = 2
    return tuple(b)


# ---------------------------------------------------------------------------- minimax
@pytest.mark.parametrize(
    ("me", "opp", "value", "moves"),
    [
        ([], [], 0, tuple(range(9))),  # every opening move draws with best play
        ([0, 1], [3, 4], 1, (2,)),  # win now; anything else loses to 5
        ([0, 8], [3, 4], 0, (5,)),  # must block 3-4-5 (no win of its own)
        ([4, 8], [0, 1, 3], -1, (2, 5, 6, 7)),  # O threatens 2 and 6: lost whatever X does
    ],
)
def test_minimax_values_of_hand_positions(me, opp, value, moves):
    v, best = games.ttt_values(_board(me, opp))
    assert v == value
    if value != -1:
        assert best == moves
    else:  # every move loses: all of them are "optimal"
        assert set(best) == {i for i in range(9) if i not in me + opp}


def test_minimax_from_a_real_observation_and_against_itself():
    env = games.make_game(TTT)
    env.reset(seed=0)
    for a in (0, 4, 1):  # X: 0, 1; O: 4 -> O to move must block 2 (and then draws)
        env.step(a)
    obs = env.observe(env.agent_selection)
    assert games.ttt_board(obs) == _board([4], [0, 1])
    assert games.ttt_values(games.ttt_board(obs)) == (0, (2,))
    assert games.tictactoe_minimax(obs, np.random.default_rng(0)) == 2
    # perfect play draws; perfect play never loses to random from either seat
    assert (
        games.play(TTT, games.tictactoe_minimax, games.tictactoe_minimax, 20, 0, 0)["draw"] == 1.0
    )
    for seat in (0, 1):
        r = games.play(TTT, games.tictactoe_minimax, games.random_opponent, 50, seat, 1)
        assert r["loss"] == 0.0 and r["win"] > 0.6


def test_alphabeta_takes_a_win_and_blocks_a_loss():
    board = np.zeros(42, dtype=np.int64)
    bottom = 5 * 7
    board[bottom + 0 : bottom + 3] = 1  # three of ours in the bottom row, columns 0-2
    board[bottom + 4 : bottom + 6] = -1
    assert games.c4_negamax(board.copy(), 2, -np.inf, np.inf)[1] == 3
    board = -board  # now the opponent has the three: column 3 must be blocked
    board[bottom + 6] = 1
    assert games.c4_negamax(board.copy(), 2, -np.inf, np.inf)[1] == 3
    r = games.play(C4, games.connect_four_alphabeta(2), games.random_opponent, 3, 0, 0)
    assert r["win"] == 1.0


def _random_c4_positions(n: int, seed: int) -> list[dict]:
    """Observations of the player to move after 4-12 random plies (games still open)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        env = games.make_game(C4)
        env.reset(seed=0)
        for _ in range(int(rng.integers(4, 13))):
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                break
            env.step(games.random_opponent(obs, rng))
        else:
            out.append(env.observe(env.agent_selection))
        env.close()
    return out


def test_alphabeta_draws_uniformly_among_its_best_moves():
    """The random root order still returns a best move (checked against a search of each
    move without root pruning), and ties are broken both ways."""
    player = games.connect_four_alphabeta(2)
    ties_seen = 0
    for obs in _random_c4_positions(8, seed=1):
        board = games.c4_board(obs)
        values = {}
        for col in np.flatnonzero(obs["action_mask"]):
            b = board.copy()
            cell = games._c4_drop(b, int(col))
            b[cell] = 1
            if games._c4_wins(b, cell):
                values[int(col)] = 1e6 + 2
            else:
                values[int(col)] = -games.c4_negamax(-b, 1, -np.inf, np.inf)[0]
        best = {c for c, v in values.items() if v == max(values.values())}
        picks = {player(obs, np.random.default_rng(s)) for s in range(40)}
        assert picks <= best, (values, picks)
        if len(best) > 1:
            ties_seen += 1
            assert len(picks) > 1, (best, picks)
    assert ties_seen > 0  # the positions exercised the tie-break


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ((1 / 3, 1 / 3, 1 / 3), 0.0),
        ((1, 0, 0), 1.0),  # paper always wins
        ((0.5, 0.5, 0.0), 0.5),  # paper: +0.5 vs rock, 0 vs paper
        # rock: +0.5 (scissors) - 0.3 (paper) = 0.2; paper: 0.2 - 0.5; scissors: 0.3 - 0.2
        ((0.2, 0.3, 0.5), 0.2),
    ],
)
def test_rps_exploitability_by_hand(probs, expected):
    assert games.rps_exploitability(np.array(probs)) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------- masking
@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=1, max_value=9).flatmap(
        lambda n: st.tuples(
            st.lists(st.booleans(), min_size=n, max_size=n).filter(any),
            st.lists(st.floats(-30, 30), min_size=n, max_size=n),
        )
    ),
    st.integers(0, 2**31 - 1),
)
def test_masked_sampling_never_picks_an_illegal_action(mask_logits, seed):
    mask, logits = mask_logits
    m = torch.tensor(mask)[None].expand(64, -1)
    lg = torch.tensor(logits, dtype=torch.float32)[None].expand(64, -1)
    torch.manual_seed(seed)
    masked = selfplay.masked_logits(lg, m)
    act = selfplay.sample_masked(masked)
    assert m[torch.arange(64), act].all()
    probs = torch.softmax(masked, -1)
    assert torch.all(probs[~m] == 0) and torch.allclose(probs.sum(-1), torch.ones(64))
    assert torch.isfinite(entropy_from_logits(masked)).all()
    assert m[0, masked[0].argmax()]  # the greedy move is legal too


def _tiny(**extra):
    return {
        "num_envs": 4,
        "num_steps": 128,
        "minibatch_size": 64,
        "update_epochs": 2,
        "eval_every": 2,
        "eval_games": 5,
        "search_games": 1,
        "search_depth": 1,
        **extra,
    }


def test_resume_is_exact(tmp_path):
    """Stopped half-way and resumed == uninterrupted (networks, Adam, opponent pool, RNG)."""
    # tuned=False: the defaults (self-play and the pool, no search player), whose resume
    # the next test does not cover
    kw = dict(env=TTT, steps=800, seed=3, progress=False, evaluate_after=False, tuned=False)
    kw["overrides"] = _tiny(snapshot_every=1, pool_size=3)
    train("selfplay_ppo", out=tmp_path / "a", **kw)
    s = train("selfplay_ppo", out=tmp_path / "b", stop_at_step=400, **kw)
    assert s["status"] == "interrupted"
    s = train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    assert s["status"] == "finished"
    ta, sa = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    tb, sb = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert ta.keys() == tb.keys() and sa["pool"] == sb["pool"] == 3
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert sa["step"] == sb["step"]


def test_resume_is_exact_with_search_opponents_and_conv(tmp_path):
    """Connect four with the search opponent in training (it draws from the run's RNG)
    and the convolutional networks: resume is still exact, and the search games are
    logged apart from the pool's."""
    kw = dict(env=C4, steps=700, seed=5, progress=False, evaluate_after=False)
    kw["overrides"] = _tiny(
        snapshot_every=1,
        pool_size=3,
        search_opponent_frac=0.5,
        conv_channels=[4],
        hidden=[16],
        eval_search_depths=[1],
    )
    train("selfplay_ppo", out=tmp_path / "a", **kw)
    s = train("selfplay_ppo", out=tmp_path / "b", stop_at_step=350, **kw)
    assert s["status"] == "interrupted"
    train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    ta, sa = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    tb, sb = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert ta.keys() == tb.keys() and any("conv" in k for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    header = (tmp_path / "a" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("return_vs_search", "return_vs_pool", "win_vs_depth1_first"):
        assert key in header, key


def test_search_opponent_needs_a_search_player():
    with pytest.raises(ConfigError, match="search_opponent_frac"):
        resolve_config("selfplay_ppo", env=RPS, overrides={"search_opponent_frac": 0.25})
    with pytest.raises(ConfigError, match="search_opponent_frac"):
        resolve_config("selfplay_ppo", env=C4, overrides={"search_opponent_frac": 1.5})


def test_cli_train_and_eval_connect_four(tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        "selfplay_ppo",
        "--env",
        C4,
        "--steps",
        "600",
        "--out",
        str(out),
        "--no-progress",
    ]
    for k, v in _tiny(eval_episodes=3).items():
        argv += ["--set", f"{k}={v}"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("win_vs_random_first", "loss_vs_search_second", "eval_mean_return"):
        assert key in summary, key
    assert summary["illegal_moves"] == 0
    assert main(["eval", str(out), "--episodes", "2"]) == 0


def test_rejects_non_game_envs(tmp_path):
    with pytest.raises(ConfigError, match="two-player"):
        resolve_config("selfplay_ppo", env="CartPole-v1")
    import gymnasium as gym

    with pytest.raises(EnvError, match="two-player"):
        selfplay_ppo.check_env(gym.make("CartPole-v1"))


# ---------------------------------------------------------------------------- learning
def _first_legal(obs, rng) -> int:
    """The best a constant policy can do on a board: the lowest-numbered free cell."""
    return int(np.flatnonzero(obs["action_mask"])[0])


#: Bars of the tic-tac-toe test against random moving first (see its docstring).
WIN_BAR, LOSS_BAR = 0.8, 0.05


@pytest.mark.slow
def test_tictactoe_shipped_config_draws_perfect_play_and_beats_random(tmp_path):
    """The shipped tic-tac-toe config (200k moves, half the games against minimax, a
    256-256 MLP), seed 0. The greedy policy must draw >= 90% of 100 games per seat
    against minimax (perfect play; it picks uniformly among its optimal moves, so the
    games differ), and moving first against random win >= 80% and lose <= 5% of 200
    games. About 40 CPU-s.

    How the bars were set: seeds 0-4 of this config (2026-12-04, the summary's
    evaluation): draws vs minimax moving first 1.0 on every seed, moving second 1.0, 1.0,
    1.0, 0.96, 0.90; vs random moving first, wins 0.945, 0.94, 0.915, 0.925, 0.885 and
    losses 0 on every seed. Perfect play draws 100%; the ceiling vs random moving first
    is 99.5%. The 90% draw bar is issue 18's; seed 4 sits on it, seed 0 (this test) has
    10 points of margin. The random bars are the lowest seed less two binomial standard
    errors (0.885 - 2 x 0.023), rounded down to 0.05, and for losses the upper end of
    0 in 200 games (3/200) rounded up to 0.05. The old 45k-move self-play-only test
    asserted losses <= 10% after seed 0 measured exactly 5%; that config lost every game
    to minimax.

    The random player and the best constant policy (lowest free cell) fail the same bars
    (asserted): vs minimax they draw 22% / 4% and 0% / 0%; vs random moving first the
    constant wins 78% and loses 18.5%, random 56% and 34.5%."""
    s = train("selfplay_ppo", env=TTT, seed=0, out=tmp_path / "ttt", progress=False,
              overrides={"eval_every": 0})  # fmt: skip
    assert s["illegal_moves"] == 0
    assert s["draw_vs_search_first"] >= 0.9 and s["draw_vs_search_second"] >= 0.9, s
    assert s["win_vs_random_first"] >= WIN_BAR and s["loss_vs_random_first"] <= LOSS_BAR, s
    for trivial in (games.random_opponent, _first_legal):
        draws = [games.play(TTT, trivial, games.tictactoe_minimax, 100, seat, 1)["draw"]
                 for seat in (0, 1)]  # fmt: skip
        vs_random = games.play(TTT, trivial, games.random_opponent, 200, 0, 1)
        assert min(draws) < 0.9, (trivial, draws)
        assert vs_random["win"] < WIN_BAR or vs_random["loss"] > LOSS_BAR, (trivial, vs_random)


def _rps_from_a_biased_start(tmp_path, monkeypatch, seed: int, **overrides) -> tuple:
    """Train the shipped rps config from a policy biased to rock (+3 on its rock logit:
    p_rock 0.91, exploitability 0.86); return (start exploitability, summary)."""
    start = {}

    class Biased(selfplay.MaskedAgent):  # the class itself, never an earlier patch
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            x, m = games.split_obs(3, 3)  # 3: "no move yet", the one-shot game's observation
            with torch.no_grad():
                self.actor[-1].bias[0] += 3.0
                p = torch.softmax(
                    self.logits(torch.from_numpy(x)[None], torch.from_numpy(m)[None]), -1
                )
            # the first agent built is the run's; later ones (the final evaluation's) load it
            start.setdefault("exploitability", games.rps_exploitability(p[0].numpy()))

    monkeypatch.setattr(selfplay_ppo, "MaskedAgent", Biased)
    out = tmp_path / f"rps{len(list(tmp_path.iterdir()))}"
    s = train("selfplay_ppo", env=RPS, steps=20_000, seed=seed, out=out, progress=False,
              overrides={"eval_every": 0, **overrides})  # fmt: skip
    return start["exploitability"], s


@pytest.mark.slow
def test_rps_selfplay_pulls_a_biased_policy_to_the_uniform_nash(tmp_path, monkeypatch):
    """From an exploitable start (p_rock 0.91, exploitability 0.86), 20k moves of mirror
    self-play with the shipped rps config bring exploitability below 0.15. About 25 CPU-s.

    The bar: seeds 0-4 ended at 0.032, 0.025, 0.052, 0.075, 0.031 (2026-12-04); 0.15 is
    twice the worst seed. The uniform policy is the Nash equilibrium and the entropy bonus
    also pulls towards it, so the same config is run against the frozen biased start
    (pool_prob 1, no new snapshots: an opponent that does not adapt): it learns to
    exploit rock and ends exploitable (0.63 on seed 0), failing the same bar. It is the
    opponent that moves with the learner that brings it to the equilibrium."""
    start, s = _rps_from_a_biased_start(tmp_path, monkeypatch, seed=0)
    assert start > 0.8, start  # the start is exploitable
    assert s["exploitability"] < 0.15, s
    frozen_start, frozen = _rps_from_a_biased_start(
        tmp_path, monkeypatch, seed=0, pool_prob=1.0, snapshot_every=10**9
    )
    assert frozen_start == start
    assert frozen["exploitability"] > 0.15, frozen


#: Win rates against random (first, second) the connect-four test run must reach; see
#: test_connect_four_beats_random_and_the_best_constant_policy for how they were set.
C4_BARS = (0.88, 0.83)


@pytest.fixture(scope="module")
def c4_run(tmp_path_factory):
    """The shipped connect-four config on a CI budget: 80k moves, 1 in 4 training games
    against alpha-beta depth 1/2 (the shipped 150k-move config: 3 in 4), seed 0 (~25
    CPU-s); the summary, shared by the two tests below."""
    return train(
        "selfplay_ppo",
        env=C4,
        steps=80_000,
        seed=0,
        out=tmp_path_factory.mktemp("c4") / "run",
        progress=False,
        overrides={"eval_every": 0, "search_games": 0, "search_opponent_frac": 0.25},
    )


def _c4_trivial() -> dict[str, tuple[float, float]]:
    """Win rates (first, second) vs random of the random player and of the best constant
    policy (lowest free column: it stacks column 0, then 1, ...), 200 games per seat on the
    summary's evaluation games (seed eval_seed(0): the same random opponent)."""
    return {
        name: tuple(
            games.play(C4, p, games.random_opponent, 200, seat, eval_seed(0))["win"]
            for seat in (0, 1)
        )
        for name, p in (("random", games.random_opponent), ("lowest column", _first_legal))
    }


@pytest.mark.slow
def test_connect_four_beats_random_and_the_best_constant_policy(c4_run):
    """The greedy policy must win >= 88% of 200 games moving first and >= 83% moving
    second against random, a bar the random player (58% / 41.5%) and the best constant
    policy, lowest free column (83.5% / 81% on the same games), both fail (asserted).

    How the bars were set (2026-12-04, this config and budget): seeds 0-4 won (first /
    second) 0.945 / 0.905, 0.94 / 0.925, 0.94 / 0.91, 0.925 / 0.89, 0.925 / 0.885
    (22-25 CPU-s each). Each bar is the lowest seed less two binomial standard errors of a
    200-game rate, rounded down to 0.01: 0.925 - 2 x 0.019 = 0.888 -> 0.88 and
    0.885 - 2 x 0.023 = 0.840 -> 0.83.

    What did not clear the constant: the shipped 3 in 4 share of games against
    alpha-beta at 40k moves (seeds 0-4: 0.87 / 0.745, 0.935 / 0.85, 0.87 / 0.835, 0.835 /
    0.89, 0.875 / 0.80) and at 80k (seed 0: 0.91 / 0.80); half the games at 80k (0.94 /
    0.885, 0.94 / 0.865, 0.97 / 0.93, 0.925 / 0.835, 0.965 / 0.90: every seed above the
    constant, but seed 3 by one standard error) and at 120k (seed 1: 0.855 / 0.755).
    Against alpha-beta it is the shipped 150k-move config's 3 in 4 share that wins moving
    first at depth 2 (a 25 % share at 150k moves with a 128-128 MLP won 75 % there;
    docs/beyond_multiagent_meta.md); this test is about play against random."""
    s = c4_run
    first_bar, second_bar = C4_BARS
    assert s["illegal_moves"] == 0
    assert s["win_vs_random_first"] >= first_bar, s
    assert s["win_vs_random_second"] >= second_bar, s
    for name, (first, second) in _c4_trivial().items():
        assert first < first_bar and second < second_bar, (name, first, second)
