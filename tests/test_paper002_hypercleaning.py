"""Paper 002's hyper-cleaning on noisy SNLI: problem, flip mask, solver determinism, claims."""

import numpy as np
import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.papers.paper002 import hypercleaning as H
from bilevel.problems.data_cleaning import SentencePairRNN, cleaning_problem, flip_labels, snli
from bilevel.solvers.unibio import generalized_hypergradient

D = torch.float64


# -- flip mask ------------------------------------------------------------------------------

def test_flip_mask_reproducible_and_never_the_true_label():
    labels = np.random.default_rng(5).integers(0, 3, size=5000)
    a, ma = flip_labels(labels, 0.2, 3, seed=7)
    b, mb = flip_labels(labels, 0.2, 3, seed=7)
    c, mc = flip_labels(labels, 0.2, 3, seed=8)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(ma, mc)
    assert np.array_equal(a != labels, ma)               # flipped exactly where the mask says
    assert abs(ma.mean() - 0.2) < 0.02
    # both other classes are reached
    assert set(((a[ma] - labels[ma]) % 3).tolist()) == {1, 2}


def test_snli_problem_mask_shared_across_init_seeds():
    p0 = snli(n_train=60, n_val=30, n_test=20, hidden=4, layers=1, seed=0, origin="fixture")
    p1 = snli(n_train=60, n_val=30, n_test=20, hidden=4, layers=1, seed=1, origin="fixture")
    assert np.array_equal(p0.info["flipped"], p1.info["flipped"])
    assert not torch.equal(p0.y0, p1.y0)
    with pytest.raises(ValueError, match="cannot take"):
        snli(n_train=10 ** 6, hidden=4, layers=1, origin="fixture")


# -- hypergradient vs finite differences (float64, tiny RNN) -----------------------------------

def _tiny(reg=0.3):
    gen = torch.Generator().manual_seed(0)
    vectors = torch.randn(7, 3, generator=gen, dtype=D)
    vectors[0] = 0
    model = SentencePairRNN(vectors, hidden=2, layers=1, n_classes=3)
    def batch(n):
        ids = torch.randint(1, 7, (n, 4), generator=gen)
        lens = torch.randint(1, 5, (n,), generator=gen)
        ids2 = torch.randint(1, 7, (n, 3), generator=gen)
        lens2 = torch.randint(1, 4, (n,), generator=gen)
        return (ids, lens, ids2, lens2), torch.randint(0, 3, (n,), generator=gen)
    tr, b = batch(5)
    va, bv = batch(4)
    y0 = model.init(gen, dtype=D) * 0.1
    prob = cleaning_problem(model, y0, tr, b, va, bv, reg=reg, x0=0.5)
    x = torch.linspace(-1.0, 1.5, 5, dtype=D)
    return prob, x


def _inner_newton(prob, x, y, iters=60):
    for _ in range(iters):
        yl = y.detach().requires_grad_(True)
        gy, = torch.autograd.grad(prob.g(x, yl), yl, create_graph=True)
        Hm = torch.stack([torch.autograd.grad(gy[i], yl, retain_graph=True)[0] for i in range(gy.numel())])
        y = (y - torch.linalg.solve(Hm, gy.detach())).detach()
        if float(gy.detach().abs().max()) < 1e-14:
            break
    return y


def test_hypergradient_matches_finite_differences_tiny_rnn():
    prob, x = _tiny()
    ys = _inner_newton(prob, x, prob.y0)
    hg = generalized_hypergradient(prob, x, ys, p=2)
    h = 1e-5
    fd = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x)
        e[i] = h
        fp = prob.f(x + e, _inner_newton(prob, x + e, ys))
        fm = prob.f(x - e, _inner_newton(prob, x - e, ys))
        fd[i] = (fp - fm) / (2 * h)
    assert float(fd.abs().max()) > 1e-4                  # the weights matter
    torch.testing.assert_close(hg, fd, rtol=1e-6, atol=1e-10)
    # the solvers' Neumann estimate (deterministic, many terms) converges to the same vector
    o = bl.oracles.Oracles(prob)
    est, _ = bl.solvers._stochastic.neumann_hypergrad(
        o, x, ys, bl.solvers._stochastic.HGBatches(None, None, [None] * 400), 0.5)
    torch.testing.assert_close(est, hg, rtol=1e-6, atol=1e-10)


# -- each method's step is deterministic under a seed -------------------------------------------

@pytest.mark.parametrize("method", H.METHODS)
def test_method_deterministic_under_seed(method):
    prob = snli(n_train=64, n_val=32, n_test=16, hidden=4, layers=1, max_tokens=6, origin="fixture")
    solver = H.make_solver(method, batch_size=16, checkpoint_batch_size=32)
    a = bl.run(solver, prob, steps=4, eval_every=1, seed=3)
    b = bl.run(solver, prob, steps=4, eval_every=1, seed=3)
    c = bl.run(solver, prob, steps=4, eval_every=1, seed=4)
    cols = ["grad_calls", "mv_calls", "train_acc" if "train_acc" in a else "val_acc", "test_loss", "flip_auc"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not a[["test_loss", "flip_auc"]].equals(c[["test_loss", "flip_auc"]])


def test_bad_input_names_the_fix():
    prob, _ = _tiny()
    with pytest.raises(ValueError, match="reg"):
        cleaning_problem(lambda y, *a: None, prob.y0, (), [], (), [], reg=-1)
    with pytest.raises(ValueError, match="rate"):
        flip_labels(np.zeros(3, np.int64), 1.5, 3, 0)
    with pytest.raises(ValueError, match="unknown method"):
        H.make_solver("adam")


# -- claims: counterfactual data make them fail -----------------------------------------------

def _table(unibio_train, unibio_test, others=0.5):
    rows = [dict(method="unibio", label="UniBiO", seeds=3, train_acc_mean=unibio_train, train_acc_std=0.01,
                 test_acc_mean=unibio_test, test_acc_std=0.01)]
    for m in H.METHODS[1:]:
        rows.append(dict(method=m, label=H.LABELS[m], seeds=3, train_acc_mean=others, train_acc_std=0.01,
                         test_acc_mean=others, test_acc_std=0.01))
    return pd.DataFrame(rows)


def test_claims_hold_when_unibio_is_best_and_fail_otherwise():
    good = H.hypercleaning_claims(_table(0.6, 0.6))
    assert len(good) == 12 and all(c.holds for c in good)
    bad = H.hypercleaning_claims(_table(0.6, 0.4))        # UniBiO's test accuracy below every baseline
    assert [c.holds for c in bad if "train" in c.id] == [True] * 6
    assert [c.holds for c in bad if "test" in c.id] == [False] * 6
    t = _table(0.6, 0.6)
    t.loc[t.method == "vrbo", "train_acc_mean"] = 0.7     # one baseline above UniBiO
    c = {c.id: c for c in H.hypercleaning_claims(t)}
    assert c["unibio_train_acc_above_vrbo"].holds is False
    assert c["unibio_train_acc_above_vrbo"].measured == pytest.approx(-10.0)
    t.loc[t.method == "ttsa", "test_acc_mean"] = 0.59     # 1 pp above, but inside the seed spread
    t.loc[t.method == "ttsa", "test_acc_std"] = 0.05
    assert {c.id: c for c in H.hypercleaning_claims(t)}["unibio_test_acc_above_ttsa"].holds is False
    t.loc[t.method == "saba", "test_acc_mean"] = float("nan")   # a diverged baseline is not tested
    assert {c.id: c for c in H.hypercleaning_claims(t)}["unibio_test_acc_above_saba"].holds is None
