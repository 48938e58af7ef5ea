"""Paper 000 (SSAID sample complexity) and paper 004 (tutorial): problems, fits and claims can fail."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.papers.paper000 import experiments as paper000
from bilevel.papers.paper004 import experiments as paper004
from bilevel.problems import conditioned


def _fd(phi, x, h=1e-5):
    out = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x)
        e[i] = h
        out[i] = (phi(x + e) - phi(x - e)) / (2 * h)
    return out


@pytest.mark.parametrize("kappa", [2.0, 8.0])
def test_logistic_hypergradient_matches_finite_differences(kappa):
    p = conditioned.logistic(kappa, replicates=2, dim=4, n_train=80, n_val=40, seed=3)
    x = 0.5 * torch.randn(8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = p.grad_phi(x)
    fd = _fd(p.phi, x)
    assert torch.allclose(g, fd, rtol=1e-6, atol=1e-9), (g, fd)
    # the AID formula at the Newton y* with the problem's own f and g gives the same vector
    gi, _ = bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=50)
    assert torch.allclose(gi, g, atol=1e-10)
    # y* is stationary for g and L = 1: the largest Hessian eigenvalue bound is attained by mu + lambda/4
    y = p.y_star(x).requires_grad_(True)
    gy, = torch.autograd.grad(p.g(x, y), y)
    assert float(gy.abs().max()) < 1e-10


def test_logistic_minibatches_are_unbiased():
    p = conditioned.logistic(3.0, replicates=1, dim=3, n_train=50, n_val=20, seed=1)
    o = bl.oracles.Oracles(p, seed=0)
    x = torch.full((3,), 0.2, dtype=torch.float64)
    y = torch.full((3,), -0.1, dtype=torch.float64)
    full = o.grad_y_g(x, y)
    idx = torch.arange(50).unsqueeze(1)                      # every sample once = the full sum
    assert torch.allclose(o.grad_y_g(x, y, idx), full, atol=1e-14)


def test_quadratic_family_exact_oracles_and_noise_scale():
    p = conditioned.quadratic(4.0, replicates=3, dim=4)
    x = torch.randn(12, dtype=torch.float64)
    assert torch.allclose(p.grad_phi(x), _fd(p.phi, x), atol=1e-8)
    assert torch.allclose(bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=20)[0], p.grad_phi(x))
    # a batch of size B has gradient noise of variance sigma^2 / B per coordinate
    o = bl.oracles.Oracles(p, seed=1)
    y = p.y_star(x)
    d = torch.stack([o.grad_y_g(x, y, o.sample("inner", 25)) for _ in range(400)])
    var = float(d.var(0).mean())
    assert 0.03 < var < 0.06, var                           # sigma^2 / B = 0.04 (+ small Hessian noise)
    assert o.counts.samples == 400 * 25


def test_exponent_fit_recovers_known_exponents():
    k, e = np.meshgrid([2.0, 3.0, 4.0, 6.0], [0.2, 0.1, 0.05])
    rng = np.random.default_rng(0)
    cost = 5 * k.ravel() ** 7 / e.ravel() ** 2 * np.exp(0.01 * rng.standard_normal(k.size))
    p, q, _ = paper000.fit_exponents(k.ravel(), e.ravel(), cost)
    assert abs(p - 7) < 0.05 and abs(q - 2) < 0.05
    cost[0] = np.nan                                         # unreached cells are left out
    assert abs(paper000.fit_exponents(k.ravel(), e.ravel(), cost)[0] - 7) < 0.05


def _synthetic_curves(p_exp=7.0, A=20.0, replicates=4, points=4000):
    """Criterion A/(j+1) crossing eps at j ~ A/eps, samples per point kappa^p / eps: cost ~ kappa^p eps^-2."""
    rows = []
    rng = np.random.default_rng(1)
    for kappa in (2.0, 3.0, 4.0):
        for eps in (0.2, 0.1, 0.05):
            j = np.arange(points)
            samples = j * kappa ** p_exp / eps
            for r in range(replicates):
                g = np.zeros(points)
                g[0] = A * (1 + 0.02 * rng.standard_normal())
                rows.append(pd.DataFrame({"method": "ssaid", "problem": "synthetic", "kappa": kappa, "eps": eps,
                                          "replicate": r, "k": j, "samples": samples, "oracle_calls": j,
                                          "grad_norm_sq": g}))
    return pd.concat(rows, ignore_index=True)


def test_bootstrap_recovers_exponents_on_synthetic_curves():
    curves = _synthetic_curves()
    fits = paper000.bootstrap_exponents(curves, n_boot=20, seed=0)
    r = fits.iloc[0]
    assert abs(r.kappa_exp - 7) < 0.05 and abs(r.eps_exp - 2) < 0.1, r
    assert r.kappa_lo <= r.kappa_exp <= r.kappa_hi and r.eps_lo <= r.eps_exp <= r.eps_hi
    h = paper000.hitting(curves)
    assert h.reached.all()


def _fits(kappa, eps, kci=0.2, eci=0.1):
    rows = []
    for m, q in (("ssaid", eps), ("stocbio", 2.0)):
        rows.append({"method": m, "problem": "quadratic", "cost": "samples", "kappa_exp": kappa,
                     "kappa_lo": kappa - kci, "kappa_hi": kappa + kci, "eps_exp": q, "eps_lo": q - eci,
                     "eps_hi": q + eci})
    return pd.DataFrame(rows)


def _hits(reached=True):
    return pd.DataFrame({"method": ["ssaid"], "problem": ["quadratic"], "kappa": [2.0], "eps": [0.1],
                         "reached": [reached]})


def test_claims_hold_on_the_claimed_exponents_and_fail_on_counterfactuals():
    ok = {c.id: c.holds for c in paper000.exponent_claims(_fits(7.0, 2.0), _hits())}
    assert ok["ssaid_quadratic_kappa_exponent"] and ok["ssaid_quadratic_eps_exponent"]
    assert ok["ssaid_quadratic_kappa_at_most_7"] and ok["ssaid_matches_stocbio_eps_quadratic"]
    assert ok["all_cells_reached"]
    bad = {c.id: c.holds for c in paper000.exponent_claims(_fits(3.0, 1.0), _hits(False))}
    assert bad["ssaid_quadratic_kappa_exponent"] is False       # exponent far from 7
    assert bad["ssaid_quadratic_eps_exponent"] is False         # eps^-1, not eps^-2
    assert bad["ssaid_matches_stocbio_eps_quadratic"] is False
    assert bad["all_cells_reached"] is False
    assert bad["ssaid_quadratic_kappa_at_most_7"] is True
    over = {c.id: c.holds for c in paper000.exponent_claims(_fits(9.0, 2.0), _hits())}
    assert over["ssaid_quadratic_kappa_at_most_7"] is False      # the bound exceeded
    wide = {c.id: c.holds for c in paper000.exponent_claims(_fits(7.0, 2.0, kci=1.5), _hits())}
    assert wide["ssaid_quadratic_kappa_exponent"] is False      # an interval too wide to confirm 7


def test_ssaid_counts_match_the_arithmetic():
    p = conditioned.quadratic(3.0, replicates=2)
    s = paper000.ssaid_solver(3.0, 0.1, 100.0, 16.0)
    tr = bl.run(s, p, steps=7, eval_every=7)
    last = tr[tr.k == 7].iloc[0]
    assert last.samples == 7 * 3 * s.batch_size and last.grad_calls == 14 and last.mv_calls == 14


def test_ba_and_itd_helpers_are_exact():
    p = bl.problems.quadratic.random(3, 5, seed=2)
    ba = paper004.BA(inner_steps=30, inner_lr=0.4, outer_lr=0.5)
    o = bl.oracles.Oracles(p)
    st = ba.init(p, o, None)
    _, info = ba.step(st, o, None)
    ref, _ = bl.hypergrad.implicit(p, p.x0, info.y, linsys="cg", steps=20)
    assert torch.allclose(info.hypergrad, ref, atol=1e-12)
    x = torch.randn(3, dtype=torch.float64)
    g_auto, _ = paper004.itd_forward_autograd(p, x, p.y0, 6, 0.4)
    g_rev, _ = bl.hypergrad.unrolled(p, x, p.y0, steps=6, lr=0.4, mode="reverse")
    assert torch.allclose(g_auto, g_rev, atol=1e-12)
    with pytest.raises(ValueError, match="inner_steps"):
        paper004.BA(inner_steps=0, inner_lr=0.1, outer_lr=0.1)


def test_saved_bytes_meter_sees_reverse_mode_grow_and_forward_mode_stay():
    p = bl.problems.quadratic.random(2, 4, seed=0)
    x = torch.zeros(2, dtype=torch.float64)
    peaks = {}
    for mode, fn in (("reverse", lambda T: bl.hypergrad.unrolled(p, x, p.y0, steps=T, lr=0.3)),
                     ("forward", lambda T: paper004.itd_forward_autograd(p, x, p.y0, T, 0.3))):
        for T in (4, 16):
            m = paper004.SavedBytes()
            with torch.autograd.graph.saved_tensors_hooks(m.pack, m.unpack):
                fn(T)
            peaks[mode, T] = m.peak
            assert m.live == 0                               # every saved tensor was released
    assert peaks["reverse", 16] > 3 * peaks["reverse", 4]
    assert peaks["forward", 16] == peaks["forward", 4] > 0


def test_ratio_interval_detects_a_real_difference_and_not_a_fake_one():
    rng = np.random.default_rng(0)
    rows = []
    for m, level in (("a", 1.0), ("b", 2.0), ("c", 1.0)):
        for r in range(12):
            for k in range(20):
                rows.append({"method": m, "replicate": r, "k": k, "v": level * math.exp(0.2 * rng.standard_normal())})
    df = pd.DataFrame(rows)
    r, lo, hi = paper004.ratio_interval(df, "v", 10, "a", "b")
    assert hi < 1 and lo <= r <= hi
    r, lo, hi = paper004.ratio_interval(df, "v", 10, "a", "c")
    assert lo < 1 < hi


def _tutorial_values():
    import copy

    from bilevel.notebook import load_params
    return copy.deepcopy(vars(load_params("paper004_tutorial", "smoke")))


def test_tutorial_solver_sections_use_the_solvers_field_names_unrenamed(monkeypatch):
    cfg = paper004.TutorialConfig.from_params(_tutorial_values(), where="s")
    assert cfg.tracking.ttsa["inner_lr"] == 0.1 and cfg.momentum.ma_soba["momentum"] == 0.9
    built = {}
    real = paper004.make

    def spy(name, **kw):
        built.setdefault(name, []).append(kw)
        return real(name, **kw)

    def stop(*a, **k):
        raise StopIteration
    monkeypatch.setattr(paper004, "make", spy)
    monkeypatch.setattr(paper004, "run", stop)
    with pytest.raises(StopIteration):
        paper004.tracking_runs(cfg)
    with pytest.raises(StopIteration):
        paper004.momentum_runs(cfg)
    assert built["ttsa"] == [cfg.tracking.ttsa]
    assert built["stable"] == [{**cfg.tracking.stable, "correction": False}, cfg.tracking.stable]
    assert built["soba"] == [cfg.momentum.soba] and built["ma_soba"] == [cfg.momentum.ma_soba]
    assert built["sustain"] == [{**cfg.momentum.sustain, "storm_weight": 1.0}, cfg.momentum.sustain]


@pytest.mark.parametrize("edit, error, message", [
    (lambda v: v["tracking"]["ttsa"].update(track_inner_lr=0.1), "UnknownParameterError",
     r"s\.tracking\.ttsa: unknown parameter\(s\) \['track_inner_lr'\] for TTSA"),
    (lambda v: v["momentum"]["sustain"].pop("storm_weight"), "UnknownParameterError",
     r"s\.momentum\.sustain: missing parameter\(s\) \['storm_weight'\] for SUSTAIN"),
    (lambda v: v["ba"].update(inner_steps=20), "UnknownParameterError",
     r"s\.ba: unknown parameter\(s\) \['inner_steps'\] for BAConfig"),
    (lambda v: v["tracking"].pop("steps"), "UnknownParameterError",
     r"s\.tracking: missing parameter\(s\) \['steps'\] for TrackingConfig"),
    (lambda v: v.pop("momentum"), "UnknownParameterError", r"s: missing parameter\(s\) \['momentum'\]"),
    (lambda v: v["tracking"]["stable"].update(neumann_lr=-1.0), "HyperparameterError",
     r"s\.tracking\.stable: STABLE: neumann_lr"),
    (lambda v: v["tracking"]["stable"].update(outer_lr=0.2), "HyperparameterError",
     r"s\.tracking: TrackingConfig: ttsa\.outer_lr = 0\.3 and stable\.outer_lr = 0\.2 differ"),
    (lambda v: v["momentum"].update(soba=0.3), "HyperparameterError", r"s\.momentum\.soba: expected a mapping"),
])
def test_tutorial_config_names_the_bad_key_and_its_section(edit, error, message):
    from bilevel import notebook
    values = _tutorial_values()
    edit(values)
    with pytest.raises(getattr(notebook, error), match=message):
        paper004.TutorialConfig.from_params(values, where="s")
