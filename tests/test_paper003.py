"""Paper 003 problems and drivers: gradients vs finite differences, exact oracles,
seed batching, determinism of tiny runs of every variant, claim helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.papers.paper003 import experiments as paper003
from bilevel.problems import hyperparam, hyperrep

AID_VARIANTS = [dict(method="aid", N=n, Q=q) for n, q in
                ((1, 1), (1, 20), (20, 1), (20, 20), (1, 50), (50, 1), (50, 50))]
ITD_VARIANTS = [dict(method="itd", N=1), dict(method="itd", N=20)]


def mnist_cfg(variants, **kw):
    """A MnistConfig of fixed steps (0.05, 0.05, 0.1); ``kw`` replaces fields."""
    aid = any(v["method"] == "aid" for v in variants)
    base = dict(variants=variants, seeds=[0, 1], origin="fixture", n_train=80, n_val=40, n_test=40, budget=120,
                step_rule="fixed", inner_lr=0.05, linsys_lr=0.05 if aid else None, outer_lr=0.1,
                per_parameter=False, theta0=0.0, max_abs=None, min_theta_change=0.0, curve_points=30,
                torch_threads=1)
    return paper003.MnistConfig(**{**base, **kw})


def hyperrep_cfg(variants, **kw):
    base = dict(variants=variants, seeds=[0, 1], steps=20, inner_lr=1e-3, linsys_lr=1e-3, outer_lr=0.003,
                eval_every=10, torch_threads=1)
    return paper003.HyperrepConfig(**{**base, **kw})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small problems: one intra-op thread (two threads on a busy 2-core machine cost ~10x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist64():
    """A tiny float64 slice of the committed MNIST fixture."""
    return hyperparam.mnist_splits(60, 40, 30, origin="fixture", dtype=torch.float64)


def _fd_check(fn, z, direction, grad, eps=1e-6, rtol=1e-5):
    """Central finite difference of the scalar fn along ``direction`` vs <grad, direction>."""
    fd = (float(fn(z + eps * direction)) - float(fn(z - eps * direction))) / (2 * eps)
    an = float(torch.dot(grad, direction))
    assert fd == pytest.approx(an, rel=rtol, abs=1e-8), (fd, an)


def _rand(n, seed):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- MNIST problem

def test_mnist_splits_sizes_and_normalization(mnist64):
    assert mnist64.sizes == {"train": 60, "val": 40, "test": 30}
    from bilevel.data import load_mnist
    raw = load_mnist("train", origin="fixture")
    want = (raw.x[60:100].reshape(40, -1) / 255.0 - 0.1307) / 0.3081
    assert np.allclose(mnist64.x_val.numpy(), want, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds"):
        hyperparam.mnist_splits(900, 200, origin="fixture")


@pytest.mark.parametrize("per_parameter", [False, True])
def test_mnist_gradients_match_finite_differences(mnist64, per_parameter):
    p = hyperparam.regularization(mnist64, per_parameter=per_parameter, seeds=(3, 0), theta0=-1.0)
    x = p.x0 + 0.3 * _rand(p.dim_x, 1)
    y = 0.05 * _rand(p.dim_y, 2)
    o = bl.oracles.Oracles(p)
    gx, gy = o.grad_g(x, y)
    fx, fy = o.grad_f(x, y)
    for dx, dy in [(_rand(p.dim_x, 10), _rand(p.dim_y, 11)),
                                  (_rand(p.dim_x, 12), _rand(p.dim_y, 13))]:
        _fd_check(lambda z: p.g(x, z), y, dy, gy)
        _fd_check(lambda z: p.g(z, y), x, dx, gx)
        _fd_check(lambda z: p.f(x, z), y, dy, fy)
        assert float(fx.abs().max()) == 0.0       # f does not depend on theta
    # second order: Hessian- and Jacobian-vector products vs differences of gradients
    curv = o.curvature(x, y)
    v, eps = _rand(p.dim_y, 20), 1e-5
    hv = curv.hvp(v)
    fd = (o.grad_y_g(x, y + eps * v) - o.grad_y_g(x, y - eps * v)) / (2 * eps)
    assert torch.allclose(hv, fd, rtol=1e-5, atol=1e-7)
    jv = curv.jvp(v)
    dx = _rand(p.dim_x, 21)
    fdj = (torch.dot(o.grad_y_g(x + eps * dx, y), v) - torch.dot(o.grad_y_g(x - eps * dx, y), v)) / (2 * eps)
    assert float(torch.dot(jv, dx)) == pytest.approx(float(fdj), rel=1e-5, abs=1e-8)


def test_mnist_regularizer_and_losses_are_the_paper_objective(mnist64):
    p = hyperparam.regularization(mnist64, seeds=(0,), theta0=0.7)
    y = p.y0
    W = y.view(10, 785)
    ce = torch.nn.functional.cross_entropy(mnist64.x_train @ W[:, :784].T + W[:, 784], mnist64.y_train)
    want = ce + 0.5 * np.exp(0.7) * torch.dot(y, y)
    assert float(p.g(p.x0, y)) == pytest.approx(float(want), rel=1e-12)
    vce = torch.nn.functional.cross_entropy(mnist64.x_val @ W[:, :784].T + W[:, 784], mnist64.y_val)
    assert float(p.f(p.x0, y)) == pytest.approx(float(vce), rel=1e-12)
    m = {k: float(fn(p.x0, y)[0]) for k, fn in p.metrics.items()}
    assert m["train_loss"] == pytest.approx(float(ce), rel=1e-12)
    assert m["val_loss"] == pytest.approx(float(vce), rel=1e-12)
    assert m["log_lambda"] == pytest.approx(0.7)
    # Kaiming normal, fan_out = 10: std sqrt(2/10); seeds differ
    w0 = hyperparam.kaiming_init(0, torch.float64)
    assert float(w0.std()) == pytest.approx(np.sqrt(0.2), rel=0.05)
    assert not torch.equal(w0, hyperparam.kaiming_init(1, torch.float64))


def test_mnist_seed_batch_is_the_sum_of_single_seed_problems(mnist64):
    both = hyperparam.regularization(mnist64, seeds=(0, 1))
    one = [hyperparam.regularization(mnist64, seeds=(s,)) for s in (0, 1)]
    x = torch.tensor([0.2, -0.5], dtype=torch.float64)
    assert torch.equal(both.y0, torch.cat([q.y0 for q in one]))
    g_sum = sum(float(q.g(x[i:i + 1], q.y0)) for i, q in enumerate(one))
    assert float(both.g(x, both.y0)) == pytest.approx(g_sum, rel=1e-12)
    # one AID step on the batch = the single-seed steps, per block
    aid = bl.solvers.AID(inner_steps=3, inner_lr=0.05, linsys_steps=2, linsys_lr=0.05, outer_lr=0.1)
    tb = bl.run(aid, both, steps=3, seed=0)
    for i, (s, q) in enumerate(zip((0, 1), one)):
        ts = bl.run(aid, q, steps=3, seed=0)
        for name in ("val_loss", "test_loss", "log_lambda"):
            a = tb[tb.block == s][name].to_numpy()
            b = ts[name].to_numpy()
            assert np.allclose(a, b, rtol=1e-10, atol=1e-12), (name, a, b)


# ----------------------------------------------------------------------------- hyper-representation

def test_hyperrep_data_reproduce_sow_et_al():
    D = hyperrep.sow_data()
    torch.manual_seed(0)
    assert torch.equal(torch.randn(64, 128), D["H_true"])      # same stream as torch.manual_seed(0)
    p = hyperrep.hyper_representation(dtype=torch.float32)
    y = p.y0
    o = bl.oracles.Oracles(p)
    for _ in range(20):                                        # Sow's inner solver, T = 20, alpha = 1e-3
        y = y - 1e-3 * o.grad_y_g(p.x0, y)
    assert float(p.f(p.x0, y)) == pytest.approx(508.63787841796875, rel=1e-5)  # their "outer step=0"


def test_hyperrep_gradients_and_exact_oracles():
    p = hyperrep.hyper_representation(seeds=(0, 2))
    x, y = p.x0, p.y0
    o = bl.oracles.Oracles(p)
    gx, gy = o.grad_g(x, y)
    fx, fy = o.grad_f(x, y)
    dx, dy = _rand(p.dim_x, 1), _rand(p.dim_y, 2)
    _fd_check(lambda z: p.g(x, z), y, dy, gy)
    _fd_check(lambda z: p.g(z, y), x, dx, gx)
    _fd_check(lambda z: p.f(x, z), y, dy, fy)
    _fd_check(lambda z: p.f(z, y), x, dx, fx)
    ys = p.y_star(x)
    assert float(o.grad_y_g(x, ys).abs().max()) < 1e-9          # y* solves the inner problem
    _fd_check(p.phi, x, dx, p.grad_phi(x), eps=1e-6, rtol=1e-5)  # exact hypergradient
    # the AID formula at y* with an exact linear solve gives grad_phi
    g, _ = bl.hypergrad.implicit(p, x, ys, linsys="cg", steps=300)
    assert torch.allclose(g, p.grad_phi(x), rtol=1e-6, atol=1e-9)
    # blocks are the seeds; seed 2's block equals the single-seed problem
    single = hyperrep.hyper_representation(seeds=(2,))
    assert p.blocks.labels == (0, 2)
    assert torch.equal(p.blocks.split(p.x0, "x")[1], single.x0)
    assert float(p.metrics["phi"](x, y)[1]) == pytest.approx(float(single.phi(single.x0)), rel=1e-10)


def test_hyperrep_rejects_bad_arguments():
    with pytest.raises(ValueError):
        hyperrep.hyper_representation(seeds=(0, 0))
    with pytest.raises(ValueError):
        hyperrep.hyper_representation(gamma=0.0)
    with pytest.raises(ValueError):
        hyperrep.sow_data("huge")


# ----------------------------------------------------------------------------- drivers

def test_variant_arithmetic():
    assert paper003.variant_key(dict(method="aid", N=20, Q=1)) == "aid_N20_Q1"
    assert paper003.scheme(dict(method="aid", N=20, Q=1)) == "N-loop"
    assert paper003.scheme(dict(method="aid", N=1, Q=20)) == "Q-loop"
    assert paper003.scheme(dict(method="itd", N=1)) == "No-loop"
    assert paper003.step_cost(dict(method="aid", N=20, Q=20)) == 42
    assert paper003.step_cost(dict(method="itd", N=20)) == 60
    assert paper003.budget_steps(dict(method="aid", N=50, Q=50), 320) == 3
    assert paper003.budget_steps(dict(method="aid", N=50, Q=50), 10) == 1
    with pytest.raises(ValueError):
        paper003.variant_key(dict(method="sgd", N=1))


def test_configs_are_validated_in_one_place():
    from bilevel.notebook import UnknownParameterError, load_params
    cfg = load_params("paper003_mnist_aid", "smoke", config=paper003.MnistConfig)
    assert cfg.variants[1] == {"method": "aid", "inner_steps": 1, "linsys_steps": 20} and cfg.origin == "fixture"
    itd = load_params("paper003_mnist_itd", "smoke", config=paper003.MnistConfig)
    assert itd.linsys_lr is None                                           # ITD gets no linsys_lr
    for profile in ("paper", "cpu"):
        load_params("paper003_mnist_itd", profile, config=paper003.MnistConfig)
        load_params("paper003_mnist_aid", profile, config=paper003.MnistConfig)
    load_params("paper003_hyperrep_runs", "paper", config=paper003.HyperrepConfig)
    values = vars(load_params("paper003_mnist_itd", "smoke"))
    with pytest.raises(UnknownParameterError, match=r"sec: unknown parameter\(s\) \['source'\] for MnistConfig"):
        paper003.MnistConfig.from_params({**values, "source": "auto"}, where="sec")
    with pytest.raises(UnknownParameterError, match=r"missing parameter\(s\) \['budget'\]"):
        paper003.MnistConfig.from_params({k: v for k, v in values.items() if k != "budget"}, where="sec")
    with pytest.raises(ValueError, match="sec: .*no variant is AID"):
        paper003.MnistConfig.from_params({**values, "linsys_lr": 1.0}, where="sec")
    with pytest.raises(ValueError, match="AID variants need linsys_lr"):
        mnist_cfg(AID_VARIANTS, linsys_lr=None)
    with pytest.raises(ValueError, match="budget .* violates 'int >= 1'"):
        mnist_cfg(AID_VARIANTS, budget=0)
    with pytest.raises(ValueError, match="variants = \\[\\] violates 'non-empty list'"):
        mnist_cfg([])
    with pytest.raises(ValueError, match="seeds = \\[0.5\\] violates 'list\\[int\\]'"):
        mnist_cfg(AID_VARIANTS, seeds=[0.5])
    with pytest.raises(ValueError, match="ITD has no linsys_steps"):
        mnist_cfg([dict(method="itd", inner_steps=5, linsys_steps=5)])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['inner_step'\]"):
        mnist_cfg([dict(method="aid", inner_step=5)])
    with pytest.raises(ValueError, match="not both"):
        paper003.variant_key(dict(method="aid", N=5, inner_steps=5))
    # the solver's field names and the paper's symbols give the same variant
    assert paper003.variant_key(dict(method="aid", inner_steps=20, linsys_steps=1)) == "aid_N20_Q1"
    s = paper003.make_solver(dict(method="aid", inner_steps=20, linsys_steps=3), 0.1, 0.2, 0.3)
    assert (s.inner_steps, s.linsys_steps, s.inner_lr, s.linsys_lr, s.outer_lr) == (20, 3, 0.1, 0.2, 0.3)


def _drop_time(df):
    return df.drop(columns=[c for c in df.columns if "time" in c])


def test_tiny_mnist_runs_of_every_variant_are_deterministic():
    data = hyperparam.mnist_splits(80, 40, 40, origin="fixture")
    cfg = mnist_cfg(AID_VARIANTS + ITD_VARIANTS, curve_points=5)
    a, sa = paper003.mnist_runs(cfg, data=data)
    b, sb = paper003.mnist_runs(cfg, data=data)
    pd.testing.assert_frame_equal(_drop_time(a), _drop_time(b))
    pd.testing.assert_frame_equal(_drop_time(sa), _drop_time(sb))
    assert set(a.variant) == {paper003.variant_key(v) for v in AID_VARIANTS + ITD_VARIANTS}
    for row in sa.itertuples():                                    # the oracle arithmetic
        mv = row.Q + 1 if row.method == "aid" else 2 * row.N - 1
        assert (row.grad_calls, row.mv_calls) == (row.K * (row.N + 1), row.K * mv)
    assert np.isfinite(a[["train_loss", "val_loss", "test_loss"]].to_numpy()).all()
    # a different seed set changes the numbers
    c, _ = paper003.mnist_runs(mnist_cfg(AID_VARIANTS[:1], seeds=[2], budget=40), data=data)
    assert not np.allclose(c.test_loss.iloc[-1], a[(a.variant == "aid_N1_Q1") & (a.seed == 0)].test_loss.iloc[-1])


def test_tiny_hyperrep_runs_of_every_variant_are_deterministic():
    variants = ITD_VARIANTS + [dict(method="aid", N=n, Q=q) for n in (1, 20) for q in (1, 20)]
    a = paper003.hyperrep_runs(hyperrep_cfg(variants))
    b = paper003.hyperrep_runs(hyperrep_cfg(variants))
    pd.testing.assert_frame_equal(_drop_time(a), _drop_time(b))
    t = paper003.hyperrep_table(a, ks=(10, 20))
    assert set(t.variant) == {paper003.variant_key(v) for v in variants}
    assert t[t.variant == "itd_N20"].paper.tolist() == [9.32, 0.11]
    first = a[(a.variant == "itd_N20") & (a.seed == 0) & (a.k == 0)]
    assert first.val_loss.iloc[0] == pytest.approx(508.6379, rel=1e-5)   # Sow et al.'s first value
    claims = paper003.hyperrep_claims(a, ks=(20,))
    assert set(claims.claim) == {"table3_plateau", "itd_grad_norm", "itd_phi", "aid_N_loop"}


def _toy_curves():
    rows = []
    for variant, loss in (("aid_N1_Q1", lambda t: 2.0 - 0.1 * t), ("aid_N20_Q1", lambda t: 1.0 - 0.05 * t)):
        for seed in (0, 1):
            for k, t in enumerate((1.0, 2.0, 3.0, 4.0 if variant == "aid_N1_Q1" else 3.5)):
                rows.append(dict(variant=variant, label=variant, scheme="x", seed=seed, k=k, time_s=t,
                                 grad_calls=10 * (k + 1), mv_calls=5 * (k + 1),
                                 train_loss=loss(t) + seed, test_loss=loss(t) + seed))
    return pd.DataFrame(rows)


def test_equal_time_and_hitting_helpers():
    c = _toy_curves()
    r = paper003.at_equal_time(c, ["aid_N1_Q1", "aid_N20_Q1"], "test_loss")
    assert r["t"] == 3.5                                    # the shorter run's final time
    assert r["aid_N1_Q1"] == pytest.approx(np.mean([1.7, 2.7]))   # last value at t <= 3.5 (t = 3)
    assert r["aid_N20_Q1"] == pytest.approx(np.mean([0.825, 1.825]))
    h = paper003.hitting_table(c, target=1.92, metric="test_loss").set_index("variant")
    assert h.loc["aid_N1_Q1", "reached"] == 1 and h.loc["aid_N1_Q1", "time_s_mean"] == 1.0
    assert h.loc["aid_N20_Q1", "reached"] == 2
    assert h.loc["aid_N20_Q1", "grad_calls_mean"] == pytest.approx(np.mean([10, 20]))
    assert h.loc["aid_N20_Q1", "time_s_mean"] == pytest.approx(1.5)
    claims = paper003.mnist_claims(c)
    assert claims.holds.all() and set(claims.claim) == {"N_loop_aid"}
