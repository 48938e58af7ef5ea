"""bilevel.blocks: the one batching interface (issue #13).

Per-block operations against a loop over the blocks; the single block WHOLE runs the
plain operations bitwise; CG on blocks equals separate CGs; run() spreads per-block
metrics over the block rows; bad blocks raise.
"""

from __future__ import annotations

import pytest
import torch

import bilevel as bl
from bilevel import linsolve
from bilevel.blocks import WHOLE, Blocks, of
from bilevel.problems import quadratic, stack

F64 = torch.float64


@pytest.fixture
def parts():
    b = Blocks.contiguous(["a", "b", "c"], [2, 1, 3], [3, 4, 1])
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(8, generator=gen, dtype=F64)
    w = torch.randn(8, generator=gen, dtype=F64)
    return b, u, w


def test_per_block_ops_equal_a_loop_over_blocks(parts):
    b, u, w = parts
    want = torch.stack([torch.dot(u[s], w[s]) for s in b.y])
    torch.testing.assert_close(b.dot(u, w, "y"), want, rtol=1e-15, atol=0)
    norms = b.norms(u, "y")
    for s in b.y:
        torch.testing.assert_close(norms[s], torch.linalg.vector_norm(u[s]).expand(s.stop - s.start),
                                   rtol=1e-15, atol=0)
    spread = b.spread(torch.tensor([1.0, 2.0, 3.0], dtype=F64), "x")
    assert spread.tolist() == [1.0, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert [t.numel() for t in b.split(u, "y")] == [3, 4, 1]
    assert b.labels_where(torch.arange(8) == 4, "y") == ["b"]
    assert b.labels_where(torch.zeros(8, dtype=torch.bool), "y") == []
    assert [lab for lab, _, _ in b] == ["a", "b", "c"] and len(b) == 3
    assert b.ids("x").tolist() == [0, 0, 1, 2, 2, 2]


def test_whole_runs_the_plain_operations_bitwise(parts):
    _, u, w = parts
    assert torch.equal(WHOLE.dot(u, w, "y"), torch.dot(u, w))
    assert torch.equal(WHOLE.norms(u, "x"), torch.linalg.vector_norm(u))
    assert WHOLE.spread(u, "y") is u
    assert torch.equal(WHOLE.split(u, "y")[0], u)
    assert WHOLE.labels_where(u > 0, "y") == [None] and not WHOLE.batched
    with pytest.raises(ValueError, match="WHOLE has no block indices"):
        WHOLE.ids("y")
    p = quadratic.kappa2d(2.0)
    assert of(p) is WHOLE
    assert bl.Problem(f=p.f, g=p.g, x0=p.x0, y0=p.y0, blocks=WHOLE).blocks is None


def test_cg_with_whole_is_plain_cg_and_blocks_equal_separate_solves():
    gen = torch.Generator().manual_seed(1)
    mats = []
    for n in (3, 5):
        a = torch.randn(n, n, generator=gen, dtype=F64)
        mats.append(a @ a.T + 0.1 * torch.eye(n, dtype=F64))
    H = torch.block_diag(*mats)
    rhs = torch.randn(8, generator=gen, dtype=F64)
    b = Blocks.contiguous([0, 1], [0, 0], [3, 5])
    plain = linsolve.cg(lambda v: H @ v, rhs, steps=2)
    assert torch.equal(linsolve.cg(lambda v: H @ v, rhs, steps=2, blocks=WHOLE), plain)
    got = linsolve.cg(lambda v: H @ v, rhs, steps=2, blocks=b)        # truncated: per-block step lengths
    want = torch.cat([linsolve.cg(lambda v, m=m: m @ v, r, steps=2) for m, r in zip(mats, b.split(rhs, "y"))])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(got, plain)                             # one global CG differs: the test can fail
    with pytest.raises(ValueError, match="blocks cover 8 coordinates"):
        linsolve.cg(lambda v: v, torch.ones(7, dtype=F64), steps=2, blocks=b)


def test_run_spreads_per_block_metrics_over_block_rows():
    ps = [quadratic.kappa2d(k) for k in (2.0, 5.0)]
    st = stack(ps, labels=["two", "five"])
    st = bl.Problem(f=st.f, g=st.g, x0=st.x0, y0=st.y0, y_star=st.y_star, grad_phi=st.grad_phi,
                    blocks=st.blocks, metrics={
                        "x_norm": lambda x, y: torch.stack([torch.linalg.vector_norm(t)
                                                            for t in st.blocks.split(x, "x")]),
                        "total": lambda x, y: float(x.sum())})
    s = bl.solvers.AID(inner_steps=2, inner_lr=0.1, linsys="cg", linsys_steps=2, outer_lr=0.1)
    tr = bl.run(s, st, steps=3)
    assert list(tr.block) == ["two", "five"] * 4
    for lab, p in zip(["two", "five"], ps):
        t = tr[tr.block == lab]
        sep = bl.run(s, p, steps=3)
        torch.testing.assert_close(torch.tensor(t.grad_norm_sq.to_numpy()),
                                   torch.tensor(sep.grad_norm_sq.to_numpy()), rtol=1e-12, atol=1e-15)
    k0 = tr[tr.k == 0]
    assert k0.x_norm.tolist() == [float(torch.linalg.vector_norm(t)) for t in st.blocks.split(st.x0, "x")]
    assert k0.total.nunique() == 1                                     # a number is repeated
    bad = bl.Problem(f=st.f, g=st.g, x0=st.x0, y0=st.y0, blocks=st.blocks,
                     metrics={"m": lambda x, y: torch.zeros(3)})
    with pytest.raises(ValueError, match="metric 'm' must return a number or one number per block"):
        bl.run(s, bad, steps=1)
    one = bl.Problem(f=ps[0].f, g=ps[0].g, x0=ps[0].x0, y0=ps[0].y0, metrics={"m": lambda x, y: torch.ones(1)})
    assert "block" not in bl.run(s, one, steps=1) and bl.run(s, one, steps=1).m.tolist() == [1.0, 1.0]


def test_bad_blocks_raise():
    p = quadratic.kappa2d(2.0)
    with pytest.raises(TypeError, match="Problem.blocks must be a bilevel.blocks.Blocks"):
        bl.Problem(f=p.f, g=p.g, x0=p.x0, y0=p.y0, blocks=((0, slice(0, 2), slice(0, 2)),))
    with pytest.raises(ValueError, match="the problem has dim_x = 2"):
        bl.Problem(f=p.f, g=p.g, x0=p.x0, y0=p.y0, blocks=Blocks.contiguous([0, 1], [1, 2], [1, 1]))
    with pytest.raises(ValueError, match="consecutive from 0"):
        Blocks([0, 1], [slice(0, 1), slice(2, 3)], [slice(0, 1), slice(1, 2)])
    with pytest.raises(ValueError, match="labels must be distinct"):
        Blocks.contiguous([0, 0], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="one x slice and one y slice per label"):
        Blocks([0], [], [])
    with pytest.raises(ValueError, match="which must be 'x' or 'y'"):
        Blocks.contiguous([0], [1], [1]).split(torch.ones(1), "z")
