"""``Problem.g_y``: g without its terms in x alone, used for every y-derivative of g.

Float64 exactness: the same oracle values (bit for bit) and counts as with ``g``, hypergradients
against the closed form and finite differences, and a wrong ``g_y`` caught at construction.
"""

import dataclasses

import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.solvers import _stochastic as S

D = torch.float64


def _mats(seed=0, n=12, d=4):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, d, d, generator=gen, dtype=D) / d ** 0.5
    return dict(A=m @ m.transpose(1, 2) + torch.eye(d, dtype=D), B=torch.randn(n, d, d, generator=gen, dtype=D),
                C=torch.randn(n, d, d, generator=gen, dtype=D) / d, a=torch.randn(n, d, generator=gen, dtype=D),
                b=torch.randn(n, d, generator=gen, dtype=D))


def _finite_sum():
    return bl.problems.finite_sum.quadratic(_mats(0), _mats(1), x0=torch.full((4,), 0.5, dtype=D))


def _exp_problem(g_y="right"):
    r"""g = 1/2 sum exp(x) y^2 - x'y + sum sin(x) + ||x||^4: the first two terms involve y (the
    exp(x) y^2 term too), the last two do not. y*(x) = x exp(-x), f = 1/2 ||y - 1||^2 + 1/2 ||x||^2."""
    def g(x, y):
        return 0.5 * (torch.exp(x) * y * y).sum() - x @ y + torch.sin(x).sum() + (x @ x) ** 2

    def right(x, y):
        return 0.5 * (torch.exp(x) * y * y).sum() - x @ y

    def wrong(x, y):                                 # drops exp(x) y^2: not an x-only term
        return -x @ y

    def f(x, y):
        return 0.5 * ((y - 1) ** 2).sum() + 0.5 * (x @ x)

    def y_star(x):
        return x * torch.exp(-x)

    return bl.Problem(f=f, g=g, g_y={"right": right, "wrong": wrong, None: None}[g_y],
                      x0=torch.tensor([0.3, -0.2, 0.7], dtype=D), y0=torch.zeros(3, dtype=D),
                      y_star=y_star, phi=lambda x: f(x, y_star(x)))


def _oracle_values(p, x, y, v, batch):
    o = Oracles(p, seed=0)
    c = o.curvature(x, y, batch)
    cw = o.curvature(x, y, batch, with_x=True)
    out = [o.grad_y_g(x, y, batch), *o.grad_g(x, y, batch), c.grad_y, c.hvp(v), c.jvp(v), *cw.both(v),
           S.cross_yx(o, x, y, x - 0.3, batch)]
    if batch is None:
        out += [*o.unroll(x, y, 3, 0.1), *bl.hypergrad.unrolled(p, x, y, 3, 0.1, oracles=o, mode="forward"),
                *bl.hypergrad.implicit(p, x, y, steps=6, oracles=o)]
    return out, o.counts.as_dict()


@pytest.mark.parametrize("batch", [None, slice(2, 9)])
def test_g_y_gives_the_same_oracle_values_and_counts_as_g(batch):
    p = _finite_sum()
    assert p.g_y is not None
    plain = dataclasses.replace(p, g_y=None)
    gen = torch.Generator().manual_seed(1)
    x, y, v = (torch.randn(4, generator=gen, dtype=D) for _ in range(3))
    (a, ca), (b, cb) = _oracle_values(p, x, y, v, batch), _oracle_values(plain, x, y, v, batch)
    assert ca == cb
    assert len(a) == len(b)
    for s, t in zip(a, b):
        assert torch.equal(s, t)
    # grad_g keeps the x-only terms: grad_x g includes mean_i (B_i + B_i') x / 2 + b_i
    assert not torch.equal(torch.func.grad(p.g)(x, y), torch.func.grad(p.g_y)(x, y))


def test_g_y_is_the_only_function_the_y_oracles_evaluate():
    p = _finite_sum()
    calls = {"g": 0, "g_y": 0}

    def counted(name, fn):
        def wrapped(*a):
            calls[name] += 1
            return fn(*a)
        return wrapped

    p = dataclasses.replace(p, g=counted("g", p.g), g_y=counted("g_y", p.g_y))
    calls.update(g=0, g_y=0)                        # construction evaluates both (the check)
    o = Oracles(p)
    x, y, v = p.x0, p.y0 + 1, torch.ones(4, dtype=D)
    o.grad_y_g(x, y)
    c = o.curvature(x, y, with_x=True)
    c.hvp(v), c.jvp(v)
    o.unroll(x, y, 2, 0.1)
    S.cross_yx(o, x, y, v)
    assert calls == {"g": 0, "g_y": 5}
    o.grad_g(x, y)
    assert calls["g"] == 1


def test_finite_sum_hypergradient_with_g_y_matches_the_closed_form():
    p = _finite_sum()
    x = torch.tensor([0.2, -1.0, 0.4, 0.9], dtype=D)
    grad, _ = bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=20)
    assert torch.allclose(grad, p.grad_phi(x), rtol=1e-10, atol=1e-12)


def test_hypergradients_with_g_y_match_finite_differences():
    p = _exp_problem()
    x = torch.tensor([0.4, -0.5, 0.1], dtype=D)
    eye = torch.eye(3, dtype=D)
    h = 1e-6
    fd = torch.stack([(p.phi(x + h * e) - p.phi(x - h * e)) / (2 * h) for e in eye])
    aid, _ = bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=10)
    assert torch.allclose(aid, fd, rtol=1e-7, atol=1e-9)
    plain, _ = bl.hypergrad.implicit(dataclasses.replace(p, g_y=None), x, p.y_star(x), linsys="cg", steps=10)
    assert torch.equal(aid, plain)
    # ITD from y* (a fixed point of the GD map) converges to the same hypergradient
    itd, _ = bl.hypergrad.unrolled(p, x, p.y_star(x), 400, 0.5)
    assert torch.allclose(itd, fd, rtol=1e-6, atol=1e-8)


def test_a_g_y_that_drops_a_y_dependent_term_is_caught():
    with pytest.raises(ValueError, match="g - g_y changes with y"):
        _exp_problem("wrong")
    inner = _mats()
    p0 = bl.problems.finite_sum.quadratic(inner, _mats(1))         # x0 = 0, where x'C y vanishes

    def no_cross(x, y, batch=None):                                 # drops x'C y: caught at a perturbed x
        return (0.5 * torch.einsum("i,nij,j->", y, inner["A"], y) + (inner["a"] @ y).sum()) / 12
    with pytest.raises(ValueError, match="g_y must keep every term of g that involves y"):
        dataclasses.replace(p0, g_y=no_cross)
    with pytest.raises(TypeError, match="g_y must be callable or None"):
        dataclasses.replace(_exp_problem(), g_y=1.0)
    with pytest.raises(ValueError, match=r"Problem.g_y\(x0, y0\) must return a scalar"):
        dataclasses.replace(_exp_problem(), g_y=lambda x, y: y)


def test_stack_keeps_the_blocks_g_y():
    p, q = _exp_problem(), _exp_problem(None)
    st = bl.problems.stack([p, q])
    assert bl.problems.stack([q, q]).g_y is None
    x, y = torch.cat([p.x0, q.x0]) + 0.1, torch.cat([p.y0, q.y0]) - 0.2
    want = p.g_y(x[:3], y[:3]) + q.g(x[3:], y[3:])
    assert torch.equal(st.g_y(x, y), want)
    assert torch.equal(Oracles(st).grad_y_g(x, y), Oracles(dataclasses.replace(st, g_y=None)).grad_y_g(x, y))
