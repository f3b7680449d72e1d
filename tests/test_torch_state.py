"""Modules, optimizers and schedulers survive a safetensors checkpoint bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rlfoundry.errors import RLFoundryError
from rlfoundry.runtime.run import Run
from rlfoundry.runtime.torch_state import (
    join_state,
    load_module_state,
    load_optimizer_state,
    load_scheduler_state,
    module_state,
    optimizer_state,
    scheduler_state,
    split_state,
)

torch.set_num_threads(1)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    # BatchNorm: buffers (running stats, an int64 counter) must travel too
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))


def _step(net: nn.Module, opt: torch.optim.Optimizer, sched=None, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, generator=g)
    loss = net(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()


def _params(net: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in net.state_dict().values()]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.8, 0.95), eps=1e-5),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: torch.optim.RMSprop(p, lr=1e-3, centered=True),
    ],
    ids=["adam", "adamw", "sgd", "rmsprop"],
)
def test_round_trip_through_checkpoint_gives_identical_next_steps(tmp_path, make_opt):
    net = _net(0)
    opt = make_opt(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 - e / 10)
    for i in range(3):
        _step(net, opt, sched, seed=i)

    lr_at_save = opt.param_groups[0]["lr"]
    opt_t, opt_s = optimizer_state("opt", opt)
    sch_t, sch_s = scheduler_state("sched", sched)
    with Run(tmp_path, 10, progress=False, tensorboard=False) as run:
        run.save_checkpoint(
            3, {**module_state("net", net), **opt_t, **sch_t}, {"opt": opt_s, "sched": sch_s}
        )
    # the uninterrupted run goes on
    for i in range(3, 6):
        _step(net, opt, sched, seed=i)
    expected = _params(net)

    # a fresh process-like rebuild from different init, restored from the file
    net2 = _net(1)
    opt2 = make_opt(net2.parameters())
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda e: 1.0 - e / 10)
    with Run(tmp_path, 10, resume=True, progress=False, tensorboard=False) as run:
        step, tensors, state = run.load_checkpoint()
    assert step == 3
    load_module_state("net", net2, tensors)
    load_optimizer_state("opt", opt2, tensors, state["opt"])
    load_scheduler_state("sched", sched2, tensors, state["sched"])
    assert opt2.param_groups[0]["lr"] == lr_at_save
    assert sched2.last_epoch == 3
    for i in range(3, 6):
        _step(net2, opt2, sched2, seed=i)
    for a, b in zip(expected, _params(net2), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_split_join_keeps_tuples_int_keys_and_tensors():
    obj = {
        "state": {0: {"step": torch.tensor(3.0), "m": torch.arange(4.0)}, 7: {}},
        "groups": [{"betas": (0.9, 0.999), "lr": 1e-3, "params": [0, 7], "name": None}],
    }
    tensors, skeleton = split_state("o", obj)
    back = join_state(tensors, json.loads(json.dumps(skeleton)))
    assert set(back["state"]) == {0, 7}
    assert back["groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["state"][0]["m"], obj["state"][0]["m"])
    assert back["groups"][0]["params"] == [0, 7] and back["groups"][0]["name"] is None


def test_saved_tensors_are_copies():
    net = _net(0)
    saved = module_state("n", net)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not torch.equal(saved["n/0.weight"], net[0].weight)


def test_mismatched_network_is_a_clear_error():
    saved = module_state("q", nn.Linear(4, 2))
    with pytest.raises(RLFoundryError, match="'q' network does not fit"):
        load_module_state("q", nn.Linear(4, 3), saved)
    with pytest.raises(RLFoundryError, match="does not fit"):
        load_module_state("other", nn.Linear(4, 2), saved)


def test_mismatched_optimizer_is_a_clear_error():
    a, b = nn.Linear(4, 2), nn.Sequential(nn.Linear(4, 2), nn.Linear(2, 2))
    opt_a = torch.optim.Adam(a.parameters())
    a(torch.ones(1, 4)).sum().backward()
    opt_a.step()
    t, s = optimizer_state("opt", opt_a)
    with pytest.raises(RLFoundryError, match="optimizer state does not fit"):
        load_optimizer_state("opt", torch.optim.Adam(b.parameters()), t, s)


def test_unstorable_values_are_refused():
    with pytest.raises(TypeError, match="Cannot store object"):
        split_state("x", {"f": object()})
