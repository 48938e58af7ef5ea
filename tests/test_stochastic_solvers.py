"""The solver table: every registered solver x {closed-form quadratic, Example 3 at p = 2 and 4}.

Each case states its hyperparameters, its budget (outer steps) and the factor by
which a float64 deterministic run must reduce :math:`\\|\\nabla\\Phi\\|^2`
(final iterate over initial point). Methods with a random Neumann power (BSA,
TTSA, SUSTAIN's default) carry estimator noise even with exact oracles and get
decaying steps and looser factors; UniBiO's normalized steps have a floor of
about :math:`(L\\,\\eta)^2`. Also: reproducibility under a seed, hyperparameter
validation, oracle-count arithmetic, minibatch problems, SAGA's memory, and
(with CUDA) device agreement and the absence of host synchronisation in
``step``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import quadratic
from bilevel.problems import uniform_convex as uc
from bilevel.solvers import available, make
from bilevel.solvers.unibio import epoch_schedule

PROBLEMS = {
    # seed 20: Phi is strongly convex (Hessian eigenvalues 0.74..2.03), H non-diagonal
    "quadratic": lambda device="cpu": quadratic.random(3, 4, seed=20, device=device),
    "ex3_p2": lambda device="cpu": uc.example3(p=2, device=device),
    "ex3_p4": lambda device="cpu": uc.example3(p=4, device=device),
}

QN = dict(neumann_steps=20, neumann_lr=0.5)          # quadratic: eta L = 1
E2 = dict(neumann_steps=3, neumann_lr=1.0)           # Example 3, p = 2: H = 1
E4 = dict(neumann_steps=3, neumann_lr=1 / 3)         # Example 3, p = 4: H = 3 y^2 <= 3 on |y| <= 1
AIDQ = dict(inner_steps=1, inner_lr=0.5, linsys="gd", linsys_steps=1, linsys_lr=0.5)

#: solver -> problem -> (hyperparameters, outer steps, required reduction of ||grad Phi||^2)
CASES = {
    "aid": {"quadratic": (dict(AIDQ, outer_lr=0.4), 100, 1e-6),
            "ex3_p2": (dict(AIDQ, outer_lr=0.5), 200, 1e-6),
            "ex3_p4": (dict(AIDQ, outer_lr=0.5, linsys_lr=1 / 3), 200, 1e-6)},
    "itd": {"quadratic": (dict(inner_steps=5, inner_lr=0.5, outer_lr=0.4), 300, 1e-2),   # ITD's bias
            "ex3_p2": (dict(inner_steps=3, inner_lr=0.5, outer_lr=0.5), 200, 1e-6),
            "ex3_p4": (dict(inner_steps=3, inner_lr=0.5, outer_lr=0.5), 200, 1e-6)},
    "stocbio": {"quadratic": (dict(inner_steps=2, inner_lr=0.5, outer_lr=0.4, **QN), 200, 1e-4),
                "ex3_p2": (dict(inner_steps=3, inner_lr=0.5, outer_lr=0.5, **E2), 200, 1e-6),
                "ex3_p4": (dict(inner_steps=3, inner_lr=0.5, outer_lr=0.5, **E4), 200, 1e-6)},
    "bsa": {"quadratic": (dict(inner_steps=2, inner_lr=0.5, outer_lr=0.4, outer_lr_decay=0.5,
                               neumann_steps=10, neumann_lr=0.5), 300, 1e-1),
            "ex3_p2": (dict(inner_steps=3, inner_lr=0.5, outer_lr=0.5, outer_lr_decay=0.5, **E2), 200, 1e-2),
            "ex3_p4": (dict(inner_steps=3, inner_lr=0.5, outer_lr=0.5, outer_lr_decay=0.5, **E4), 200, 1e-2)},
    "ttsa": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.4, outer_lr_decay=0.5, neumann_steps=10,
                                neumann_lr=0.5), 300, 1e-1),
             "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5, outer_lr_decay=0.5, **E2), 200, 1e-2),
             "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, outer_lr_decay=0.5, **E4), 200, 1e-2)},
    "soba": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.4), 100, 1e-6),
             "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5), 200, 1e-6),
             "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, linsys_lr=1 / 3), 200, 1e-6)},
    "ma_soba": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.1), 200, 1e-6),
                "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5), 200, 1e-6),
                "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, linsys_lr=1 / 3), 200, 1e-6)},
    "saba": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.4), 100, 1e-6),
             "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5), 200, 1e-6),
             "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, linsys_lr=1 / 3), 200, 1e-6)},
    "ssaid": {"quadratic": (dict(inner_lr=0.5, linsys_lr=0.5, outer_lr=0.4), 100, 1e-6),
              "ex3_p2": (dict(inner_lr=0.5, linsys_lr=0.5, outer_lr=0.5), 200, 1e-6),
              "ex3_p4": (dict(inner_lr=0.5, linsys_lr=1 / 3, outer_lr=0.5), 200, 1e-6)},
    "sustain": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.4, storm_weight=0.5, neumann="sum", **QN),
                              200, 1e-4),
                "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5, storm_weight=0.5, **E2), 200, 1e-2),
                "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, storm_weight=0.5, **E4), 200, 1e-2)},
    "vrbo": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.4, inner_steps=2, period=5, **QN), 100, 1e-4),
             "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5, inner_steps=2, period=5, **E2), 100, 1e-6),
             "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, inner_steps=2, period=5, **E4), 100, 1e-6)},
    "stable": {"quadratic": (dict(inner_lr=0.5, outer_lr=0.4, **QN), 200, 1e-4),
               "ex3_p2": (dict(inner_lr=0.5, outer_lr=0.5, **E2), 200, 1e-6),
               "ex3_p4": (dict(inner_lr=0.5, outer_lr=0.5, **E4), 200, 1e-6)},
    "unibio": {"quadratic": (dict(p=2, outer_lr=0.02, inner_lr=0.5, inner_steps=20, **QN), 200, 1e-2),
               "ex3_p2": (dict(p=2, outer_lr=0.02, neumann_lr=1.0), 200, 1e-2),
               "ex3_p4": (dict(p=4, outer_lr=0.03, neumann_lr=1.0), 150, 1e-2)},
}
#: the solvers this table must cover (solvers registered by other modules are skipped, not failed)
COVERED = ("aid", "itd", "stocbio", "bsa", "ttsa", "soba", "ma_soba", "saba", "ssaid", "sustain", "vrbo",
           "stable", "unibio")
TABLE = [(n, pk) for n in sorted(set(available()) | set(CASES)) for pk in PROBLEMS]


def _drop_time(df):
    return df.drop(columns=["time_s"])


@pytest.mark.parametrize("name,pk", TABLE, ids=[f"{n}-{pk}" for n, pk in TABLE])
def test_deterministic_run_reduces_grad_norm(name, pk):
    if name not in CASES:
        if name in COVERED:
            pytest.fail(f"solver {name!r} has no case in the table")
        pytest.skip(f"solver {name!r} is registered elsewhere; add it to CASES to cover it")
    hp, steps, factor = CASES[name][pk]
    tr = bl.run(make(name, **hp), PROBLEMS[pk](), steps=steps, eval_every=steps)
    g0, gK = tr.grad_norm_sq.iloc[0], tr.grad_norm_sq.iloc[-1]
    assert gK < factor * g0, f"{name} on {pk}: ||grad Phi||^2 {g0:.3g} -> {gK:.3g}, need x{factor:g}"


def test_table_covers_the_family():
    assert set(COVERED) <= set(available())
    assert set(CASES) == set(COVERED)


# -- minibatch problem, reproducibility ---------------------------------------------

QMB = dict(neumann_steps=5, neumann_lr=0.5)
#: hyperparameters on the minibatch problem lp_hypercleaning(n=40, m=20, d=3) (batch 10)
MINIBATCH = {
    "stocbio": dict(inner_steps=2, inner_lr=0.5, outer_lr=5.0, **QMB),
    "bsa": dict(inner_steps=2, inner_lr=0.5, outer_lr=5.0, **QMB),
    "ttsa": dict(inner_lr=0.5, outer_lr=5.0, **QMB),
    "soba": dict(inner_lr=0.5, outer_lr=5.0),
    "ma_soba": dict(inner_lr=0.5, outer_lr=5.0),
    "saba": dict(inner_lr=0.5, outer_lr=5.0),
    "ssaid": dict(inner_lr=0.5, linsys_lr=0.5, outer_lr=5.0),
    "sustain": dict(inner_lr=0.5, outer_lr=5.0, storm_weight=0.5, **QMB),
    "vrbo": dict(inner_lr=0.5, outer_lr=5.0, inner_steps=2, period=4, checkpoint_batch_size=40, **QMB),
    "stable": dict(inner_lr=0.5, outer_lr=5.0, **QMB),
    "unibio": dict(p=2, outer_lr=0.2, inner_lr=0.5, inner_steps=10, **QMB),
}


def _minibatch_problem(device="cpu"):
    return uc.lp_hypercleaning(n_train=40, n_val=20, dim=3, seed=0, device=device)


@pytest.mark.parametrize("name", sorted(MINIBATCH))
def test_minibatch_run_reduces_grad_norm_and_counts_samples(name):
    tr = bl.run(make(name, batch_size=10, **MINIBATCH[name]), _minibatch_problem(), steps=100,
                eval_every=100)
    assert tr.grad_norm_sq.iloc[-1] < 0.25 * tr.grad_norm_sq.iloc[0]
    assert tr.samples.iloc[-1] > 0 and tr.samples.is_monotonic_increasing


@pytest.mark.parametrize("name", sorted(MINIBATCH))
def test_same_seed_gives_identical_traces(name):
    s = make(name, batch_size=10, **MINIBATCH[name])
    prob = _minibatch_problem()
    a = bl.run(s, prob, steps=12, seed=3, noise={"grad_g": 0.01})
    b = bl.run(s, prob, steps=12, seed=3, noise={"grad_g": 0.01})
    c = bl.run(s, prob, steps=12, seed=4, noise={"grad_g": 0.01})
    pd.testing.assert_frame_equal(_drop_time(a), _drop_time(b))
    assert not a.grad_norm_sq.iloc[1:].equals(c.grad_norm_sq.iloc[1:])


@pytest.mark.parametrize("name", ["bsa", "ttsa", "sustain", "unibio"])
def test_algorithmic_randomness_is_seeded(name):
    """Random Neumann powers (and UniBiO's random restarts) come from the run's seed only."""
    pk = "ex3_p2" if name == "sustain" else "quadratic"     # SUSTAIN's quadratic case uses the sum
    hp, steps, _ = CASES[name][pk]
    if name == "unibio":
        hp = dict(hp, inner_init="random")
    prob = PROBLEMS[pk]()
    a, b = (bl.run(make(name, **hp), prob, steps=15, seed=1) for _ in range(2))
    c = bl.run(make(name, **hp), prob, steps=15, seed=2)
    pd.testing.assert_frame_equal(_drop_time(a), _drop_time(b))
    assert not a.grad_norm_sq.equals(c.grad_norm_sq)


def test_noise_reaches_every_solver():
    prob = PROBLEMS["ex3_p2"]()
    for name in COVERED:
        hp, _, _ = CASES[name]["ex3_p2"]
        clean = bl.run(make(name, **hp), prob, steps=5)
        noisy = bl.run(make(name, **hp), prob, steps=5, noise=0.1)
        assert not clean.grad_norm_sq.iloc[1:].equals(noisy.grad_norm_sq.iloc[1:]), name
        assert (noisy["noise_grad_g"] == 0.1).all()


# -- hyperparameter validation ------------------------------------------------------

BAD = [
    ("stocbio", dict(inner_steps=0, inner_lr=0.1, neumann_lr=0.1, outer_lr=0.1)),
    ("stocbio", dict(inner_lr=-0.1, neumann_lr=0.1, outer_lr=0.1)),
    ("stocbio", dict(inner_lr=0.1, neumann_lr=0.1, outer_lr=0.1, batch_size=0)),
    ("stocbio", dict(inner_lr=0.1, neumann_lr=0.1, outer_lr=0.1, warm_start="yes")),
    ("bsa", dict(inner_lr=0.1, neumann_lr=0.1, outer_lr=0.1, neumann_steps=0)),
    ("bsa", dict(inner_lr=0.1, neumann_lr=0.1, outer_lr=0.1, outer_lr_decay=-1.0)),
    ("ttsa", dict(inner_lr=0.1, neumann_lr=0.1, outer_lr=0.1, neumann="exact")),
    ("ttsa", dict(inner_lr=0.1, neumann_lr=0.1)),
    ("soba", dict(inner_lr=0.1, outer_lr=float("nan"))),
    ("soba", dict(inner_lr=0.1, outer_lr=0.1, linsys_lr=0.0)),
    ("ma_soba", dict(inner_lr=0.1, outer_lr=0.1, momentum=1.0)),
    ("ma_soba", dict(inner_lr=0.1, outer_lr=0.1, linsys_radius=-1.0)),
    ("saba", dict(inner_lr=0.1, outer_lr=0.1, batch_size=-3)),
    ("ssaid", dict(inner_lr=0.1, outer_lr=0.1)),
    ("sustain", dict(inner_lr=0.1, outer_lr=0.1, neumann_lr=0.1, storm_weight=0.0)),
    ("sustain", dict(inner_lr=0.1, outer_lr=0.1, neumann_lr=0.1, storm_weight=1.5)),
    ("vrbo", dict(inner_lr=0.1, outer_lr=0.1, neumann_lr=0.1, period=0)),
    ("vrbo", dict(inner_lr=0.1, outer_lr=0.1, neumann_lr=0.1, checkpoint_batch_size=0)),
    ("stable", dict(inner_lr=0.1, outer_lr=0.1, neumann_lr=0.1, correction=1)),
    ("unibio", dict(p=1.5, outer_lr=0.1, neumann_lr=1.0)),
    ("unibio", dict(p=4, outer_lr=0.1, neumann_lr=1.0, momentum=-0.1)),
    ("unibio", dict(p=4, outer_lr=0.1, neumann_lr=1.0, inner_steps=3, epoch_length=5)),
    ("unibio", dict(p=4, outer_lr=0.1, neumann_lr=1.0, inner_solver="adam")),
    ("unibio", dict(p=4, outer_lr=0.1, neumann_lr=1.0, radius=0.0)),
    ("unibio", dict(p=4, outer_lr=0.1, neumann_lr=1.0, interval=0)),
    ("unibio", dict(p=4, outer_lr=0.1, neumann_lr=1.0, warm_start_steps=-1)),
]


@pytest.mark.parametrize("name,kw", BAD, ids=[f"{n}-{sorted(k)[-1]}" for n, k in BAD])
def test_invalid_hyperparameters_raise(name, kw):
    with pytest.raises((ValueError, TypeError)):
        make(name, **kw)


def test_unknown_name_or_hyperparameter_raises():
    with pytest.raises(ValueError, match="unknown solver"):
        make("unibo", outer_lr=0.1)
    with pytest.raises(ValueError, match="no hyperparameter"):
        make("unibio", outer_lr=0.1, neumann_lr=1.0, beta=0.9)


def test_per_coordinate_step_shape_is_checked():
    prob = PROBLEMS["quadratic"]()
    s = make("soba", inner_lr=torch.full((3,), 0.5, dtype=torch.float64), outer_lr=0.1)  # y has 4 entries
    with pytest.raises(ValueError, match="entries"):
        bl.run(s, prob, steps=1)


def test_saba_needs_a_finite_sum_problem():
    prob = _minibatch_problem()
    bad = bl.Problem(f=prob.f, g=prob.g, x0=prob.x0, y0=prob.y0, sampler=prob.sampler)
    with pytest.raises(ValueError, match=r"Problem.n_samples must be .* \(it is None\)"):
        bl.run(make("saba", inner_lr=0.5, outer_lr=1.0, batch_size=10), bad, steps=1)
    assert prob.n_samples is not None and "n_samples" not in prob.info   # a field, not metadata
    for sizes in ({"inner": 0, "outer": 3}, {"inner": 4}, {"inner": 4.0, "outer": 3}, [4, 3]):
        with pytest.raises(ValueError, match=r"Problem.n_samples must be \{'inner': n, 'outer': m\}"):
            bl.Problem(f=prob.f, g=prob.g, x0=prob.x0, y0=prob.y0, sampler=prob.sampler, n_samples=sizes)


# -- oracle arithmetic -------------------------------------------------------------------

def _per_step(solver, prob, steps, **kw):
    o = Oracles(prob, **kw)
    gen = torch.Generator().manual_seed(0)
    state = solver.init(prob, o, gen)
    out = []
    for _ in range(steps):
        before = (o.counts.grad_f, o.counts.grad_g, o.counts.hvp, o.counts.jvp, o.counts.samples)
        state, _ = solver.step(state, o, gen)
        after = (o.counts.grad_f, o.counts.grad_g, o.counts.hvp, o.counts.jvp, o.counts.samples)
        out.append(tuple(a - b for a, b in zip(after, before)))
    return out


def test_counts_equal_each_algorithms_arithmetic():
    q = PROBLEMS["quadratic"]()
    N, Q = 3, 4
    assert _per_step(make("stocbio", inner_steps=N, inner_lr=.5, neumann_steps=Q, neumann_lr=.5,
                          outer_lr=.1), q, 2) == [(1, N, Q, 1, 0)] * 2
    assert _per_step(make("soba", inner_lr=.5, outer_lr=.1), q, 2) == [(1, 1, 1, 1, 0)] * 2
    assert _per_step(make("ma_soba", inner_lr=.5, outer_lr=.1), q, 2) == [(1, 1, 1, 1, 0)] * 2
    assert _per_step(make("saba", inner_lr=.5, outer_lr=.1), q, 2) == [(1, 1, 1, 1, 0)] * 2
    assert _per_step(make("ssaid", inner_lr=.5, linsys_lr=.5, outer_lr=.1), q, 2) == [(1, 1, 1, 1, 0)] * 2
    assert _per_step(make("stable", inner_lr=.5, outer_lr=.1, neumann_steps=Q, neumann_lr=.5), q, 2) \
        == [(1, 1, 2 * Q, 2, 0)] * 2
    assert _per_step(make("stable", inner_lr=.5, outer_lr=.1, neumann_steps=Q, neumann_lr=.5,
                          correction=False), q, 1) == [(1, 1, Q, 1, 0)]
    assert _per_step(make("sustain", inner_lr=.5, outer_lr=.1, neumann="sum", neumann_steps=Q,
                          neumann_lr=.5), q, 3) == [(1, 1, Q, 1, 0)] + [(2, 2, 2 * Q, 2, 0)] * 2
    m = 2
    vr = _per_step(make("vrbo", inner_lr=.5, outer_lr=.1, inner_steps=m, period=2, neumann_steps=Q,
                        neumann_lr=.5), q, 3)
    inner = (2 * m, 2 * m, 2 * m * Q, 2 * m, 0)
    ckpt = (1, 1, Q, 1, 0)
    assert vr == [tuple(a + b for a, b in zip(ckpt, inner)), inner, tuple(a + b for a, b in zip(ckpt, inner))]


def test_unibio_counts_epoch_sgd_budgets():
    prob = PROBLEMS["ex3_p4"]()
    K, T0, Q = 100, 50, 3
    per_call = sum(t for t, _, _ in epoch_schedule(4, 5, 1.0, 1.0, K))
    warm = sum(t for t, _, _ in epoch_schedule(4, 5, 1.0, 1.0, T0))
    assert (per_call, warm) == (59, 19)
    steps = _per_step(make("unibio", p=4, outer_lr=.03, neumann_lr=1., neumann_steps=Q, inner_steps=K,
                           warm_start_steps=T0, interval=3), prob, 7)
    lower = [warm, 0, 0, per_call, 0, 0, per_call]
    assert steps == [(1, n, Q, 1, 0) for n in lower]


def test_minibatch_samples_match_the_draws():
    prob = _minibatch_problem()
    N, Q, b = 2, 3, 10
    s = make("stocbio", inner_steps=N, inner_lr=.5, neumann_steps=Q, neumann_lr=.5, outer_lr=.1, batch_size=b)
    assert [c[-1] for c in _per_step(s, prob, 2)] == [(N + Q + 2) * b] * 2
    s = make("saba", inner_lr=.5, outer_lr=.1, batch_size=b)     # one inner + one outer fixed batch
    assert [c[-1] for c in _per_step(s, prob, 3)] == [2 * b] * 3


# -- SAGA ---------------------------------------------------------------------------

def test_saba_equals_soba_on_a_deterministic_problem():
    prob = PROBLEMS["quadratic"]()
    a = bl.run(make("saba", inner_lr=0.5, outer_lr=0.4), prob, steps=20)
    b = bl.run(make("soba", inner_lr=0.5, outer_lr=0.4), prob, steps=20)
    pd.testing.assert_series_equal(a.grad_norm_sq, b.grad_norm_sq)


def test_saga_memory_mean_is_the_full_batch_mean():
    from bilevel.solvers.soba import _Saga
    vals = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    w = [0.25, 0.25, 0.3, 0.2]
    mem = _Saga(4, vals[0])
    for j in (2, 0, 3, 1, 2):
        d = mem.direction(j, w[j], vals[j])
    full = sum(wj * v for wj, v in zip(w, vals))
    assert torch.allclose(mem.mean, full)
    assert torch.allclose(d, full)       # a revisit at an unchanged point returns the full mean


def test_saba_partition_covers_every_sample_once():
    prob = _minibatch_problem()
    parts = make("saba", inner_lr=.5, outer_lr=.1, batch_size=15)._partition(prob, "inner")
    assert [(lo, hi) for lo, hi, _ in parts] == [(0, 15), (15, 30), (30, 40)]
    assert abs(sum(w for _, _, w in parts) - 1) < 1e-12


# -- stacked problems --------------------------------------------------------------------

def test_unibio_on_stacked_copies_equals_separate_runs():
    """Per-block normalization and Epoch-SGD balls: a stacked run performs each copy's own UniBiO."""
    lrs = [0.01, 0.03, 0.1]
    stacked = uc.example3(p=4, copies=3)
    s = make("unibio", p=4, neumann_lr=1.0, outer_lr=torch.tensor(lrs, dtype=torch.float64),
             inner_lr=torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))
    tr = bl.run(s, stacked, steps=12)
    for i, (eta, gamma) in enumerate(zip(lrs, [1.0, 0.5, 0.25])):
        one = bl.run(make("unibio", p=4, neumann_lr=1.0, outer_lr=eta, inner_lr=gamma), uc.example3(p=4),
                     steps=12)
        mine = tr[tr["block"] == i].reset_index(drop=True)
        torch.testing.assert_close(torch.tensor(mine.grad_norm_sq.to_numpy()),
                                   torch.tensor(one.grad_norm_sq.to_numpy()), rtol=1e-12, atol=1e-15)


# -- CUDA ---------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("name", COVERED)
def test_cuda_matches_cpu(name):
    hp, _, _ = CASES[name]["quadratic"]
    a = bl.run(make(name, **hp), PROBLEMS["quadratic"]("cpu"), steps=20)
    b = bl.run(make(name, **hp), PROBLEMS["quadratic"]("cuda"), steps=20)
    torch.testing.assert_close(torch.tensor(a.grad_norm_sq.to_numpy()),
                               torch.tensor(b.grad_norm_sq.to_numpy()), rtol=1e-9, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(MINIBATCH))
def test_cuda_steps_do_not_synchronise(name):
    """No host round trip inside ``step`` (torch raises on a synchronising call in "error" mode).

    UniBiO's and MA-SOBA's norms stay on the device too, so no exception is allowed.
    """
    prob = _minibatch_problem("cuda")
    s = make(name, batch_size=10, **MINIBATCH[name])
    o = Oracles(prob, seed=0, noise={"grad_g": 0.01})
    gen = torch.Generator(device="cuda").manual_seed(0)
    state = s.init(prob, o, gen)
    state, _ = s.step(state, o, gen)          # warm-up (allocations, lazy init)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            state, info = s.step(state, o, gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert info.x.device.type == "cuda" and state.x.device.type == "cuda"
