"""bl.sweep: the same results whichever executor runs the points."""

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

import bilevel as bl
from bilevel.sweeps import grid, run_point

POINTS = [dict(problem="conditioned.quadratic", solver="soba", steps=20, eval_every=5, seed=s,
               problem_args={"kappa": k, "replicates": 2},
               solver_args={"inner_lr": 0.1, "outer_lr": 0.05, "batch_size": 4}, kappa=k)
          for k, s in [(p["kappa"], p["seed"]) for p in grid(kappa=[2.0, 8.0], seed=[0, 1])]]


def _serial():
    return [run_point(**p) for p in POINTS]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y, check_exact=True)


def test_grid_and_bad_executor():
    assert grid(a=[1, 2], b=["u"]) == [{"a": 1, "b": "u"}, {"a": 2, "b": "u"}]
    with pytest.raises(ValueError, match="submit"):
        bl.sweep([{}], run_point, executor=object())


def test_seeds_matter():
    a, b = run_point(**POINTS[0]), run_point(**POINTS[1])
    assert not a.drop(columns="seed").equals(b.drop(columns="seed"))


def test_threads_and_processes_give_the_serial_results():
    ref = _serial()
    with ThreadPoolExecutor(2) as ex:
        _same(bl.sweep(POINTS, run_point, executor=ex), ref)
    _same(bl.sweep(POINTS, run_point, max_workers=2), ref)       # default: spawned processes


def test_dask_local_cluster_gives_the_serial_results():
    distributed = pytest.importorskip("distributed")
    ref = _serial()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        _same(bl.sweep(POINTS, run_point, executor=client), ref)
