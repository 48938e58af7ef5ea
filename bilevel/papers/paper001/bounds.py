r"""Theory curves: the convergence bounds of paper 001 and of Ji et al. (2022).

Every function is a plain NumPy expression of the problem constants
:math:`(L, \mu, M, \rho)`, the number of outer iterations :math:`K`, the step
sizes and the initial errors. All arguments broadcast (standard NumPy rules),
so a curve over :math:`\kappa` is one call with array-valued constants
(:meth:`ProblemConstants.from_kappa`) and a curve over :math:`K` is one call with
an array ``K``; for a grid, give ``K`` and :math:`\kappa` different axes
(``K[:, None]``). Scalars in give Python floats out.

Papers (texts in ``shared/papers``; formulas recovered in
``shared/reference/setups.md`` §C):

* **001** -- "Sharper analysis of single-loop methods for bilevel optimization"
  (anonymous ICLR 2026 submission 16920). AID: Lemma 4, Theorem 1. ITD:
  Lemmas 5-7, Theorem 3.
* **003** -- K. Ji, M. Liu, Y. Liang, L. Ying, "Will bilevel optimizers benefit
  from loops", NeurIPS 2022. AID: Theorem 1 with Corollary 2's parameters;
  ITD: Theorem 3 with Corollary 6's step size; lower bound: Theorem 4. The
  :math:`\Theta(\cdot)` constants of paper 003 are not published (its
  appendices are missing), so every :math:`\Theta(\cdot)` is taken as 1
  (**stand-in**); label such curves "Theta = 1".

Symbols (the papers' names; the library's hyperparameter names in brackets):

==================  ======================  ==============================================
symbol              argument                meaning
==================  ======================  ==============================================
:math:`L`           ``c.L``                 Lipschitz constant of :math:`\nabla f, \nabla g`
:math:`\mu`         ``c.mu``                strong convexity of :math:`g(x,\cdot)`
:math:`M`           ``c.M``                 bound on :math:`\|\nabla_y f\|`
:math:`\rho`        ``c.rho``               Lipschitz constant of :math:`\nabla^2_{xy}g, \nabla^2_{yy}g`
:math:`\kappa`      ``c.kappa``             :math:`L/\mu`
:math:`\alpha`      ``alpha`` [inner_lr]    inner gradient step on :math:`g`
:math:`\eta`        ``eta`` [linsys_lr]     linear-system (:math:`v`) step (AID)
:math:`\beta`       ``beta`` [outer_lr]     outer step on :math:`x`
:math:`N, Q`        ``N, Q``                inner / linear-system steps per outer step (003)
:math:`K`           ``K``                   number of outer iterations
:math:`\Delta_\Phi` ``delta_phi``           :math:`\Phi(x_0) - \inf_x \Phi(x)`
==================  ======================  ==============================================

.. note:: **Paper 001's AID bound is vacuous as written.** With its step
   :math:`\beta = \eta\mu/(2LC_2)` one has :math:`12\beta^2C_2^2L^4/\mu^2 = 3`
   (at :math:`\eta = 1/L`), hence the Theorem-1 constant
   :math:`A = -1 - 4\beta L_\Phi < 0`. We use
   :math:`\beta = \min\{c\cdot\beta_{001},\ 1/(8L_\Phi)\}` with
   :math:`c = 1/3` (:data:`AID_BETA_SCALE`); :func:`aid_beta_001` is the single
   source of this step for both the runs and the bound, and the derivation is
   in its docstring. Bound functions raise ``ValueError`` instead of returning
   a negative "bound" whenever :math:`A \le 0`.

Example (the synthetic quadratic of paper 001 at :math:`\kappa = 2`):

>>> c = ProblemConstants.from_kappa(2.0)
>>> round(aid_beta_001(c, scale=1.0), 4), round(itd_beta_001(c), 4)
(0.0219, 0.0278)
>>> init = quadratic_001_initial_terms(2.0)
>>> round(itd_bound_001(c, 10_000, None, None, init.delta_phi, init.dy0), 4)
0.0569
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "AID_BETA_SCALE",
    "ProblemConstants",
    "phi_smoothness",
    # paper 001, AID
    "aid_constants_001",
    "aid_beta_001",
    "aid_A_001",
    "aid_bound_001",
    "aid_hypergrad_error_001",
    # paper 001, ITD
    "itd_constants_001",
    "itd_beta_001",
    "itd_A_001",
    "itd_bound_terms_001",
    "itd_bound_001",
    "itd_hypergrad_error_001",
    # paper 003 (Ji et al. 2022)
    "ji_aid_params",
    "ji_aid_bound",
    "ji_itd_params",
    "ji_itd_bound_terms",
    "ji_itd_bound",
    "ji_itd_lower_bound",
    # the synthetic quadratic of paper 001
    "InitialTerms001",
    "quadratic_001_initial_terms",
    "quadratic_001_ji_initial_terms",
]

#: Default factor :math:`c` in :math:`\beta = c\,\min\{\tfrac{C_1\mu\alpha}{4C_2C_3},
#: \tfrac{\eta\mu}{2LC_2}\}` (paper 001, AID). ``c = 1/3`` maximises the descent
#: coefficient :math:`\beta A` to leading order; see :func:`aid_beta_001`.
AID_BETA_SCALE = 1.0 / 3.0

_RTOL = 1e-9  # tolerance of "alpha == 1/L" and "alpha <= 1/L" checks


# --------------------------------------------------------------------------- helpers


def _out(a: np.ndarray) -> Any:
    """0-d arrays come back as Python floats, others as arrays."""
    a = np.array(a, dtype=float)  # a copy: never hand out read-only broadcast views
    return float(a) if a.ndim == 0 else a


def _real(where: str, name: str, value) -> np.ndarray:
    if isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be a real number or array, got {value!r}.")
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where}: {name} must be a real number or array, got {value!r}.") from err
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: {name} must be finite, got {value!r}.")
    return a


def _positive(where: str, name: str, value) -> np.ndarray:
    a = _real(where, name, value)
    if not np.all(a > 0):
        raise ValueError(f"{where}: {name} must be > 0 (valid range (0, inf)), got {value!r}.")
    return a


def _nonneg(where: str, name: str, value) -> np.ndarray:
    a = _real(where, name, value)
    if not np.all(a >= 0):
        raise ValueError(f"{where}: {name} must be >= 0 (valid range [0, inf)), got {value!r}.")
    return a


def _iterations(where: str, name: str, value) -> np.ndarray:
    a = _real(where, name, value)
    if not np.all(a >= 1):
        raise ValueError(f"{where}: {name} must be >= 1 (a number of iterations), got {value!r}.")
    return a


def _integer(where: str, name: str, value) -> np.ndarray:
    a = _iterations(where, name, value)
    if not np.all(a == np.round(a)):
        raise ValueError(f"{where}: {name} must be an integer >= 1, got {value!r}.")
    return a


def _inner_step(c: "ProblemConstants", where: str, name: str, value,
                *, exact: str | None = None) -> np.ndarray:
    """A step in (0, 1/L] (default 1/L); with ``exact`` it must equal 1/L."""
    if value is None:
        return 1.0 / c.L
    a = _positive(where, name, value)
    aL = a * c.L
    if exact is not None:
        if not np.allclose(aL, 1.0, rtol=_RTOL, atol=0.0):
            raise ValueError(f"{where}: {exact} is stated for {name} = 1/L; got {name}*L = {aL!r} "
                             f"(pass {name}=None for 1/L).")
    elif not np.all(aL <= 1.0 + _RTOL):
        raise ValueError(f"{where}: {name} must lie in (0, 1/L]; got {name}*L = {aL!r}.")
    return a


# --------------------------------------------------------------------------- constants


@dataclass(frozen=True, eq=False)
class ProblemConstants:
    r"""Problem constants of Assumptions 1-4 (paper 001) / 1-4 (paper 003).

    Fields may be scalars or broadcastable arrays (e.g. one entry per
    :math:`\kappa`); they are stored as ``float`` or ``float64`` arrays.

    Args:
      L: :math:`L > 0`, Lipschitz constant of :math:`\nabla f` and :math:`\nabla g`.
      mu: :math:`\mu \in (0, L]`, strong-convexity modulus of :math:`g(x, \cdot)`.
      M: :math:`M > 0`, bound on :math:`\|\nabla_y f\|` (paper 001: Lipschitz
        constant of :math:`f`; paper 003: bound at :math:`y^*(x)`).
      rho: :math:`\rho \ge 0`, Lipschitz constant of :math:`\nabla^2_{xy} g` and
        :math:`\nabla^2_{yy} g` (0 is allowed: quadratic :math:`g`).

    >>> c = ProblemConstants.from_kappa([2, 4])
    >>> c.L, c.kappa
    (array([0.2, 0.4]), array([2., 4.]))
    """

    L: Any
    mu: Any
    M: Any
    rho: Any

    def __post_init__(self):
        where = "ProblemConstants"
        L = _positive(where, "L", self.L)
        mu = _positive(where, "mu", self.mu)
        M = _positive(where, "M", self.M)
        rho = _nonneg(where, "rho", self.rho)
        if not np.all(mu <= L * (1 + _RTOL)):
            raise ValueError(f"{where}: mu must lie in (0, L] (kappa = L/mu >= 1); "
                             f"got L={self.L!r}, mu={self.mu!r}.")
        for name, a in (("L", L), ("mu", mu), ("M", M), ("rho", rho)):
            object.__setattr__(self, name, _out(a))

    @property
    def kappa(self):
        r"""Condition number :math:`\kappa = L/\mu`."""
        return _out(np.asarray(self.L) / np.asarray(self.mu))

    @classmethod
    def from_kappa(cls, kappa, mu=0.1, M=0.1, rho=0.1) -> "ProblemConstants":
        r"""Constants with :math:`L = \kappa\mu`; defaults are paper 001's experiment.

        Paper 001 §5 (setups.md C.1): :math:`\mu = M = \rho = 0.1`,
        :math:`L = 0.1\kappa`.
        """
        kappa = _real("ProblemConstants.from_kappa", "kappa", kappa)
        if not np.all(kappa >= 1):
            raise ValueError(f"ProblemConstants.from_kappa: kappa must be >= 1, got {kappa!r}.")
        return cls(L=_out(kappa * np.asarray(mu, dtype=float)), mu=mu, M=M, rho=rho)


def phi_smoothness(c: ProblemConstants, version: str = "proof"):
    r"""Smoothness constant :math:`L_\Phi` of :math:`\Phi(x) = f(x, y^*(x))`.

    ``version="proof"`` (default; paper 001 proofs of Theorems 1 and 3, after
    Ji et al. 2021, Lemma 2):

    .. math::
        L_\Phi = L + \frac{2L^2 + \rho M^2}{\mu} + \frac{2\rho L M + L^3}{\mu^2}
                 + \frac{\rho L^2 M}{\mu^3}.

    ``version="statement"``: the Theorem 1/3/4 statements of paper 001, which
    divide the second term by :math:`\mu^2` instead of :math:`\mu` (a typo;
    Lemma 8 has yet another variant with an undefined :math:`\tau`, not
    implemented). Paper 003 only says :math:`L_\Phi = \Theta(\kappa^3)`; its
    curves here use the proof version.

    For paper 001's experiment (:math:`\mu = M = \rho = 0.1`, :math:`L=0.1\kappa`)
    the proof version is :math:`0.1\kappa^3 + 0.3\kappa^2 + 0.3\kappa + 0.01`:

    >>> round(phi_smoothness(ProblemConstants.from_kappa(2.0)), 6)
    2.61
    """
    L, mu, M, rho = (np.asarray(v) for v in (c.L, c.mu, c.M, c.rho))
    if version == "proof":
        second = (2 * L**2 + rho * M**2) / mu
    elif version == "statement":
        second = (2 * L**2 + rho * M**2) / mu**2
    else:
        raise ValueError(f"phi_smoothness: unknown version {version!r}; choose 'proof' or 'statement'.")
    return _out(L + second + (2 * rho * L * M + L**3) / mu**2 + rho * L**2 * M / mu**3)


# --------------------------------------------------------------------------- paper 001, AID


def aid_constants_001(c: ProblemConstants, alpha=None, eta=None) -> dict:
    r"""Constants :math:`C_0, \dots, C_3` of paper 001 (Lemmas 2 and 4), AID.

    .. math::
        C_0 = \frac{\rho M}{\mu^2} + \frac{L}{\mu},\quad
        C_1 = \frac{4C_0L}{\mu},\quad
        C_2 = \frac{\alpha L^2C_0}{\mu} + \frac{\rho M}{\mu^2} + \frac{L}{\mu}
              + \frac{LC_1}{\mu},\quad
        C_3 = L + \frac{\rho M}{\mu} + C_0 L.

    Args:
      c: problem constants.
      alpha: inner step :math:`\alpha \in (0, 1/L]` (default :math:`1/L`).
      eta: linear-system step :math:`\eta \in (0, 1/L]` (default :math:`1/L`);
        validated only (no :math:`C_i` depends on it).

    Returns:
      ``{"C0", "C1", "C2", "C3"}``. For paper 001's experiment at
      :math:`\alpha = 1/L`: :math:`C_0 = 1+\kappa`, :math:`C_1 = 4\kappa(1+\kappa)`,
      :math:`C_2 = (1+\kappa)(4\kappa^2+\kappa+1)`, :math:`C_3 = 0.1(1+\kappa)^2`.
    """
    where = "aid_constants_001"
    alpha = _inner_step(c, where, "alpha", alpha)
    _inner_step(c, where, "eta", eta)
    L, mu, M, rho = (np.asarray(v) for v in (c.L, c.mu, c.M, c.rho))
    C0 = rho * M / mu**2 + L / mu
    C1 = 4 * C0 * L / mu
    C2 = alpha * L**2 * C0 / mu + rho * M / mu**2 + L / mu + L * C1 / mu
    C3 = L + rho * M / mu + C0 * L
    return {"C0": _out(C0), "C1": _out(C1), "C2": _out(C2), "C3": _out(C3)}


def aid_beta_001(c: ProblemConstants, alpha=None, eta=None, scale: float = AID_BETA_SCALE):
    r"""Outer step :math:`\beta` of single-loop AID (paper 001, Lemma 4 / Theorem 1), fixed.

    .. math::
        \beta = \min\Big\{c\cdot\min\Big\{\frac{C_1\mu\alpha}{4C_2C_3},\
                \frac{\eta\mu}{2LC_2}\Big\},\ \frac{1}{8L_\Phi}\Big\},
        \qquad c = \texttt{scale}.

    Paper 001 states :math:`c = 1` (and its proof of Theorem 1 adds
    :math:`\beta \le 1/(8L_\Phi)`, kept here; it does not bind in the paper's
    experiment). **This function is the single source of the AID outer step**:
    the runs of the experiment must use the same number as the bound.

    .. note:: **Why** :math:`c = 1/3` **(the fix).** Theorem 1 divides by

       .. math::
           A = \tfrac12 - \beta L_\Phi - \big(\tfrac12 + \beta L_\Phi\big)
               \frac{12\beta^2C_2^2L^4}{\mu^2}.

       With :math:`\beta = c\,\eta\mu/(2LC_2)` (the binding term for
       :math:`\kappa\ge 2`) and :math:`\eta = 1/L`,
       :math:`12\beta^2C_2^2L^4/\mu^2 = 3c^2\eta^2L^2 = 3c^2`, so

       .. math::
           A = \tfrac12(1 - 3c^2) - \beta L_\Phi (1 + 3c^2).

       At :math:`c = 1` this is :math:`-1 - 4\beta L_\Phi < 0`: the paper's bound
       is vacuous. :math:`A > 0` needs :math:`c < 1/\sqrt3`. When the other
       term of the inner min binds, :math:`12\beta^2C_2^2L^4/\mu^2` is even
       smaller, and :math:`\beta L_\Phi \le 1/8`, so in general
       :math:`A \ge \tfrac38 - \tfrac{15}{8}c^2`, positive for every
       :math:`c < 1/\sqrt5 \approx 0.447`. Among these, the bound's leading
       term :math:`\Delta_\Phi/(\beta A K) \propto 1/(c(1-3c^2))` (up to
       :math:`O(\beta L_\Phi) = O(\kappa^{-2})`) is smallest at
       :math:`c = 1/3`, where :math:`A \approx 1/3` and
       :math:`A \ge 1/6` for **all** constants. (setups.md's stand-in
       :math:`c \approx 0.4` gives :math:`A \approx 0.26` and a ~7 % larger
       leading term.)

    Args:
      c: problem constants.
      alpha: inner step :math:`\alpha \in (0, 1/L]` [inner_lr] (default :math:`1/L`).
      eta: linear-system step :math:`\eta \in (0, 1/L]` [linsys_lr] (default :math:`1/L`).
      scale: :math:`c > 0`; default :data:`AID_BETA_SCALE` = 1/3; ``1.0`` is the
        paper's (vacuous) choice.

    >>> c = ProblemConstants.from_kappa([2.0, 4.0, 10.0])
    >>> [float(f"{b:.3g}") for b in aid_beta_001(c, scale=1.0)]  # paper 001 as stated
    [0.0219, 0.000906, 1.11e-05]
    >>> round(aid_beta_001(ProblemConstants.from_kappa(2.0)), 6)  # default c = 1/3
    0.00731
    """
    where = "aid_beta_001"
    scale = _positive(where, "scale", scale)
    alpha = _inner_step(c, where, "alpha", alpha)
    eta = _inner_step(c, where, "eta", eta)
    k = aid_constants_001(c, alpha, eta)
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    b1 = k["C1"] * mu * alpha / (4 * k["C2"] * k["C3"])
    b2 = eta * mu / (2 * L * k["C2"])
    cap = 1.0 / (8 * np.asarray(phi_smoothness(c)))
    return _out(np.minimum(scale * np.minimum(b1, b2), cap))


def aid_A_001(c: ProblemConstants, beta=None, alpha=None, eta=None):
    r"""The constant :math:`A` of paper 001, Theorem 1 (AID); the bound needs :math:`A>0`.

    .. math::
        A = \tfrac12 - \beta L_\Phi - \big(\tfrac12 + \beta L_\Phi\big)
            \frac{12\beta^2C_2^2L^4}{\mu^2}.

    ``beta=None`` uses :func:`aid_beta_001` (default scale). Returns :math:`A`
    without checking its sign.

    >>> c = ProblemConstants.from_kappa(2.0)
    >>> aid_A_001(c, aid_beta_001(c, scale=1.0)) < 0 < aid_A_001(c)
    True
    """
    where = "aid_A_001"
    alpha = _inner_step(c, where, "alpha", alpha)
    eta = _inner_step(c, where, "eta", eta)
    beta = aid_beta_001(c, alpha, eta) if beta is None else _positive(where, "beta", beta)
    beta = np.asarray(beta)
    C2 = np.asarray(aid_constants_001(c, alpha, eta)["C2"])
    Lphi = np.asarray(phi_smoothness(c))
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    return _out(0.5 - beta * Lphi - (0.5 + beta * Lphi) * 12 * beta**2 * C2**2 * L**4 / mu**2)


def aid_bound_001(c: ProblemConstants, K, alpha, eta, beta, delta_phi, e0):
    r"""Paper 001, Theorem 1: bound on :math:`\frac1K\sum_{k<K}\|\nabla\Phi(x_k)\|^2` (single-loop AID).

    .. math::
        \frac1K\sum_{k=0}^{K-1}\|\nabla\Phi(x_k)\|^2 \le
        \frac{\Phi(x_0) - \Phi^*}{\beta A K}
        + \frac{4L^3(1 + 2\beta L_\Phi)}{2\mu A K}\,E_0^2,
        \qquad E_0 = \|\hat v_0 - \tilde v_0^*\| + C_1\|\hat y_0 - y^*(x_0)\|,

    with :math:`A` of :func:`aid_A_001`, :math:`C_1` of :func:`aid_constants_001`
    and :math:`L_\Phi` of :func:`phi_smoothness` (proof version).

    Args:
      c: problem constants :math:`(L, \mu, M, \rho)`.
      K: number of outer iterations :math:`K \ge 1` (array for a curve over K).
      alpha: inner step; Theorem 1 is stated for :math:`\alpha = 1/L` (``None`` = 1/L).
      eta: linear-system step; stated for :math:`\eta = 1/L` (``None`` = 1/L).
      beta: outer step; ``None`` = :func:`aid_beta_001` (the fixed step).
      delta_phi: :math:`\Delta_\Phi = \Phi(x_0) - \Phi^* \ge 0`.
      e0: :math:`E_0 \ge 0`, measured at the :math:`k=0` iterates
        :math:`\hat v_0, \hat y_0` (after the first inner and linear-system steps).

    Raises:
      ValueError: on invalid inputs, and if :math:`A \le 0` (e.g. with the
        paper's unscaled :math:`\beta`): then the bound is vacuous.

    >>> c = ProblemConstants.from_kappa(2.0)
    >>> K = np.array([10, 100, 1000])
    >>> np.round(aid_bound_001(c, K, None, None, None, 0.225, 120.5), 3)
    array([793.346,  79.335,   7.933])
    """
    where = "aid_bound_001"
    K = _iterations(where, "K", K)
    alpha = _inner_step(c, where, "alpha", alpha, exact="Theorem 1 (paper 001)")
    eta = _inner_step(c, where, "eta", eta, exact="Theorem 1 (paper 001)")
    beta = aid_beta_001(c, alpha, eta) if beta is None else _positive(where, "beta", beta)
    delta_phi = _nonneg(where, "delta_phi", delta_phi)
    e0 = _nonneg(where, "e0", e0)
    A = np.asarray(aid_A_001(c, beta, alpha, eta))
    if not np.all(A > 0):
        raise ValueError(
            f"{where}: Theorem 1's constant "
            f"A = 1/2 - beta*L_Phi - (1/2 + beta*L_Phi)*12*beta^2*C2^2*L^4/mu^2 "
            f"is <= 0 (min A = {float(np.min(A)):.4g}), so the bound is vacuous. "
            f"Paper 001's step beta = eta*mu/(2*L*C2) always gives A = -1 - 4*beta*L_Phi < 0; "
            f"use the fixed step beta=None, i.e. aid_beta_001(c, alpha, eta) with "
            f"scale={AID_BETA_SCALE:.4g} (any scale < 1/sqrt(5) keeps A > 0).")
    beta = np.asarray(beta)
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    Lphi = np.asarray(phi_smoothness(c))
    return _out(delta_phi / (beta * A * K) + 4 * L**3 * (1 + 2 * beta * Lphi) / (2 * mu * A * K) * e0**2)


def aid_hypergrad_error_001(c: ProblemConstants, grad_phi_norm, e0, alpha=None, eta=None, beta=None):
    r"""Paper 001, Lemma 4: bound on :math:`\|\hat\nabla\Phi(x_k) - \nabla\Phi(x_k)\|^2`, every k.

    .. math::
        \|\hat\nabla\Phi(x_k) - \nabla\Phi(x_k)\|^2 \le L^2 r^k E_0^2
        + \frac{3\beta^2C_2^2L^3}{\mu}\sum_{t=0}^{k} r^{k-1-t}\|\nabla\Phi(x_t)\|^2,
        \qquad r = 1 - \frac{\mu}{4L}.

    (The sum includes :math:`t = k` with weight :math:`r^{-1}`, as printed.)

    Args:
      c: problem constants.
      grad_phi_norm: observed :math:`\|\nabla\Phi(x_t)\|`, :math:`t = 0..n-1`,
        along the last axis (leading axes broadcast with the constants).
      e0: :math:`E_0` as in :func:`aid_bound_001`.
      alpha, eta: stated for :math:`1/L` (``None`` = 1/L).
      beta: outer step (``None`` = :func:`aid_beta_001`).

    Returns:
      array of the same shape as ``grad_phi_norm``: the bound at :math:`k = 0..n-1`.
    """
    where = "aid_hypergrad_error_001"
    alpha = _inner_step(c, where, "alpha", alpha, exact="Lemma 4 (paper 001)")
    eta = _inner_step(c, where, "eta", eta, exact="Lemma 4 (paper 001)")
    beta = aid_beta_001(c, alpha, eta) if beta is None else _positive(where, "beta", beta)
    g2 = _nonneg(where, "grad_phi_norm", grad_phi_norm) ** 2
    if g2.ndim == 0:
        raise ValueError(f"{where}: grad_phi_norm must be an array over t = 0..k (last axis).")
    e0 = _nonneg(where, "e0", e0)
    L, mu = np.asarray(c.L)[..., None], np.asarray(c.mu)[..., None]
    C2 = np.asarray(aid_constants_001(c, alpha, eta)["C2"])[..., None]
    beta = np.asarray(beta)[..., None]
    r = 1 - mu / (4 * L)
    S = _discounted_sum(g2, r, include_current=True)
    k = np.arange(g2.shape[-1])
    return _out(L**2 * r**k * np.asarray(e0)[..., None] ** 2 + 3 * beta**2 * C2**2 * L**3 / mu * S)


def _discounted_sum(a: np.ndarray, r: np.ndarray, include_current: bool) -> np.ndarray:
    r""":math:`S_k = \sum_{t\le k} r^{k-1-t} a_t` (or :math:`\sum_{t<k}`) along the last axis."""
    n = a.shape[-1]
    shape = np.broadcast_shapes(a.shape, np.shape(r))
    a = np.broadcast_to(a, shape)
    r = np.broadcast_to(r, shape[:-1] + (1,))[..., 0]
    out = np.empty(shape)
    s = np.zeros(shape[:-1])  # S_{-1} = 0 resp. S_0 = 0
    for k in range(n):
        if include_current:      # S_k = r S_{k-1} + a_k / r
            s = r * s + a[..., k] / r
        else:                    # S_k = r S_{k-1} + a_{k-1}
            s = r * s + (a[..., k - 1] if k > 0 else 0.0)
        out[..., k] = s
    return out


# --------------------------------------------------------------------------- paper 001, ITD


def itd_beta_001(c: ProblemConstants, alpha=None):
    r"""Outer step of single-loop ITD (paper 001, Lemma 7 / Theorem 3), the largest allowed.

    .. math::
        \beta = \frac{\mu^3}{2L(2L^2 + \rho M)}
        \quad\Big(= \frac{1}{2\kappa(2\kappa^2 + 1)}\text{ in paper 001's experiment}\Big).

    Args:
      c: problem constants.
      alpha: inner step; Lemma 7 needs :math:`\alpha \in (0, 1/L]` (validated only).

    >>> round(itd_beta_001(ProblemConstants.from_kappa(2.0)), 5)
    0.02778
    """
    _inner_step(c, "itd_beta_001", "alpha", alpha)
    L, mu, M, rho = (np.asarray(v) for v in (c.L, c.mu, c.M, c.rho))
    return _out(mu**3 / (2 * L * (2 * L**2 + rho * M)))


def itd_constants_001(c: ProblemConstants, alpha=None, beta=None) -> dict:
    r"""Constants :math:`C_4, \dots, C_7` of paper 001, Lemma 5 (ITD).

    .. math::
        C_4 = L + \alpha L^2 + \alpha\rho M,\quad
        C_5 = M(1 - \alpha\mu)\frac{L}{\mu} + \alpha^2\rho M^2,\quad
        C_6 = 1 - \mu\alpha + \frac{L\beta C_4}{\mu},\quad
        C_7 = \frac{L\beta C_5}{\mu}.

    Args:
      c: problem constants.
      alpha: inner step :math:`\alpha \in (0, 1/L]` (default 1/L).
      beta: outer step (default :func:`itd_beta_001`).

    Returns:
      ``{"C4", "C5", "C6", "C7"}``; in paper 001's experiment at :math:`\alpha = 1/L`,
      :math:`C_4 = 0.2\kappa + 0.1/\kappa` and :math:`C_5 = 0.1(\kappa-1) + 0.1/\kappa^2`.
    """
    where = "itd_constants_001"
    alpha = _inner_step(c, where, "alpha", alpha)
    beta = itd_beta_001(c, alpha) if beta is None else _positive(where, "beta", beta)
    beta = np.asarray(beta)
    L, mu, M, rho = (np.asarray(v) for v in (c.L, c.mu, c.M, c.rho))
    C4 = L + alpha * L**2 + alpha * rho * M
    C5 = M * (1 - alpha * mu) * L / mu + alpha**2 * rho * M**2
    C6 = 1 - mu * alpha + L * beta * C4 / mu
    C7 = L * beta * C5 / mu
    return {"C4": _out(C4), "C5": _out(C5), "C6": _out(C6), "C7": _out(C7)}


def itd_A_001(c: ProblemConstants, beta=None, alpha=None):
    r"""The constant :math:`A` of paper 001, Theorem 3 (ITD); the bound needs :math:`A > 0`.

    .. math::
        A = \Big(\frac\beta2 - \beta^2L_\Phi\Big)
            - \Big(\frac\beta2 + \beta^2L_\Phi\Big)\frac{48L^2\beta^2C_4^2}{\mu^2}.

    (Unlike AID's :math:`A`, this one contains the factor :math:`\beta`.)

    >>> round(itd_A_001(ProblemConstants.from_kappa(2.0)), 4)
    0.0114
    """
    where = "itd_A_001"
    alpha = _inner_step(c, where, "alpha", alpha)
    beta = itd_beta_001(c, alpha) if beta is None else _positive(where, "beta", beta)
    beta = np.asarray(beta)
    C4 = np.asarray(itd_constants_001(c, alpha, beta)["C4"])
    Lphi = np.asarray(phi_smoothness(c))
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    up = beta / 2 + beta**2 * Lphi
    return _out((beta / 2 - beta**2 * Lphi) - up * 48 * L**2 * beta**2 * C4**2 / mu**2)


def itd_bound_terms_001(c: ProblemConstants, K, alpha, beta, delta_phi, dy0, *,
                        b2_per_iteration: bool = False) -> dict:
    r"""The terms of paper 001's Theorem 3 (single-loop ITD); see :func:`itd_bound_001`.

    Returns:
      dict with ``"A"``, ``"B1"``, ``"B2"``, ``"initial"`` :math:`=\Delta_\Phi/(AK)`,
      ``"inner"`` :math:`=(B_1 + B_2)/(AK)` (``B1/(AK)`` if ``b2_per_iteration``),
      ``"floor"`` (the K-independent term) and ``"total"``.
    """
    where = "itd_bound_001"
    K = _iterations(where, "K", K)
    alpha = _inner_step(c, where, "alpha", alpha, exact="Theorem 3 (paper 001)")
    beta_max = np.asarray(itd_beta_001(c, alpha))
    if beta is None:
        beta = beta_max
    else:
        beta = _positive(where, "beta", beta)
        if not np.all(beta <= beta_max * (1 + _RTOL)):
            raise ValueError(f"{where}: Lemma 7 / Theorem 3 need beta in (0, mu^3/(2L(2L^2+rho M))] "
                             f"= (0, {_out(beta_max)!r}], got beta={_out(beta)!r}.")
    delta_phi = _nonneg(where, "delta_phi", delta_phi)
    dy0 = _nonneg(where, "dy0", dy0)
    A = np.asarray(itd_A_001(c, beta, alpha))
    if not np.all(A > 0):
        raise ValueError(f"{where}: Theorem 3's constant A = (beta/2 - beta^2 L_Phi) "
                         f"- (beta/2 + beta^2 L_Phi)*48 L^2 beta^2 C4^2/mu^2 is <= 0 "
                         f"(min A = {float(np.min(A)):.4g}), so the bound is vacuous; decrease beta.")
    k = itd_constants_001(c, alpha, beta)
    C4, C5 = np.asarray(k["C4"]), np.asarray(k["C5"])
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    Lphi = np.asarray(phi_smoothness(c))
    up = beta / 2 + beta**2 * Lphi
    B1 = up * C4**2 * 8 * L / mu * dy0**2
    B2 = up * 48 * L**2 * beta**2 * C4**2 * C5**2 / mu**2
    initial = delta_phi / (A * K)
    floor = up * 2 * C5**2 / A
    if b2_per_iteration:
        inner = B1 / (A * K)
        floor = floor + B2 / A
    else:
        inner = (B1 + B2) / (A * K)
    total = initial + inner + floor
    return {"A": _out(A), "B1": _out(B1), "B2": _out(B2), "initial": _out(initial),
            "inner": _out(inner), "floor": _out(np.broadcast_to(floor, np.shape(total))),
            "total": _out(total)}


def itd_bound_001(c: ProblemConstants, K, alpha, beta, delta_phi, dy0, *, b2_per_iteration: bool = False):
    r"""Paper 001, Theorem 3: bound on :math:`\frac1K\sum_{k<K}\|\nabla\Phi(x_k)\|^2` (single-loop ITD).

    .. math::
        \frac1K\sum_{k=0}^{K-1}\|\nabla\Phi(x_k)\|^2 \le
        \frac{\Phi(x_0)-\Phi^*}{AK} + \frac{B_1 + B_2}{AK}
        + \Big(\frac\beta2 + \beta^2L_\Phi\Big)\frac{2C_5^2}{A},

    .. math::
        B_1 = \Big(\frac\beta2 + \beta^2L_\Phi\Big)C_4^2\frac{8L}{\mu}\|\hat y_0 - y^*(x_0)\|^2,\qquad
        B_2 = \Big(\frac\beta2 + \beta^2L_\Phi\Big)\frac{48L^2\beta^2C_4^2C_5^2}{\mu^2},

    :math:`A` of :func:`itd_A_001`, :math:`C_4, C_5` of :func:`itd_constants_001`.

    Args:
      c: problem constants.
      K: outer iterations :math:`K \ge 1`.
      alpha: inner step; Theorem 3 is stated for :math:`\alpha = 1/L` (``None`` = 1/L).
      beta: outer step in :math:`(0, \mu^3/(2L(2L^2+\rho M))]`; ``None`` = the maximum
        (:func:`itd_beta_001`).
      delta_phi: :math:`\Phi(x_0) - \Phi^* \ge 0`.
      dy0: :math:`\|\hat y_0 - y^*(x_0)\| \ge 0` (not squared), at the :math:`k=0`
        iterate after the first inner step.
      b2_per_iteration: see the note; ``False`` (default) is the theorem as printed.

    .. note:: In the telescoping step the proof bounds
       :math:`\sum_k(\|\nabla\Phi(x_k)\| + C_5)^2 \le 2\sum_k\|\nabla\Phi(x_k)\|^2 + 2KC_5^2`,
       so :math:`B_2` should carry a factor :math:`K` and enter the K-independent
       term as :math:`B_2/A` (``b2_per_iteration=True``). In the paper's
       experiment this raises the bound by 1.1 % at :math:`\kappa = 2`, 0.4 % at
       :math:`\kappa = 3`, 0.2 % at :math:`\kappa = 4` and less beyond (:math:`K = 10^4`).

    >>> c = ProblemConstants.from_kappa(2.0)
    >>> init = quadratic_001_initial_terms(2.0)
    >>> round(itd_bound_001(c, 10_000, None, None, init.delta_phi, init.dy0), 4)
    0.0569
    """
    return itd_bound_terms_001(c, K, alpha, beta, delta_phi, dy0,
                               b2_per_iteration=b2_per_iteration)["total"]


def itd_hypergrad_error_001(c: ProblemConstants, grad_phi_norm, dy0, alpha=None, beta=None,
                            factors: str = "proof"):
    r"""Paper 001, Lemma 7: bound on :math:`\|\hat\nabla\Phi(x_k) - \nabla\Phi(x_k)\|^2`, every k (ITD).

    .. math::
        \|\hat\nabla\Phi(x_k) - \nabla\Phi(x_k)\|^2 \le a\,C_4^2 r^k\|\hat y_0 - y^*(x_0)\|^2
        + \frac{b\,L\beta^2C_4^2}{\mu}\sum_{j=0}^{k-1} r^{k-1-j}(\|\nabla\Phi(x_j)\| + C_5)^2
        + d\,C_5^2,\qquad r = 1 - \frac{\mu}{4L},

    with :math:`(a, b, d) = (2, 6, 2)` for ``factors="proof"`` (what the proof
    derives and Theorem 3 uses; default) or :math:`(1, 3, 3)` for
    ``factors="statement"`` (the lemma as printed, which is not implied by the
    proof).

    Args:
      c: problem constants.
      grad_phi_norm: observed :math:`\|\nabla\Phi(x_j)\|`, :math:`j = 0..n-1`, last axis.
      dy0: :math:`\|\hat y_0 - y^*(x_0)\|`.
      alpha: inner step (needs :math:`\alpha \le 1/L`; default 1/L).
      beta: outer step (default :func:`itd_beta_001`).
      factors: ``"proof"`` or ``"statement"``.
    """
    where = "itd_hypergrad_error_001"
    if factors == "proof":
        a, b, d = 2.0, 6.0, 2.0
    elif factors == "statement":
        a, b, d = 1.0, 3.0, 3.0
    else:
        raise ValueError(f"{where}: unknown factors {factors!r}; choose 'proof' or 'statement'.")
    alpha = _inner_step(c, where, "alpha", alpha)
    beta = itd_beta_001(c, alpha) if beta is None else _positive(where, "beta", beta)
    g = _nonneg(where, "grad_phi_norm", grad_phi_norm)
    if g.ndim == 0:
        raise ValueError(f"{where}: grad_phi_norm must be an array over j = 0..k (last axis).")
    dy0 = np.asarray(_nonneg(where, "dy0", dy0))[..., None]
    k = itd_constants_001(c, alpha, beta)
    C4, C5 = np.asarray(k["C4"])[..., None], np.asarray(k["C5"])[..., None]
    L, mu = np.asarray(c.L)[..., None], np.asarray(c.mu)[..., None]
    beta = np.asarray(beta)[..., None]
    r = 1 - mu / (4 * L)
    S = _discounted_sum((g + C5) ** 2, r, include_current=False)
    kk = np.arange(g.shape[-1])
    return _out(a * C4**2 * r**kk * dy0**2 + b * L * beta**2 * C4**2 / mu * S + d * C5**2)


# --------------------------------------------------------------------------- paper 003 (Ji et al. 2022)


def ji_aid_params(c: ProblemConstants, N=1, Q=1) -> dict:
    r"""Parameters of Ji et al. (2022), Theorem 1 with Corollary 2 (No-loop AID-BiO); Theta = 1.

    .. math::
        \alpha = \frac1L,\quad \lambda = \frac{\alpha\mu}{2},\quad
        \eta = \min\Big\{\frac{\alpha\mu^2}{128Q^2L^2},\ \frac\alpha4,\ \frac{1}{\mu Q}\Big\},

    .. math::
        C_Q = (1-\eta\mu)^{Q-1}\frac{\eta Q}{\mu}
              + \frac{1 - (1-\eta\mu)^Q(1+\eta Q\mu)}{\mu^2}
              + \big(1 - (1-\eta\mu)^Q\big)\frac L\mu,\qquad r = \mu^2C_Q^2,

    .. math::
        \tilde w = \frac{\eta\mu\kappa^4}{\lambda r}
                   + \frac{\kappa^4}{\eta\mu}\Big(\frac{(1-\eta\mu)^{2Q}}{\mu^2} + \frac{\eta\mu}{\lambda}\Big),
        \qquad \beta = \min\Big\{\frac{1}{L_\Phi},\ \sqrt{\frac{\eta\mu}{\tilde w}}\Big\}.

    Theorem 1's hypothesis :math:`(1+\lambda)(1-\alpha\mu)^N(1 + r(1 + \frac{1}{\eta\mu}))
    \le 1 - \eta\mu` is returned as ``condition_lhs`` / ``condition_rhs``.
    Every :math:`\Theta(\cdot)` is taken as 1 (stand-in); :math:`L_\Phi` is
    :func:`phi_smoothness` (proof version).

    Args:
      c: problem constants.
      N: inner steps per outer step (integer >= 1; Corollary 2 has N = 1).
      Q: linear-system steps per outer step (integer >= 1).
    """
    where = "ji_aid_params"
    N = _integer(where, "N", N)
    Q = _integer(where, "Q", Q)
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    kappa = L / mu
    alpha = 1.0 / L
    lam = alpha * mu / 2
    eta = np.minimum(np.minimum(alpha * mu**2 / (128 * Q**2 * L**2), alpha / 4), 1 / (mu * Q))
    em = eta * mu
    CQ = ((1 - em) ** (Q - 1) * eta * Q / mu + (1 - (1 - em) ** Q * (1 + eta * Q * mu)) / mu**2
          + (1 - (1 - em) ** Q) * L / mu)
    r = mu**2 * CQ**2
    w_tilde = em * kappa**4 / (lam * r) + kappa**4 / em * ((1 - em) ** (2 * Q) / mu**2 + em / lam)
    Lphi = np.asarray(phi_smoothness(c))
    beta = np.minimum(1 / Lphi, np.sqrt(em / w_tilde))
    lhs = (1 + lam) * (1 - alpha * mu) ** N * (1 + r * (1 + 1 / em))
    names = ("alpha", "lam", "eta", "C_Q", "r", "w_tilde", "L_Phi", "beta", "condition_lhs", "condition_rhs")
    return dict(zip(names, map(_out, (alpha, lam, eta, CQ, r, w_tilde, Lphi, beta, lhs, 1 - em))))


def ji_aid_bound(c: ProblemConstants, K, N, Q, delta_phi, y0_star_norm_sq):
    r"""Ji et al. (2022), Theorem 1 eq. (4) with Corollary 2's parameters (No-loop AID); Theta = 1.

    .. math::
        \frac1K\sum_{k=0}^{K-1}\|\nabla\Phi(x_k)\|^2 \le
        \frac{\Phi(x_0) - \Phi^*}{\beta K}
        + \frac{\kappa^2\|y_0^*\|^2 + \big(\frac{3M}{\mu} + \kappa^2\big)}{\eta\mu K},

    with :math:`\beta, \eta` of :func:`ji_aid_params`. The :math:`\mathcal O(\cdot)`
    of eq. (4) and every :math:`\Theta(\cdot)` are taken as 1 (**stand-in**; the
    exact constants of paper 003's Appendix H are not available). This is
    what paper 001 calls the "Ji et al." AID curve (its Theorem 2).

    Args:
      c: problem constants.
      K: outer iterations :math:`K \ge 1`.
      N, Q: inner and linear-system steps (integers >= 1; paper 001 uses 1, 1).
      delta_phi: :math:`\Phi(x_0) - \Phi^*`.
      y0_star_norm_sq: :math:`\|y^*(x_0)\|^2` (paper 003 starts from :math:`y_0 = 0`).

    Raises:
      ValueError: on invalid inputs or if Theorem 1's step-size condition fails.
    """
    where = "ji_aid_bound"
    K = _iterations(where, "K", K)
    delta_phi = _nonneg(where, "delta_phi", delta_phi)
    y0s = _nonneg(where, "y0_star_norm_sq", y0_star_norm_sq)
    p = ji_aid_params(c, N, Q)
    if not np.all(np.asarray(p["condition_lhs"]) <= np.asarray(p["condition_rhs"])):
        raise ValueError(f"{where}: Theorem 1's condition (1+lambda)(1-alpha mu)^N (1 + r(1 + 1/(eta mu))) "
                         f"<= 1 - eta mu fails for N={N!r}, Q={Q!r} (with Theta = 1).")
    L, mu, M = np.asarray(c.L), np.asarray(c.mu), np.asarray(c.M)
    kappa = L / mu
    beta, eta = np.asarray(p["beta"]), np.asarray(p["eta"])
    return _out(delta_phi / (beta * K) + (kappa**2 * y0s + 3 * M / mu + kappa**2) / (eta * mu * K))


def ji_itd_params(c: ProblemConstants, N, alpha=None, *, strict: bool = False) -> dict:
    r"""Parameters of Ji et al. (2022), Theorem 3 with Corollary 6's step (ITD-BiO); Theta = 1.

    .. math::
        s = \frac{\alpha\,(1 - (1-\alpha\mu)^{N/2})}{1 - \sqrt{1-\alpha\mu}},\qquad
        w_N = (1 + s)\,s\,(1-\alpha\mu)^{N/2 - 1},

    .. math::
        \lambda_N = \frac{w_N^2 + (1 + \alpha L N)^2}
                         {1 - \frac14\alpha\mu - (1-\alpha\mu)^N(1 + \frac12\alpha\mu)},\quad
        \tau = (\lambda_N + N^2)(1-\alpha\mu)^N + w_N^2,\quad
        w = \frac{\kappa^2}{\alpha\mu}(1-\alpha\mu)^N\lambda_N + \frac{w_N^2}{\mu^2},

    .. math::
        \beta = \min\Big\{\sqrt{\frac{\alpha\mu}{40w}},\ \sqrt{\frac{1-\alpha\mu}{2w}},\
                \frac{1}{8L_\Phi}\Big\}.

    At :math:`N = 1`, :math:`w_N = (1+\alpha)\alpha(1-\alpha\mu)^{-1/2}`.

    Args:
      c: problem constants.
      N: inner steps (integer >= 1).
      alpha: inner step (default 1/L, as paper 001 uses). Paper 003's Theorem 3
        requires :math:`\alpha \le 1/(2L)` (Corollary 6: :math:`1/(2NL)`);
        ``strict=True`` enforces it, otherwise :math:`\alpha \le 1/L` is accepted.
    """
    where = "ji_itd_params"
    N = _integer(where, "N", N)
    alpha = _inner_step(c, where, "alpha", alpha)
    L, mu = np.asarray(c.L), np.asarray(c.mu)
    if strict and not np.all(alpha * L <= 0.5 * (1 + _RTOL)):
        raise ValueError(f"{where}: Ji et al. Theorem 3 needs alpha in (0, 1/(2L)]; got alpha*L = "
                         f"{_out(alpha * L)!r} (pass strict=False to evaluate it at alpha <= 1/L as paper 001 does).")
    am = alpha * mu
    if not np.all(am < 1):
        raise ValueError(f"{where}: needs alpha*mu < 1 (alpha = 1/L with kappa = 1 makes beta = 0); "
                         f"got alpha*mu = {_out(am)!r}.")
    kappa = L / mu
    s = alpha * (1 - (1 - am) ** (N / 2)) / (1 - np.sqrt(1 - am))
    wN = (1 + s) * s * (1 - am) ** (N / 2 - 1)
    lamN = (wN**2 + (1 + alpha * L * N) ** 2) / (1 - am / 4 - (1 - am) ** N * (1 + am / 2))
    tau = (lamN + N**2) * (1 - am) ** N + wN**2
    w = kappa**2 / am * (1 - am) ** N * lamN + wN**2 / mu**2
    Lphi = np.asarray(phi_smoothness(c))
    beta = np.minimum(np.minimum(np.sqrt(am / (40 * w)), np.sqrt((1 - am) / (2 * w))), 1 / (8 * Lphi))
    names = ("alpha", "w_N", "lambda_N", "tau", "w", "L_Phi", "beta")
    return dict(zip(names, map(_out, (alpha, wN, lamN, tau, w, Lphi, beta))))


def ji_itd_bound_terms(c: ProblemConstants, K, N, alpha, delta_phi, delta_y, *, strict: bool = False) -> dict:
    r"""The four terms of Ji et al. (2022), Theorem 3 eq. (5); see :func:`ji_itd_bound`.

    Returns:
      dict with ``"initial"`` :math:`\Delta_\Phi/(\beta K)`, ``"inner"``
      :math:`\tau\Delta_y/(\mu^2K)`, ``"transient"`` :math:`(1-\alpha\mu)^{2N}/(\mu^3K)`,
      ``"floor"`` :math:`M^2(1-\alpha\mu)^{2N}L^2/(\alpha\mu^3)` (K-independent),
      ``"beta"`` and ``"total"``.
    """
    where = "ji_itd_bound"
    K = _iterations(where, "K", K)
    delta_phi = _nonneg(where, "delta_phi", delta_phi)
    delta_y = _nonneg(where, "delta_y", delta_y)
    p = ji_itd_params(c, N, alpha, strict=strict)
    N = np.asarray(N, dtype=float)
    alpha, beta, tau = np.asarray(p["alpha"]), np.asarray(p["beta"]), np.asarray(p["tau"])
    L, mu, M = np.asarray(c.L), np.asarray(c.mu), np.asarray(c.M)
    q = (1 - alpha * mu) ** (2 * N)
    initial = delta_phi / (beta * K)
    inner = tau * delta_y / (mu**2 * K)
    transient = q / (mu**3 * K)
    floor = M**2 * q * L**2 / (alpha * mu**3)
    total = initial + inner + transient + floor
    return {"initial": _out(initial), "inner": _out(inner), "transient": _out(transient),
            "floor": _out(np.broadcast_to(floor, np.shape(total))), "beta": _out(beta), "total": _out(total)}


def ji_itd_bound(c: ProblemConstants, K, N, alpha, delta_phi, delta_y, *, strict: bool = False):
    r"""Ji et al. (2022), Theorem 3 eq. (5) with Corollary 6's :math:`\beta` (ITD-BiO); Theta = 1.

    .. math::
        \frac1K\sum_{k=0}^{K-1}\|\nabla\Phi(x_k)\|^2 \le
        \frac{\Delta_\Phi}{\beta K} + \frac{\tau\Delta_y}{\mu^2K}
        + \frac{(1-\alpha\mu)^{2N}}{\mu^3K} + \frac{M^2(1-\alpha\mu)^{2N}L^2}{\alpha\mu^3},

    :math:`\tau, \beta` of :func:`ji_itd_params`. The :math:`\mathcal O(\cdot)` and
    every :math:`\Theta(\cdot)` are taken as 1 (**stand-in**). The K-independent
    term exceeds the lower bound :func:`ji_itd_lower_bound` by the factor
    :math:`1/(\alpha\mu)` (the ":math:`\alpha\mu` gap"); at :math:`N=1`,
    :math:`\alpha = 1/L` it is :math:`\kappa` times the lower bound.

    Args:
      c: problem constants.
      K: outer iterations :math:`K \ge 1`.
      N: inner steps (integer >= 1; single-loop: 1).
      alpha: inner step (``None`` = 1/L, as in paper 001; see ``strict``).
      delta_phi: :math:`\Delta_\Phi = \Phi(x_0) - \min\Phi`.
      delta_y: :math:`\Delta_y = \|y_0 - y^*(x_0)\|^2` (squared, at the initial
        point :math:`y_0` before any inner step).
      strict: enforce paper 003's :math:`\alpha \le 1/(2L)`.
    """
    return ji_itd_bound_terms(c, K, N, alpha, delta_phi, delta_y, strict=strict)["total"]


def ji_itd_lower_bound(c: ProblemConstants, N=1, alpha=None):
    r"""Ji et al. (2022), Theorem 4 (paper 001's Theorem 4): lower bound for ITD-BiO; Theta = 1.

    There are :math:`f, g` satisfying the assumptions such that, for all
    :math:`K \ge 1` (with :math:`\alpha \le 1/L`, :math:`\beta \le 1/L_\Phi`),

    .. math::
        \|\nabla\Phi(x_K)\|^2 \ge \frac{L^2M^2}{\mu^2}(1 - \alpha\mu)^{2N}.

    In paper 001's experiment (:math:`N = 1`, :math:`\alpha = 1/L`) this is
    :math:`0.01(\kappa-1)^2`, the exact limit of single-loop ITD there.

    Args:
      c: problem constants.
      N: inner steps (integer >= 1).
      alpha: inner step in :math:`(0, 1/L]` (default 1/L).

    >>> ji_itd_lower_bound(ProblemConstants.from_kappa(np.arange(2.0, 5.0)))
    array([0.01, 0.04, 0.09])
    """
    where = "ji_itd_lower_bound"
    N = _integer(where, "N", N)
    alpha = _inner_step(c, where, "alpha", alpha)
    L, mu, M = np.asarray(c.L), np.asarray(c.mu), np.asarray(c.M)
    return _out(L**2 * M**2 / mu**2 * (1 - alpha * mu) ** (2 * N))


# --------------------------------------------------------------------------- the quadratic of paper 001


class InitialTerms001(NamedTuple):
    r"""Initial quantities of paper 001's bounds (see :func:`quadratic_001_initial_terms`)."""

    delta_phi: Any  #: :math:`\Phi(x_0) - \Phi^*`
    dy0: Any        #: :math:`\|\hat y_0 - y^*(x_0)\|` (ITD, Theorem 3)
    e0: Any         #: :math:`E_0 = \|\hat v_0 - \tilde v_0^*\| + C_1\|\hat y_0 - y^*(x_0)\|` (AID, Theorem 1)


def _quadratic_001(kappa, x0, mu):
    kappa = _real("quadratic_001", "kappa", kappa)
    if not np.all(kappa >= 1):
        raise ValueError(f"quadratic_001: kappa must be >= 1, got {kappa!r}.")
    mu = _positive("quadratic_001", "mu", mu)
    L = kappa * mu
    Z = np.stack(np.broadcast_arrays(L, mu), axis=-1)          # diag(L, mu), shape (..., 2)
    x0 = _real("quadratic_001", "x0", x0)
    x0 = np.broadcast_to(x0, np.broadcast_shapes(x0.shape, Z.shape))
    return L, Z, x0


def quadratic_001_initial_terms(kappa, x0=0.0, y0=0.0, v0=0.0, *, mu=0.1, M=0.1, rho=0.1,
                                alpha=None, eta=None) -> InitialTerms001:
    r"""Initial terms of paper 001's bounds on its synthetic quadratic (setups.md C.1).

    .. math::
        f(x,y) = \tfrac12 x^\top Z_x x + \tfrac1{10}\mathbf 1^\top y,\quad
        g(x,y) = \tfrac12 y^\top Z_y y - L x^\top y + \mathbf 1^\top y,\quad
        Z_x = Z_y = \operatorname{diag}(L, \mu),\ L = \kappa\mu,

    so :math:`y^*(x) = Z_y^{-1}(Lx - \mathbf 1)`,
    :math:`\nabla\Phi(x) = Z_x x + 0.1 L Z_y^{-1}\mathbf 1`,
    :math:`x^* = -0.1L Z_x^{-1}Z_y^{-1}\mathbf 1` and
    :math:`\Phi(x) - \Phi^* = \tfrac12(x - x^*)^\top Z_x(x - x^*)`.
    The lemmas measure the errors at the :math:`k = 0` iterates
    :math:`\hat y_0 = y_0 - \alpha\nabla_y g(x_0, y_0)` and
    :math:`\hat v_0 = (I - \eta Z_y)v_0 + 0.1\eta\mathbf 1`, with
    :math:`\tilde v_0^* = Z_y^{-1}\nabla_y f = 0.1 Z_y^{-1}\mathbf 1`.

    Args:
      kappa: condition number(s) :math:`\kappa \ge 1` (array for a curve).
      x0, y0, v0: Algorithm 1/2 initialisations in :math:`\mathbb R^2` (scalars
        broadcast to both coordinates; leading axes broadcast with ``kappa``).
      mu: :math:`\mu` (paper: 0.1).
      M, rho: the constants entering :math:`C_1` of :math:`E_0` (paper: 0.1, as
        in :meth:`ProblemConstants.from_kappa`); they do not change the problem.
      alpha, eta: inner and linear-system steps (default :math:`1/L`).

    Returns:
      :class:`InitialTerms001` ``(delta_phi, dy0, e0)``; with :math:`x_0=y_0=v_0=0`
      and :math:`\alpha=\eta=1/L`:
      :math:`\Delta_\Phi = 0.05(\kappa^2 + 1/\kappa)`,
      :math:`\|\hat y_0 - y^*_0\| = 10(1 - 1/\kappa)`,
      :math:`E_0 = (1 - 1/\kappa)(1 + 10C_1)`.

    .. note:: The quadratic has :math:`\rho = 0` and :math:`\|\nabla_y f\| = 0.1\sqrt2`;
       the paper nevertheless sets :math:`M = \rho = 0.1` for its curves.

    >>> t = quadratic_001_initial_terms(2.0)
    >>> round(t.delta_phi, 4), round(t.dy0, 4), round(t.e0, 4)
    (0.225, 5.0, 120.5)
    """
    L, Z, x0 = _quadratic_001(kappa, x0, mu)
    c = ProblemConstants(L=_out(L), mu=_out(mu), M=M, rho=rho)
    alpha = np.asarray(_inner_step(c, "quadratic_001_initial_terms", "alpha", alpha))[..., None]
    eta = np.asarray(_inner_step(c, "quadratic_001_initial_terms", "eta", eta))[..., None]
    y0 = _real("quadratic_001_initial_terms", "y0", y0)
    v0 = _real("quadratic_001_initial_terms", "v0", v0)
    Lc = np.asarray(L)[..., None]
    x_star = -0.1 * Lc / Z**2
    delta_phi = 0.5 * np.sum(Z * (x0 - x_star) ** 2, axis=-1)
    y_star0 = (Lc * x0 - 1) / Z
    y_hat0 = y0 - alpha * (Z * y0 - Lc * x0 + 1)
    dy0 = np.linalg.norm(y_hat0 - y_star0, axis=-1)
    v_hat0 = (1 - eta * Z) * v0 + 0.1 * eta
    v_tilde0 = 0.1 / Z
    C1 = np.asarray(aid_constants_001(c, alpha[..., 0], eta[..., 0])["C1"])
    e0 = np.linalg.norm(v_hat0 - v_tilde0, axis=-1) + C1 * dy0
    return InitialTerms001(_out(delta_phi), _out(dy0), _out(e0))


def quadratic_001_ji_initial_terms(kappa, x0=0.0, y0=0.0, *, mu=0.1):
    r"""Initial terms of Ji et al.'s bounds on paper 001's quadratic.

    Returns:
      ``(delta_y, y0_star_norm_sq)`` with :math:`\Delta_y = \|y_0 - y^*(x_0)\|^2`
      (for :func:`ji_itd_bound`; before any inner step) and
      :math:`\|y^*(x_0)\|^2` (for :func:`ji_aid_bound`), where
      :math:`y^*(x) = Z_y^{-1}(Lx - \mathbf 1)`. :math:`\Delta_\Phi` is
      ``quadratic_001_initial_terms(...).delta_phi``.

    >>> quadratic_001_ji_initial_terms(2.0)  # y0 = 0: both are 1/L^2 + 1/mu^2
    (125.0, 125.0)
    """
    L, Z, x0 = _quadratic_001(kappa, x0, mu)
    y0 = _real("quadratic_001_ji_initial_terms", "y0", y0)
    y_star0 = (np.asarray(L)[..., None] * x0 - 1) / Z
    return (_out(np.sum((y0 - y_star0) ** 2, axis=-1)), _out(np.sum(y_star0**2, axis=-1)))
