"""Tests of paper 001's Figure-3 problems and drivers: feature learning (closed-form head, exact
hypergradient, kappa control, stacking), MNIST re-weighting (shapes, corruption, weight diagnostics,
torch.func compatibility) and the helpers of bilevel.papers.paper001.experiments (exponent fit, penalty gaps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.papers.paper001 import experiments as paper001
from bilevel.oracles import Oracles
from bilevel.problems import feature_learning as FL
from bilevel.problems import per_coordinate
from bilevel.problems import reweighting as RW

F64 = torch.float64


@pytest.fixture(scope="module")
def split():
    return FL.space_ga_split(120, 80, seed=3, origin="fixture")


def rand_like(t, seed):
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(seed), dtype=t.dtype)


# -- feature learning ---------------------------------------------------------------------

def test_split_is_standardised_and_disjoint(split):
    assert split.X.shape == (120, 5) and split.X_val.shape == (80, 5)
    np.testing.assert_allclose(split.X.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(split.X.std(0), 1, atol=1e-12)
    assert abs(split.t.mean()) < 1e-12 and abs(split.t.std() - 1) < 1e-12
    assert split.meta["n_features"] == 5
    with pytest.raises(ValueError, match="cannot draw"):
        FL.space_ga_split(700, 200, origin="fixture")


@pytest.mark.parametrize("control", ["uniform", "top"])
def test_kappa_at_x0_is_exact_and_ridge_is_the_strong_convexity(split, control):
    p = FL.grid([split, split], [3.0, 12.0], width=8, ridge=0.5, kappa_control=control)
    W = p.x0.view(2, 8, 5)
    G = p.info["G"]
    H = W @ G @ W.transpose(1, 2) + 0.5 * torch.eye(8, dtype=F64)
    ev = torch.linalg.eigvalsh(H)
    torch.testing.assert_close(ev[:, 0], torch.full((2,), 0.5, dtype=F64))          # lambda_min = mu
    torch.testing.assert_close(ev[:, -1] / ev[:, 0], torch.tensor([3.0, 12.0], dtype=F64))
    # H is the Hessian of g in y
    x, y = p.x0, rand_like(p.y0, 1)
    v = rand_like(p.y0, 2)
    hv = Oracles(p).curvature(x, y).hvp(v)
    torch.testing.assert_close(hv, (H @ v.view(2, 8, 1)).reshape(-1))


def test_top_control_keeps_phis_scale_where_uniform_does_not(split):
    # Figure 3 left: kappa(x0) from 3 to 30. Scaling every singular value of X by s with a fixed ridge is
    # the problem at ridge mu/s^2, so ||grad Phi(x0)||^2 falls steeply with kappa (the counterfactual;
    # about kappa^-2 on space_ga, -1.3 on this small fixture); moving only the top one changes it far less.
    kappas = [3.0, 30.0]
    scale = {}
    for control, ridge in (("uniform", 1.0), ("top", 12.0)):
        p = FL.grid([split, split], kappas, width=32, ridge=ridge, init_seeds=[0, 0], kappa_control=control)
        g = p.grad_phi(p.x0).view(2, -1).pow(2).sum(1)
        scale[control] = float(np.log(g[1] / g[0]) / np.log(kappas[1] / kappas[0]))   # log-log slope
    assert scale["uniform"] < -1.0
    assert scale["top"] > -0.6 and scale["top"] - scale["uniform"] > 0.5
    with pytest.raises(ValueError, match="increase the ridge"):
        FL.grid([split], [1.05], width=16, ridge=12.0, kappa_control="top")


def test_y_star_solves_the_inner_problem_and_grad_phi_matches_finite_differences(split):
    p = FL.grid([split], [6.0], width=12, ridge=1.0)
    x = p.x0 + 0.1 * rand_like(p.x0, 5)
    ys = p.y_star(x)
    assert float(torch.linalg.vector_norm(Oracles(p).grad_y_g(x, ys))) < 1e-12
    v = rand_like(x, 6)
    eps = 1e-6
    fd = (p.phi(x + eps * v) - p.phi(x - eps * v)) / (2 * eps)
    assert float(p.grad_phi(x) @ v) == pytest.approx(float(fd), rel=1e-6, abs=1e-10)
    # implicit differentiation at y* gives the same hypergradient
    g, _ = bl.hypergrad.implicit(p, x, ys, linsys="cg", steps=50)
    torch.testing.assert_close(g, p.grad_phi(x), rtol=1e-8, atol=1e-12)


def test_grid_blocks_equal_separate_problems_and_itd_runs(split):
    other = FL.space_ga_split(120, 80, seed=4, origin="fixture")
    kap = [2.0, 7.0]
    stacked = FL.grid([split, other], kap, width=8, init_seeds=[3, 4], labels=kap)
    singles = [FL.grid([s], [k], width=8, init_seeds=[sd]) for s, k, sd in zip([split, other], kap, [3, 4])]
    torch.testing.assert_close(stacked.x0, torch.cat([s.x0 for s in singles]))
    torch.testing.assert_close(stacked.grad_phi(stacked.x0), torch.cat([s.grad_phi(s.x0) for s in singles]))
    L0 = [b["L0"] for b in stacked.info["blocks"]]
    s = bl.solvers.ITD(inner_steps=1, inner_lr=per_coordinate(stacked, [0.5 / v for v in L0], "y"),
                       outer_lr=per_coordinate(stacked, [0.5, 0.5], "x"))
    tr = bl.run(s, stacked, steps=5)
    for i, single in enumerate(singles):
        t1 = bl.run(bl.solvers.ITD(inner_steps=1, inner_lr=0.5 / L0[i], outer_lr=0.5), single, steps=5)
        got = tr[tr.block == kap[i]].grad_norm_sq.to_numpy()
        np.testing.assert_allclose(got, t1.grad_norm_sq.to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(tr[tr.block == kap[i]]["kappa"].to_numpy()[0], kap[i], rtol=1e-10)


def test_head_init_and_bad_arguments(split):
    p = FL.grid([split], [4.0], width=8, head_init="ridge")
    torch.testing.assert_close(p.y0, p.y_star(p.x0))
    with pytest.raises(ValueError, match="kappas must be > 1"):
        FL.grid([split], [1.0], width=8)
    with pytest.raises(ValueError, match="kappa_control"):
        FL.grid([split], [4.0], width=8, kappa_control="bottom")
    with pytest.raises(ValueError, match="head_init"):
        FL.grid([split], [4.0], width=8, head_init="zeros")
    with pytest.raises(ValueError, match="one kappa per split"):
        FL.grid([split], [4.0, 5.0], width=8)


def test_phi_smoothness_is_the_hessian_norm(split):
    p = FL.grid([split], [4.0], width=4)
    n = p.dim_x
    xl = p.x0.detach().requires_grad_(True)
    Hphi = torch.autograd.functional.hessian(p.phi, xl)
    assert Hphi.shape == (n, n)
    exact = float(torch.linalg.matrix_norm(Hphi, ord=2))
    assert float(FL.phi_smoothness(p, iters=300)[0]) == pytest.approx(exact, rel=1e-4)


# -- re-weighting ----------------------------------------------------------------------------

def test_corrupt_labels_exact_fraction_and_always_wrong():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=500)
    noisy, flipped = RW.corrupt_labels(labels, 0.2, 10, np.random.default_rng(1))
    assert flipped.sum() == 100
    assert (noisy[flipped] != labels[flipped]).all() and (noisy[~flipped] == labels[~flipped]).all()
    # wrong labels are spread over the 9 other classes
    shift = (noisy[flipped] - labels[flipped]) % 10
    assert set(np.unique(shift)) <= set(range(1, 10)) and len(np.unique(shift)) >= 8


def test_mnist_reweighting_problem_shapes_metrics_and_losses():
    p = RW.mnist(n_train=60, n_val=30, n_test=20, hidden=8, seed=2, origin="fixture")
    assert p.dim_x == 60 and p.dim_y == 784 * 8 + 8 + 8 * 10 + 10 and p.info["n_params"] == p.dim_y
    assert int(p.info["flipped"].sum()) == 12
    assert set(p.metrics) >= {"val_loss", "val_acc", "test_loss", "test_acc", "flip_precision", "flip_auc"}
    # at x0 = 0 the weights are 1/2: g = mean CE / 2, and f = mean validation CE
    from bilevel.problems.reweighting import mlp_logits, mlp_shapes
    shapes = mlp_shapes([784, 8, 10])
    assert float(p.metrics["flip_weight_corrupted"](p.x0, p.y0)) == 0.5
    assert p.metrics["flip_auc"](p.x0, p.y0) == 0.5
    assert 0 <= p.metrics["val_acc"](p.x0, p.y0) <= 1
    assert mlp_logits(p.y0, torch.zeros(3, 784), shapes).shape == (3, 10)
    # deterministic under the seed
    q = RW.mnist(n_train=60, n_val=30, n_test=20, hidden=8, seed=2, origin="fixture")
    assert torch.equal(p.y0, q.y0) and (p.info["flipped"] == q.info["flipped"]).all()


def test_reweighting_functions_are_torch_func_friendly():
    p = RW.mnist(n_train=20, n_val=10, n_test=0, hidden=4, seed=0, origin="fixture", dtype=F64)
    x = 0.3 * rand_like(p.x0, 1)
    y = p.y0
    gy_func = torch.func.grad(p.g, argnums=1)(x, y)
    gy_auto = Oracles(p).grad_y_g(x, y)
    torch.testing.assert_close(gy_func, gy_auto)
    gr, _ = bl.hypergrad.unrolled(p, x, y, steps=2, lr=0.05, mode="reverse")
    gf, _ = bl.hypergrad.unrolled(p, x, y, steps=2, lr=0.05, mode="forward")
    torch.testing.assert_close(gr, gf, rtol=1e-9, atol=1e-12)


def test_reweighting_weight_change_metrics():
    p = RW.mnist(n_train=40, n_val=20, n_test=0, hidden=4, seed=0, origin="fixture")
    assert p.metrics["logit_change_max"](p.x0, p.y0) == 0.0 and p.metrics["weight_change_max"](p.x0, p.y0) == 0.0
    x = p.x0.clone()
    x[3] = -2.0
    assert p.metrics["logit_change_max"](x, p.y0) == pytest.approx(2.0)
    assert p.metrics["weight_change_max"](x, p.y0) == pytest.approx(0.5 - float(torch.sigmoid(torch.tensor(-2.0))))


def test_plain_gd_at_the_papers_outer_lr_leaves_the_weights_at_one_half_and_adam_moves_them():
    """The 1/n-averaged hypergradient is tiny: 1e-3 plain steps barely move x; Adam moves each logit ~1e-3 a step (|m|/sqrt(s) can slightly exceed 1)."""
    p = RW.mnist(n_train=100, n_val=50, n_test=0, hidden=8, seed=0, origin="fixture")
    kw = dict(inner_steps=1, inner_lr=0.05, outer_lr=1e-3)
    gd = bl.run(bl.solvers.ITD(**kw), p, steps=20, eval_every=20)
    adam = bl.run(bl.solvers.ITD(outer_optimizer="adam", **kw), p, steps=20, eval_every=20)
    assert gd.logit_change_max.iloc[-1] < 1e-4
    assert 5e-3 < adam.logit_change_max.iloc[-1] < 2 * 20 * 1e-3   # |Adam step| is about lr, not 1e-6


def test_weight_diagnostics():
    x = torch.tensor([-3.0, -2.0, 0.0, 1.0, 2.0, -1.0])
    flipped = torch.tensor([True, False, False, False, True, True])
    d = RW.weight_diagnostics(x, flipped)
    # lowest 3 logits: indices 0, 1, 5 -> corrupted: 0, 5 -> precision 2/3
    assert d["precision"] == pytest.approx(2 / 3) and d["recall"] == pytest.approx(2 / 3)
    # pairs (corrupted, clean) with corrupted weight lower: -3<all 3, -1< 0,1 but > -2, 2 > all -> (3+2+0)/9
    assert d["auc"] == pytest.approx(5 / 9)
    assert d["weight_corrupted"] == pytest.approx(float(torch.sigmoid(x[flipped]).mean()))
    ties = RW.weight_diagnostics(torch.zeros(6), flipped)
    assert ties["auc"] == 0.5


def test_itd_step_on_reweighting_moves_weights_of_corrupted_samples_down():
    """A few single-loop ITD steps with a large outer step already rank corrupted samples lower."""
    p = RW.mnist(n_train=200, n_val=100, n_test=0, hidden=16, seed=0, origin="fixture")
    tr = bl.run(bl.solvers.ITD(inner_steps=1, inner_lr=0.05, outer_lr=1000.0), p, steps=30, eval_every=10)
    assert tr.flip_auc.iloc[-1] > 0.6
    assert tr.flip_weight_corrupted.iloc[-1] < tr.flip_weight_clean.iloc[-1]


# -- drivers' helpers -----------------------------------------------------------------------------

def test_exponent_fit_recovers_a_power_law_with_its_interval():
    rng = np.random.default_rng(0)
    rows = []
    kappas = np.array([2.0, 3.0, 5.0, 8.0, 13.0, 21.0])
    for seed in range(4):
        c = rng.uniform(0.5, 2.0)
        noise = rng.normal(0, 0.05, size=kappas.size)
        for k, e in zip(kappas, noise):
            rows.append({"seed": seed, "kappa0": k, "avg_grad_norm_sq": c * k ** 2.26 * np.exp(e)})
    fits = paper001.exponent_fit(pd.DataFrame(rows))
    mean = fits[fits.fit == "mean over seed"].iloc[0]
    assert mean.ci_low < 2.26 < mean.ci_high and mean.ci_high - mean.ci_low < 0.3
    assert len(fits) == 4 + 2


def test_penalty_gap_table_rates():
    g = paper001.penalty_gap_table([2.0, 4.0, 8.0], [1e3, 1e4, 1e5], f_curvature_over_L=1.0)
    for _, d in g.groupby("kappa"):
        assert np.polyfit(np.log(d.lmbda), np.log(d.gap_x0), 1)[0] == pytest.approx(-1, abs=0.02)
    top = g[g.lmbda == 1e5]
    assert np.polyfit(np.log(top.kappa), np.log(top.gap_x0), 1)[0] == pytest.approx(3, abs=0.1)
    flat = paper001.penalty_gap_table([2.0, 4.0], [1.0, 10.0], f_curvature_over_L=0.0)
    assert (flat.gap_x0 < 1e-12).all() and (flat.stationary_grad_norm_sq < 1e-20).all()


def test_curved_quadratic_grad_phi_is_the_gradient_of_phi():
    p = paper001.quadratic001_f_curved(3.0, f_curvature=0.3)
    x = torch.tensor([0.4, -1.3], dtype=F64).requires_grad_(True)
    auto, = torch.autograd.grad(p.phi(x), x)
    torch.testing.assert_close(p.grad_phi(x.detach()), auto)
    assert paper001.quadratic001_f_curved(3.0, 0.0).name.startswith("quadratic001(kappa=3")
