"""The benchmarks' reference loops compute what the library computes (no timings here).

benchmarks/scaling.py compares the library against a hand-written eager loop and a closed
form; the ratios mean something only if all three run the same iteration. benchmarks/peers.py
maps benchopt's solver defaults onto ours; the mapping is checked on its numbers.
"""

import pytest
import torch

import bilevel as bl
from benchmarks import peers, scaling
from benchmarks.solver_table import separable_quadratic


def _lib(method, p, K):
    return scaling.timed_steps(scaling.solver_for(method), p, K)[1]


@pytest.mark.parametrize("method", ["AID", "ITD", "SOBA"])
def test_closed_form_runs_the_library_iteration(method):
    d, K = 40, 6
    p = separable_quadratic(d)
    _, x = scaling.closed_form(method, p, K, scaling.A, scaling.ETA, scaling.B, *scaling.problem_constants(d))
    torch.testing.assert_close(_lib(method, p, K).x, x, rtol=1e-12, atol=1e-14)
    assert not torch.equal(x, p.x0)


def test_eager_soba_runs_the_library_iteration():
    p = separable_quadratic(30)
    _, x = scaling.eager_soba(p, 5, scaling.A, scaling.ETA, scaling.B)
    torch.testing.assert_close(_lib("SOBA", p, 5).x, x, rtol=1e-12, atol=1e-14)


def test_curvature_patch_is_bitwise_neutral_and_restored():
    p = bl.problems.quadratic.random(50, 40, seed=0)
    graph = bl.oracles.Curvature._graph
    assert scaling.xleaf_identical(p, 5)
    assert bl.oracles.Curvature._graph is graph


def test_peer_defaults_map_onto_our_hyperparameters():
    n = (1024, 1024)
    ttsa = peers.our_solver("TTSA", dict(step_size=0.1, outer_ratio=1.0, n_hia_steps=10, batch_size=64), n)
    assert (ttsa.inner_lr, ttsa.inner_lr_decay, ttsa.outer_lr, ttsa.outer_lr_decay) == (0.1, 0.4, 0.1, 0.6)
    assert (ttsa.neumann, ttsa.neumann_steps, ttsa.neumann_lr, ttsa.batch_size) == ("random", 10, 0.1, 64)
    f2sa = peers.our_solver("F2SA", dict(step_size=0.01, outer_ratio=1.0, batch_size=64, lmbda0=1.0,
                                         delta_lmbda=0.1, n_inner_steps=10), n)
    assert (f2sa.inner_lr, f2sa.z_lr, f2sa.lmbda, f2sa.lmbda_increment, f2sa.inner_steps) == (
        0.01, 0.01, 1.0, 0.1, 10)
    assert (f2sa.inner_decay, f2sa.z_decay, f2sa.outer_decay) == (5 / 7, 4 / 7, 4 / 7)
    vrbo = peers.our_solver("VRBO", dict(step_size=0.1, outer_ratio=1.0, n_shia_steps=10, batch_size=64,
                                         period_frac=128, n_inner_steps=10), n)
    assert (vrbo.period, vrbo.inner_steps, vrbo.neumann_steps, vrbo.checkpoint_batch_size) == (4096, 10, 10, None)


def test_unknown_peer_solver_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        peers.main(["--only", "stochastic", "--solvers", "SOBA,NOPE"])
    assert "unknown solver(s) ['NOPE']" in capsys.readouterr().err


def test_g_without_x_only_terms_gives_the_same_y_oracles_bit_for_bit():
    from benchmarks import x_only_terms

    full, without, _ = x_only_terms.problems(d=6, n=16, seed=1)
    assert full.g_y is None and without.g_y is not None          # g everywhere vs the shipped g_y
    x, y, v = torch.randn(6), torch.randn(6), torch.randn(6)
    batch = slice(3, 9)
    of, ow = bl.oracles.Oracles(full), bl.oracles.Oracles(without)
    assert torch.equal(of.grad_y_g(x, y, batch), ow.grad_y_g(x, y, batch))
    cf, cw = of.curvature(x, y, batch), ow.curvature(x, y, batch)
    assert torch.equal(cf.hvp(v), cw.hvp(v)) and torch.equal(cf.jvp(v), cw.jvp(v))
    assert torch.equal(of.grad_g(x, y, batch)[0], ow.grad_g(x, y, batch)[0])   # grad_x g: the whole g on both
    assert not torch.equal(without.g(x, y, batch), without.g_y(x, y, batch))  # g_y does leave terms out


def test_func_oracles_of_the_compile_benchmark_run_the_library_iteration():
    from benchmarks import compile_oracles

    p = bl.problems.quadratic.random(20, 15, seed=3)
    _, (x, y, v) = compile_oracles.func_loop(
        lambda *s: compile_oracles.aid_step(compile_oracles.func_oracles(p, compiled=False), *s), p, 4)
    st = _lib("AID", p, 4)
    torch.testing.assert_close(st.x, x, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(st.y, y, rtol=1e-12, atol=1e-13)
