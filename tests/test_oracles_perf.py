"""Fast paths of the stochastic oracles: contiguous minibatches and reused curvature graphs.

Exactness (float64) and determinism only; timings live in benchmarks/, never here.
"""

import dataclasses

import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import conditioned, uniform_convex
from bilevel.sampling import EpochSlices


# -- EpochSlices -----------------------------------------------------------------------

def _epoch(s, gen, kind, b, n_batches):
    return [s(gen, kind, b) for _ in range(n_batches)]


def test_epoch_slices_visit_every_sample_once_per_epoch():
    n, b = 23, 5                                 # 5 blocks, the last one of 3 samples
    s = EpochSlices({"inner": n, "outer": 7})
    gen = torch.Generator().manual_seed(3)
    epochs = [_epoch(s, gen, "inner", b, 5) for _ in range(4)]
    for ep in epochs:
        seen = torch.cat([torch.arange(n)[sl] for sl in ep])
        assert sorted(seen.tolist()) == list(range(n))
        assert all(isinstance(sl, slice) for sl in ep)
    orders = {tuple(sl.start for sl in ep) for ep in epochs}
    assert len(orders) > 1                       # block order is reshuffled between epochs


def test_epoch_slices_deterministic_under_a_seed_and_per_stream():
    def run(seed):
        s = EpochSlices(50)
        gi = torch.Generator().manual_seed(seed)
        go = torch.Generator().manual_seed(seed + 1)
        return [(s(gi, "inner", 8).start, s(go, "outer", 8).start) for _ in range(20)]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_epoch_slices_full_batch_and_bad_input():
    s = EpochSlices({"inner": 4, "outer": 3})
    g = torch.Generator()
    assert s(g, "outer", None) == slice(0, 3)
    assert s(g, "inner", 100) == slice(0, 4)     # batch larger than the set: the whole set
    with pytest.raises(ValueError, match="n_samples"):
        EpochSlices({"inner": 0})
    with pytest.raises(ValueError, match="unknown kind"):
        s(g, "middle", 2)


def test_oracles_count_the_samples_of_a_slice():
    p = uniform_convex.lp_hypercleaning(n_train=10, n_val=6, dim=3, seed=0)
    o = Oracles(p, seed=0)
    sizes = [len(range(*o.sample("inner", 4).indices(10))) for _ in range(3)]   # blocks 4, 4, 2
    assert sorted(sizes) == [2, 4, 4]
    assert o.counts.samples == 10


def test_slice_batches_equal_index_batches():
    p = uniform_convex.lp_hypercleaning(n_train=30, n_val=10, dim=4, seed=2)
    x = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(p.g(x, y, slice(5, 17)), p.g(x, y, torch.arange(5, 17)))
    assert torch.equal(p.f(x, y, slice(2, 9)), p.f(x, y, torch.arange(2, 9)))
    assert torch.equal(p.g(x, y), p.g(x, y, torch.arange(30)))


# -- Curvature: one graph per batch, reused ----------------------------------------------

def _point(p, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = p.x0 + 0.3 * torch.randn(p.dim_x, dtype=torch.float64, generator=gen)
    y = p.y0 + 0.5 * torch.randn(p.dim_y, dtype=torch.float64, generator=gen)
    vs = [torch.randn(p.dim_y, dtype=torch.float64, generator=gen) for _ in range(4)]
    return x, y, vs


@pytest.mark.parametrize("make", [
    lambda: conditioned.logistic(5.0, replicates=2, dim=4, n_train=40, n_val=20),
    lambda: uniform_convex.lp_hypercleaning(n_train=30, n_val=10, dim=4, p=4.0, seed=1),
    lambda: conditioned.quadratic(8.0, replicates=2, dim=3),
])
def test_reused_graph_products_equal_fresh_ones(make):
    p = make()
    o = Oracles(p, seed=0)
    batch = o.sample("inner", 8)
    x, y, vs = _point(p)
    reused = o.curvature(x, y, batch)
    hv = [reused.hvp(v) for v in vs]                  # x kept out of this graph
    jv = [reused.jvp(v) for v in vs]                  # graph rebuilt once with x as a leaf
    both = [reused.both(v) for v in vs]
    for v, h, j, (bj, bh) in zip(vs, hv, jv, both):
        fresh_h = o.curvature(x, y, batch).hvp(v)
        fresh_j, fresh_bh = o.curvature(x, y, batch).both(v)
        assert torch.equal(h, fresh_h) and torch.equal(h, fresh_bh) and torch.equal(h, bh)
        assert torch.equal(j, fresh_j) and torch.equal(j, bj)
    assert o.counts.hvp == 4 + 4 + 4 + 4 and o.counts.jvp == 4 + 4 + 4


@pytest.mark.parametrize("make", [
    lambda: conditioned.logistic(5.0, replicates=2, dim=4, n_train=40, n_val=20),
    lambda: uniform_convex.lp_hypercleaning(n_train=30, n_val=10, dim=4, p=4.0, seed=1),
])
def test_with_x_builds_one_graph_and_the_same_products(make):
    # with_x=True (a jvp will follow: AID, ITD's reverse pass, SOBA) builds the graph of grad_y g
    # once, with x as a leaf; the default builds it without x and again with x at the first jvp.
    p = make()
    calls = {"g": 0}
    g = p.g

    def counted(*a, **k):
        calls["g"] += 1
        return g(*a, **k)

    p = dataclasses.replace(p, g=counted)
    o = Oracles(p, seed=0)
    batch = o.sample("inner", 8)
    x, y, vs = _point(p)
    out = {}
    for with_x in (False, True):
        calls["g"] = 0
        c = o.curvature(x, y, batch, with_x=with_x)
        out[with_x] = (c.grad_y, [c.hvp(v) for v in vs], [c.jvp(v) for v in vs])
        out[with_x, "forwards"] = calls["g"]
    assert out[False, "forwards"] == 2 and out[True, "forwards"] == 1
    assert torch.equal(out[False][0], out[True][0])
    for a, b in zip(out[False][1] + out[False][2], out[True][1] + out[True][2]):
        assert torch.equal(a, b)


def test_curvature_products_match_finite_differences():
    p = conditioned.logistic(5.0, replicates=1, dim=4, n_train=40, n_val=20)
    o = Oracles(p, seed=0)
    batch = o.sample("inner", 16)
    x, y, (v, *_) = _point(p, seed=4)
    c = o.curvature(x, y, batch)
    eps = 1e-6
    fd = (o.grad_y_g(x, y + eps * v, batch) - o.grad_y_g(x, y - eps * v, batch)) / (2 * eps)
    assert torch.allclose(c.hvp(v), fd, rtol=1e-7, atol=1e-9)
    gx = lambda yy: o.grad_g(x, yy, batch)[0]        # noqa: E731
    fdj = (gx(y + eps * v) - gx(y - eps * v)) / (2 * eps)
    assert torch.allclose(c.jvp(v), fdj, rtol=1e-7, atol=1e-9)


def test_grad_y_noise_is_drawn_at_construction():
    p = conditioned.quadratic(4.0, dim=3)
    x, y, (v, *_) = _point(p)
    out = []
    for first in ("grad_y", "hvp"):
        o = Oracles(p, seed=5, noise=0.1)
        c = o.curvature(x, y)
        if first == "grad_y":
            gy = c.grad_y
            h = c.hvp(v)
        else:
            h = c.hvp(v)
            gy = c.grad_y
        out.append((gy, h))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    o = Oracles(p, seed=5)
    assert not torch.equal(out[0][0], o.curvature(x, y).grad_y)     # the noise is there


def test_saba_runs_on_slices_deterministically():
    p = uniform_convex.lp_hypercleaning(n_train=40, n_val=20, dim=3, seed=0)
    s = bl.solvers.SABA(inner_lr=0.5, outer_lr=5.0, batch_size=10)
    a = bl.run(s, p, steps=30, eval_every=10, seed=1)
    b = bl.run(s, p, steps=30, eval_every=10, seed=1)
    assert a.drop(columns="time_s").equals(b.drop(columns="time_s"))
