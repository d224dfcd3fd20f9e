"""Per-epoch LR schedules and the SGD optimizer (docs/method.md §4.3).

The expected sequences are written out here from the spec's prose; the scheduler is stepped
once per epoch, and the LR used during epoch e is read before that epoch's step.
"""
import math

import pytest
import torch

from croft.config import get_cfg_default

from croft.engine import optim


def croft_optim_cfg(**overrides):
    cfg = get_cfg_default().OPTIM
    cfg.NAME = "sgd"
    cfg.LR = 0.002
    cfg.WEIGHT_DECAY = 0.1
    cfg.LR_SCHEDULER = "cosine"
    cfg.MAX_EPOCH = 30
    cfg.WARMUP_EPOCH = 1
    cfg.WARMUP_TYPE = "constant"
    cfg.WARMUP_CONS_LR = 1e-5
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def epoch_lrs(optim_cfg, epochs=None):
    param = torch.nn.Parameter(torch.zeros(3))
    opt = optim.build_optimizer([param], optim_cfg)
    sched = optim.build_lr_scheduler(opt, optim_cfg)
    lrs = []
    for _ in range(optim_cfg.MAX_EPOCH if epochs is None else epochs):
        lrs.append(opt.param_groups[0]["lr"])
        # one (gradient-free) epoch of training, then the per-epoch scheduler step
        opt.step()
        sched.step()
    return lrs, opt


def assert_seq(actual, expected, tol):
    assert len(actual) == len(expected)
    for e, (a, b) in enumerate(zip(actual, expected)):
        assert abs(a - b) <= tol, f"epoch {e}: lr {a!r} != {b!r}"


def test_croft_schedule_constant_warmup_then_cosine():
    cfg = croft_optim_cfg()
    lrs, _ = epoch_lrs(cfg)
    expected = [1e-5] + [0.5 * 0.002 * (1 + math.cos(math.pi * (e - 1) / 30)) for e in range(1, 30)]
    assert_seq(lrs, expected, 1e-12)
    # spot values of the reference schedule (docs/method.md §4.3)
    for e, value in ((0, 1e-5), (1, 0.002), (2, 0.0019945), (3, 0.0019781), (29, 2.185e-5)):
        assert abs(lrs[e] - value) <= 1e-7, (e, lrs[e], value)
    # the cosine counter starts at 0 right after the warmup epoch, so epoch 1 is the peak
    assert lrs[1] == pytest.approx(0.002, abs=1e-15)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))


def test_plain_cosine_without_warmup():
    for warmup in (-1, 0):
        cfg = croft_optim_cfg(WARMUP_EPOCH=warmup, MAX_EPOCH=10)
        lrs, _ = epoch_lrs(cfg)
        expected = [0.5 * 0.002 * (1 + math.cos(math.pi * e / 10)) for e in range(10)]
        assert_seq(lrs, expected, 1e-12)


def test_single_step_schedule():
    # STEPSIZE -1: Dassl uses step size = MAX_EPOCH, i.e. a constant LR during training.
    cfg = croft_optim_cfg(LR_SCHEDULER="single_step", WARMUP_EPOCH=-1, MAX_EPOCH=10, STEPSIZE=(-1,))
    lrs, _ = epoch_lrs(cfg)
    assert_seq(lrs, [0.002] * 10, 1e-15)
    # STEPSIZE 4, GAMMA 0.1: decay by 10x every 4 epochs.
    cfg = croft_optim_cfg(LR_SCHEDULER="single_step", WARMUP_EPOCH=-1, MAX_EPOCH=10, STEPSIZE=(4,), GAMMA=0.1)
    lrs, _ = epoch_lrs(cfg)
    assert_seq(lrs, [0.002 * 0.1 ** (e // 4) for e in range(10)], 1e-15)


def test_sgd_optimizer_settings():
    cfg = croft_optim_cfg()
    param = torch.nn.Parameter(torch.zeros(3))
    opt = optim.build_optimizer([param], cfg)
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert group["momentum"] == 0.9
    assert group["weight_decay"] == cfg.WEIGHT_DECAY == 0.1
    assert group["dampening"] == 0
    assert group["nesterov"] is False
    assert group["lr"] == pytest.approx(0.002)
    assert group["params"] == [param]
    # building the scheduler applies the epoch-0 (warmup) LR immediately
    optim.build_lr_scheduler(opt, cfg)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5, abs=1e-15)


def test_sgd_step_is_coupled_weight_decay_with_momentum():
    """Two steps of the built optimizer against the hand-written update of §2.2."""
    cfg = croft_optim_cfg()
    theta0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    param = torch.nn.Parameter(theta0.clone())
    opt = optim.build_optimizer([param], cfg)
    grads = [torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64), torch.tensor([-0.1, 0.4, 0.0], dtype=torch.float64)]
    theta, buf = theta0.clone(), None
    for g in grads:
        param.grad = g.clone()
        opt.step()
        d = g + 0.1 * theta
        buf = d if buf is None else 0.9 * buf + d
        theta = theta - 0.002 * buf
    assert torch.allclose(param.detach(), theta, atol=1e-15, rtol=0)
