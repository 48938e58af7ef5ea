"""Outer update rules (bilevel.outer), the solvers' outer_optimizer / max_abs options and
step rules: Adam equals torch.optim.Adam, defaults unchanged, guards trip, bad input raises."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import bilevel as bl
from bilevel import outer
from bilevel.errors import DivergenceError
from bilevel.problems import hyperparam


def _torch_adam_path(x0, grads, lr, betas, eps):
    p = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    out = []
    for g in grads:
        opt.zero_grad()
        p.grad = g.clone()
        opt.step()
        out.append(p.detach().clone())
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-8), ((0.5, 0.9), 1e-3), ((0.0, 0.0), 1e-8)])
def test_adam_update_equals_torch_adam(dtype, betas, eps):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, generator=gen, dtype=dtype)
    grads = [torch.randn(50, generator=gen, dtype=dtype) * 10 ** (i % 3 - 1) for i in range(25)]
    ref = _torch_adam_path(x, grads, 0.05, betas, eps)
    st = outer.adam_init(x)
    for i, g in enumerate(grads):
        x, st = outer.adam_update(x, g, st, 0.05, betas, eps)
        assert torch.equal(x, ref[i]), (i, float((x - ref[i]).abs().max()))
    assert st.count == len(grads)


def test_adam_tensor_lr_matches_scalar_lr():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, generator=gen, dtype=torch.float64)
    g = torch.randn(8, generator=gen, dtype=torch.float64)
    a, _ = outer.adam_update(x, g, outer.adam_init(x), 0.1)
    b, _ = outer.adam_update(x, g, outer.adam_init(x), torch.full_like(x, 0.1))
    torch.testing.assert_close(a, b, rtol=1e-15, atol=1e-15)


def _solvers(opt, **kw):
    return [bl.solvers.AID(inner_steps=3, inner_lr=1.0, linsys="gd", linsys_steps=2, linsys_lr=1.0,
                           outer_lr=0.05, outer_optimizer=opt, **kw),
            bl.solvers.ITD(inner_steps=3, inner_lr=1.0, outer_lr=0.05, outer_optimizer=opt, **kw)]


@pytest.mark.parametrize("warm", [True, False])
@pytest.mark.parametrize("which", [0, 1])
def test_solver_adam_path_equals_torch_adam_on_its_hypergradients(which, warm):
    """x_{k+1} of outer_optimizer="adam" = torch.optim.Adam fed the solver's own estimates."""
    p = bl.problems.quadratic.kappa2d(kappa=3.0)
    s = _solvers("adam", warm_start=warm, adam_betas=(0.8, 0.99), adam_eps=1e-6)[which]
    o = bl.oracles.Oracles(p)
    gen = torch.Generator()
    st = s.init(p, o, gen)
    assert type(st).__name__.endswith("AdamState")
    xs, grads = [], []
    for _ in range(20):
        st, info = s.step(st, o, gen)
        grads.append(info.hypergrad)
        xs.append(st.x)
    ref = _torch_adam_path(p.x0, grads, 0.05, (0.8, 0.99), 1e-6)
    for a, b in zip(xs, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("which", [0, 1])
def test_adam_costs_no_oracle_call_and_sgd_is_the_default(which):
    p = bl.problems.quadratic.kappa2d(kappa=3.0)
    sgd, adam = _solvers("sgd")[which], _solvers("adam")[which]
    default = type(sgd)(**{k: v for k, v in sgd.hyperparams().items()
                           if k not in ("outer_optimizer", "adam_betas", "adam_eps")})
    t_sgd, t_adam = bl.run(sgd, p, steps=7), bl.run(adam, p, steps=7)
    t_def = bl.run(default, p, steps=7)
    for c in ("grad_calls", "mv_calls", "grad_f_calls", "grad_g_calls", "hvp_calls", "jvp_calls"):
        assert t_sgd[c].tolist() == t_adam[c].tolist()
    assert t_sgd.grad_norm_sq.tolist() == t_def.grad_norm_sq.tolist()
    assert t_sgd.grad_norm_sq.tolist() != t_adam.grad_norm_sq.tolist()


def test_sgd_update_is_plain_gradient_step_bitwise():
    """The default outer step is exactly x - beta * grad (bit-identical to the old solvers)."""
    p = bl.problems.quadratic.kappa2d(kappa=2.0)
    s = bl.solvers.AID(inner_steps=2, inner_lr=5.0, linsys_steps=3, linsys_lr=5.0, outer_lr=0.02)
    o = bl.oracles.Oracles(p)
    st = s.init(p, o, torch.Generator())
    assert type(st) is bl.solvers.aid.AIDState
    for _ in range(5):
        x = st.x
        st, info = s.step(st, o, None)
        assert torch.equal(st.x, x - 0.02 * info.hypergrad)


@pytest.mark.parametrize("cls", [bl.solvers.AID, bl.solvers.ITD])
@pytest.mark.parametrize("bad", [dict(outer_optimizer="rmsprop"), dict(adam_betas=(1.0, 0.9)),
                                 dict(adam_betas=(0.9,)), dict(adam_betas=(0.9, -0.1)),
                                 dict(adam_betas="ab"), dict(adam_eps=0.0),
                                 dict(adam_eps=float("nan")), dict(max_abs=-1.0),
                                 dict(max_abs=0.0)])
def test_bad_outer_hyperparameters_raise(cls, bad):
    kw = dict(inner_lr=0.1, outer_lr=0.1)
    if cls is bl.solvers.AID:
        kw["linsys_lr"] = 0.1
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        cls(**kw, **bad)


def test_adam_betas_list_becomes_tuple():
    s = bl.solvers.ITD(inner_lr=0.1, outer_lr=0.1, outer_optimizer="adam", adam_betas=[0.5, 0.9])
    assert s.adam_betas == (0.5, 0.9)


def test_aid_guard_names_the_linear_system_and_the_iteration():
    """eta far above 2/L: v explodes; with max_abs the run stops naming v, else it runs on."""
    p = bl.problems.quadratic.kappa2d(kappa=2.0)       # L = 0.2: eta = 50 gives |1 - 50 L| = 9
    kw = dict(inner_steps=1, inner_lr=5.0, linsys_steps=5, linsys_lr=50.0, outer_lr=1e-6)
    bl.run(bl.solvers.AID(**kw), p, steps=3, growth_limit=None)   # finite, unguarded: no error
    with pytest.raises(DivergenceError) as e:
        bl.run(bl.solvers.AID(**kw, max_abs=1e3), p, steps=20, growth_limit=None)
    assert e.value.quantity == "v (linear-system solution)"
    assert e.value.iteration >= 0 and "exceeds" in str(e.value) and "exploded" in str(e.value)


def test_itd_guard_names_the_outer_iterate():
    p = bl.problems.quadratic.kappa2d(kappa=2.0)
    with pytest.raises(DivergenceError) as e:
        bl.run(bl.solvers.ITD(inner_lr=5.0, outer_lr=100.0, max_abs=1e3), p, steps=50)
    assert e.value.quantity.startswith("x") or e.value.quantity.startswith("y")


@pytest.fixture(scope="module")
def mnist64():
    return hyperparam.mnist_splits(60, 40, 30, origin="fixture", dtype=torch.float64)


def test_stable_step_keeps_aid_stable_where_a_fixed_step_explodes(mnist64):
    """lambda = e^4: the fixed steps 0.05 exceed 2/(L + lambda); the rule c/(L + lambda) does not."""
    prob = hyperparam.regularization(mnist64, seeds=(0, 1), theta0=4.0)
    L = hyperparam.ce_curvature(mnist64)
    assert 0.05 * (L + torch.e ** 4) > 2
    fixed = bl.solvers.AID(inner_steps=5, inner_lr=0.05, linsys_steps=20, linsys_lr=0.05,
                           outer_lr=1e-3, max_abs=1e4)
    with pytest.raises(DivergenceError):
        bl.run(fixed, prob, steps=5)
    rule = hyperparam.stable_step(mnist64, scale=1.0, n_seeds=2)
    stable = bl.solvers.AID(inner_steps=5, inner_lr=rule, linsys_steps=20, linsys_lr=rule,
                            outer_lr=1e-3, max_abs=1e4)
    tr = bl.run(stable, prob, steps=5)
    assert tr.val_loss.notna().all() and list(tr.block.unique()) == [0, 1]
    step = rule(prob.x0)
    assert step.shape == prob.y0.shape
    assert float(step[0]) == pytest.approx(1.0 / (L + torch.e ** 4))


def test_stable_step_rejects_bad_input():
    with pytest.raises(ValueError, match="scale"):
        hyperparam.StableStep(0.0, 10.0)
    with pytest.raises(ValueError, match="n_seeds"):
        hyperparam.StableStep(1.0, 10.0, 0)


# -- every other solver with an outer step (issue #10) ---------------------------------------
#: hyperparameters of a short float64 run on paper 001's quadratic, with schedules where the
#: solver has them (so Adam is fed the decayed step), one entry per registered solver family
OTHERS = {
    "f2sa": dict(inner_lr=1.0, outer_lr=0.05, lmbda=1.0, outer_decay=0.5),
    "soba": dict(inner_lr=1.0, outer_lr=0.05),
    "ma_soba": dict(inner_lr=1.0, outer_lr=0.05, momentum=0.5),
    "saba": dict(inner_lr=1.0, outer_lr=0.05),
    "ssaid": dict(inner_lr=1.0, linsys_lr=1.0, outer_lr=0.05),
    "stocbio": dict(inner_lr=1.0, neumann_lr=1.0, outer_lr=0.05),
    "bsa": dict(inner_lr=1.0, neumann_lr=1.0, outer_lr=0.05, outer_lr_decay=0.5),
    "ttsa": dict(inner_lr=1.0, neumann_lr=1.0, outer_lr=0.05, outer_lr_decay=0.5),
    "stable": dict(inner_lr=1.0, neumann_lr=1.0, outer_lr=0.05),
    "sustain": dict(inner_lr=1.0, neumann_lr=1.0, outer_lr=0.05, lr_decay=1 / 3),
    "vrbo": dict(inner_lr=1.0, neumann_lr=1.0, outer_lr=0.05),
    "unibio": dict(p=2.0, outer_lr=0.05, neumann_lr=1.0, inner_steps=10, outer_lr_decay=0.5),
}


def test_every_solver_with_an_outer_step_has_the_option():
    have = {n for n, c in bl.solvers.REGISTRY.items()
            if "outer_optimizer" in {f.name for f in dataclasses.fields(c)}}
    assert have == set(bl.solvers.REGISTRY)
    assert set(OTHERS) | {"aid", "itd"} == set(bl.solvers.REGISTRY)


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_adam_path_equals_torch_adam_for_every_solver(name, monkeypatch):
    """x_k of outer_optimizer="adam" = torch.optim.Adam fed the solver's own outer directions and
    (scheduled) steps, bit for bit in float64; the Adam run costs exactly the SGD run's oracle calls."""
    p = bl.problems.quadratic.kappa2d(kappa=3.0)
    fed = []
    real = outer.adam_update

    def spy(x, grad, state, lr, betas, eps):
        fed.append((grad.detach().clone(), lr))
        return real(x, grad, state, lr, betas, eps)

    monkeypatch.setattr(outer, "adam_update", spy)
    s = bl.solvers.make(name, **OTHERS[name], outer_optimizer="adam", adam_betas=(0.8, 0.99),
                        adam_eps=1e-6)
    o = bl.oracles.Oracles(p)
    gen = torch.Generator().manual_seed(0)
    st = s.init(p, o, gen)
    xs = []
    for _ in range(12):
        st, _ = s.step(st, o, gen)
        xs.append(st.x.detach().clone())
    assert len(fed) == 12 and len({lr for _, lr in fed}) == (1 if fed[0][1] == fed[-1][1] else 12)
    param = torch.nn.Parameter(p.x0.clone())
    opt = torch.optim.Adam([param], lr=fed[0][1], betas=(0.8, 0.99), eps=1e-6)
    for (g, lr), x in zip(fed, xs):
        opt.param_groups[0]["lr"] = lr
        param.grad = g.clone()
        opt.step()
        assert torch.equal(param.detach(), x), name
    monkeypatch.undo()
    sgd = bl.solvers.make(name, **OTHERS[name])
    o_sgd, o_adam = bl.oracles.Oracles(p), bl.oracles.Oracles(p)
    for solver, orc in ((sgd, o_sgd), (s, o_adam)):
        g = torch.Generator().manual_seed(0)
        state = solver.init(p, orc, g)
        for _ in range(12):
            state, _ = solver.step(state, orc, g)
    assert vars(o_sgd.counts) == vars(o_adam.counts)


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_default_outer_step_is_sgd_and_adds_no_state(name):
    s = bl.solvers.make(name, **OTHERS[name])
    assert (s.outer_optimizer, s.adam_betas, s.adam_eps) == ("sgd", (0.9, 0.999), 1e-8)
    p = bl.problems.quadratic.kappa2d(kappa=3.0)
    o = bl.oracles.Oracles(p)
    st = s.init(p, o, torch.Generator().manual_seed(0))
    assert st.outer is None
    st, _ = s.step(st, o, torch.Generator().manual_seed(0))
    assert st.outer is None


@pytest.mark.parametrize("name", sorted(OTHERS))
@pytest.mark.parametrize("bad", [dict(outer_optimizer="rmsprop"), dict(adam_betas=(1.0, 0.9)),
                                 dict(adam_eps=0.0)])
def test_bad_outer_hyperparameters_raise_for_every_solver(name, bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        bl.solvers.make(name, **OTHERS[name], **bad)
