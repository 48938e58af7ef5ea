"""The claims-table checks can fail: counterfactual numbers flip their verdicts."""

import json

import pytest

from bilevel import claims


def test_within_is_two_sided():
    assert claims.within("a", "s", 2.0, 1.5, 3.0).holds is True
    assert claims.within("a", "s", 1.4, 1.5, 3.0).holds is False   # too small
    assert claims.within("a", "s", 3.1, 1.5, 3.0).holds is False   # too large


def test_interval_must_lie_inside():
    assert claims.interval_within("e", "s", 2.2, (1.9, 2.5), 1.5, 3.0).holds is True
    assert claims.interval_within("e", "s", 2.2, (1.4, 2.5), 1.5, 3.0).holds is False
    assert claims.interval_within("e", "s", -1.95, (-2.38, -1.51), 1.5, 3.0).holds is False
    with pytest.raises(ValueError, match="outside its interval"):
        claims.interval_within("e", "s", 4.0, (1.0, 2.0), 0, 5)


def test_all_true_reports_failing_points_and_refuses_empty():
    c = claims.all_true("b", "s", [True, False, True], labels=["k=2", "k=3", "k=4"])
    assert c.holds is False and "fails at k=3" in c.measured and c.measured.startswith("2/3")
    assert claims.all_true("b", "s", [True, True]).holds is True
    with pytest.raises(ValueError, match="empty set"):
        claims.all_true("b", "s", [])


def test_non_finite_measurement_is_an_error():
    with pytest.raises(ValueError, match="not finite"):
        claims.within("a", "s", float("nan"), 0, 1)


def test_table_and_save(tmp_path):
    cs = [claims.within("x_slope", "s", 2.0, 1.9, 2.1, paper="2"),
          claims.Claim("untested", "s", "too few points", None, reason="smoke")]
    df = claims.save(cs, tmp_path, "demo", numbers={"slope": 2.0})
    assert list(df.verdict) == ["holds", "not tested"]
    m = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert m["claims"]["x_slope"] == {"measured": 2.0, "verdict": "holds"}
    assert m["claims"]["untested"] == {"verdict": "not tested"} and m["numbers"] == {"slope": 2.0}
    assert (tmp_path / "demo_claims.csv").read_text().splitlines()[0].startswith("id,statement")
    with pytest.raises(ValueError, match="duplicate claim ids"):
        claims.table(cs + cs[:1])
    with pytest.raises(ValueError, match="snake_case"):
        claims.Claim("bad id", "s", 1.0, True)


def test_undefined_numbers_become_null_in_metrics():
    m = claims.metrics([claims.Claim("c", "s", float("nan"), None, reason="one point")],
                       numbers={"slope": float("nan"), "n": 3})
    assert m["claims"]["c"] == {"measured": None, "verdict": "not tested"}
    assert m["numbers"] == {"slope": None, "n": 3.0}
