"""Logistic regression by maximum likelihood, with Wald intervals.

Newton-Raphson on the log-likelihood (McCullagh & Nelder, Generalized Linear Models, 2nd ed.,
section 4.4; the same fit statsmodels' `Logit(...).fit(method="newton")` performs):
  p = 1 / (1 + exp(-Xb));  gradient g = X'(y - p);  Hessian H = -X' diag(p(1-p)) X
  b <- b - H^-1 g, halving the step while the log-likelihood falls.
Standard errors are sqrt(diag((X'WX)^-1)) at the optimum; Wald z = b / se, two-sided
p = 2(1 - Phi(|z|)), interval b +- z_{1-a/2} se. Written here (about 40 lines) so the workbench
install does not need statsmodels; the tests check it against statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import norm


@dataclass(frozen=True)
class LogisticFit:
    coef: np.ndarray
    se: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    converged: bool
    separated: bool  # the predictors split the outcome (almost) perfectly: no finite optimum


def _log_likelihood(y: np.ndarray, eta: np.ndarray) -> float:
    # log p = -log(1 + e^-eta), log(1 - p) = -log(1 + e^eta), computed without overflow
    return float(-(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta)).sum())


def logistic_regression(
    y: np.ndarray, x: np.ndarray, alpha: float = 0.05, max_iter: int = 100, tol: float = 1e-10
) -> LogisticFit:
    """Fit logit P(y = 1) = x b. `x` carries its own intercept column. Raises LinAlgError when
    the columns are collinear."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    beta = np.zeros(x.shape[1])
    ll = _log_likelihood(y, x @ beta)
    converged = False
    for iteration in range(max_iter):
        p = expit(x @ beta)
        information = x.T @ (x * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(information, x.T @ (y - p))
        except np.linalg.LinAlgError:
            if iteration == 0:
                raise  # singular at the start: the columns themselves are collinear
            break  # singular later: the fitted probabilities reached 0 and 1 (separation)
        new_beta, new_ll = beta + step, _log_likelihood(y, x @ (beta + step))
        for _ in range(30):  # step halving keeps every iteration an ascent
            if new_ll >= ll - 1e-12:
                break
            step /= 2
            new_beta, new_ll = beta + step, _log_likelihood(y, x @ (beta + step))
        beta, ll = new_beta, new_ll
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            converged = True
            break
    p = expit(x @ beta)
    separated = bool(np.all(np.abs(p - y) < 1e-3))
    information = x.T @ (x * (p * (1 - p))[:, None])
    try:
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(np.linalg.inv(information)))
    except np.linalg.LinAlgError:
        se = np.full_like(beta, np.inf)
    separated = separated or not np.all(np.isfinite(se))
    z = norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = 2 * norm.sf(np.abs(beta / se))
    return LogisticFit(beta, se, p_value, beta - z * se, beta + z * se, converged, separated)
