"""Experiment statistics from per-arm sufficient statistics, vectorised over metric × variant rows.

Input: one row per arm (metric × variant, optionally × further keys such as a segment or a day)
holding sums the engine computed: ``n, sum_y, sum_y2`` (+ ``sum_x, sum_x2, sum_xy`` for a
pre-exposure covariate x, + ``sum_d, sum_d2, sum_yd`` for the denominator d of a ratio metric).
No per-user data is needed. Every formula below is evaluated for all rows at once with numpy.

Method (what the readout's method section can name):

* Arm estimate. ``mean``: ȳ = Σy/n, per-user variance s² with n − 1. ``conversion``:
  p = Σy/n, variance p(1 − p). ``ratio`` (Σy/Σd, e.g. revenue per session): R = Σy/Σd with the
  delta-method variance Var(R) = (s_yy − 2R·s_yd + R²·s_dd) / (n·d̄²) (sample moments, n − 1).
* Absolute effect Δ = estimate(variant) − estimate(control), SE = √(V_t + V_c) with V the variance
  of each arm's estimate. ``mean``: Welch t-test with Welch–Satterthwaite degrees of freedom
  ν = (V_t + V_c)² / (V_t²/(n_t − 1) + V_c²/(n_c − 1)). ``conversion`` and ``ratio``: normal (z)
  reference (unpooled Wald; ``proportion_test="pooled"`` gives the pooled-variance z-test p-value
  of ``statsmodels.stats.proportion.proportions_ztest`` instead). Two-sided p-value; CI
  Δ ± q·SE with q the 1 − α/2 quantile of the same reference distribution.
* Relative effect Δ% = m_t/m_c − 1, delta-method SE = √(V_t/m_c² + m_t²·V_c/m_c⁴) (arms
  independent), CI Δ% ± q·SE with the same q.
* CUPED (``mean`` and ``conversion``): θ pooled across all arms of the metric as the pooled
  within-arm slope θ = Σ_arms S_xy / Σ_arms S_xx (centred sums); this makes the adjusted effect
  identical to the treatment coefficient of OLS ``y ~ variant + x``. Adjusted arm mean
  ȳ − θ(x̄ − x̄_all), adjusted per-user variance s_y² − 2θ·s_xy + θ²·s_x² (θ treated as known),
  then the same test as unadjusted. Variance reduction = 1 − SE²_adjusted / SE²_unadjusted
  (≈ ρ² between covariate and metric). Unadjusted results are always reported alongside.
* Power: minimum detectable effect at the given power, two-sided α:
  MDE = (z_{1−α/2} + z_{power})·SE (normal approximation, observed variance and n); the users
  needed for a target effect δ, keeping the allocation and per-user variances:
  N_needed = N·(SE·(z_{1−α/2} + z_{power})/δ)².
* Sample ratio mismatch: Pearson χ² goodness of fit of the arm counts against the planned split,
  k − 1 degrees of freedom; p < 0.001 fails the trust gate.
* Multiple comparisons: Benjamini–Hochberg step-up (default) or Holm step-down adjusted p-values
  over primary and secondary metrics × variants; guardrails are one-sided non-inferiority tests
  (H0: effect at least the margin in the harmful direction) outside the family.
* Sequential (always valid) intervals: the asymptotic confidence sequence of Waudby-Smith et al.,
  "Time-uniform central limit theory and asymptotic confidence sequences" (normal-mixture
  boundary): Δ ± SE·√((tρ² + 1)/(tρ²) · (log(tρ² + 1) − 2 log α)) with t the users in the
  comparison and ρ² = (−2 log α + log(1 − 2 log α))/t* tuned for the planned size t*; its
  always-valid p-value is min(1, √(1 + tρ²)·exp(−z²·tρ²/(2(1 + tρ²)))).
* Bayesian chance to beat control: P(effect in the desired direction | data) under a normal
  approximation of the likelihood of the (relative or absolute) effect with a flat prior, or a
  weak N(0, τ²) prior. It is a posterior probability, not 1 − p.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from workbench.errors import WorkbenchError

MetricType = Literal["conversion", "mean", "ratio"]
Direction = Literal["increase", "decrease"]
Role = Literal["primary", "secondary", "guardrail"]
METRIC_TYPES: tuple[str, ...] = ("conversion", "mean", "ratio")
SRM_THRESHOLD = 0.001
COVARIATE_COLUMNS = ("sum_x", "sum_x2", "sum_xy")
RATIO_COLUMNS = ("sum_d", "sum_d2", "sum_yd")

_CONVERSION, _MEAN, _RATIO = 0, 1, 2


class ExperimentInputError(WorkbenchError):
    """Statistics or options passed to the experiment statistics cannot be used as given."""


# --------------------------------------------------------------------------------------------
# Small vectorised building blocks
# --------------------------------------------------------------------------------------------


def _arr(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ExperimentInputError(f"{name} must be a number between 0 and 1, got {alpha!r}")


def _quantile(p: float | np.ndarray, df: np.ndarray | float = np.inf) -> np.ndarray:
    """Quantile of Student's t with df degrees of freedom (normal where df is infinite)."""
    return special.stdtrit(_arr(df), _arr(p))


def _two_sided_p(stat: np.ndarray, df: np.ndarray | float = np.inf) -> np.ndarray:
    return 2.0 * special.stdtr(_arr(df), -np.abs(stat))


def _upper_p(stat: np.ndarray, df: np.ndarray | float = np.inf) -> np.ndarray:
    return special.stdtr(_arr(df), -_arr(stat))


def mde(std_error: object, *, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Minimum detectable absolute effect at `power` for a two-sided test: (z₁₋α/₂ + z_power)·SE."""
    _check_alpha(alpha)
    _check_alpha(power, "power")
    return (special.ndtri(1 - alpha / 2) + special.ndtri(power)) * _arr(std_error)


def sample_size_needed(
    std_error: object,
    n: object,
    target_effect: object,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> np.ndarray:
    """Users needed in the comparison (same split and variances) to detect `target_effect`."""
    _check_alpha(alpha)
    _check_alpha(power, "power")
    needed_se = np.abs(_arr(target_effect)) / (special.ndtri(1 - alpha / 2) + special.ndtri(power))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.ceil(_arr(n) * (_arr(std_error) / needed_se) ** 2)


def rho_for_planned_n(planned_n: object, *, alpha: float = 0.05) -> np.ndarray:
    """Tuning ρ of the normal-mixture confidence sequence that is tightest near `planned_n`."""
    _check_alpha(alpha)
    log_term = -2 * math.log(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((log_term + math.log(log_term + 1)) / _arr(planned_n))


def sequential_multiplier(n: object, *, alpha: float = 0.05, rho: object) -> np.ndarray:
    """Half-width of the asymptotic confidence sequence at `n` users, in standard errors."""
    _check_alpha(alpha)
    u = _arr(n) * _arr(rho) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((u + 1) / u * (np.log1p(u) - 2 * math.log(alpha)))


def confidence_sequence(
    estimate: object,
    std_error: object,
    n: object,
    *,
    alpha: float = 0.05,
    planned_n: object = None,
    rho: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Always-valid (time-uniform) interval for an estimate seen after `n` users."""
    if (planned_n is None) == (rho is None):
        raise ExperimentInputError("give exactly one of planned_n or rho for a confidence sequence")
    if rho is None:
        rho = rho_for_planned_n(planned_n, alpha=alpha)
    half = sequential_multiplier(n, alpha=alpha, rho=rho) * _arr(std_error)
    return _arr(estimate) - half, _arr(estimate) + half


def sequential_p_value(
    estimate: object,
    std_error: object,
    n: object,
    *,
    rho: object,
) -> np.ndarray:
    """Always-valid p-value: the smallest α whose confidence sequence (same ρ) excludes 0."""
    u = _arr(n) * _arr(rho) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = _arr(estimate) / _arr(std_error)
        log_p = 0.5 * np.log1p(u) - z**2 * u / (2 * (1 + u))
        return np.minimum(1.0, np.exp(log_p))


def chance_to_beat_control(
    effect: object,
    std_error: object,
    *,
    direction: object = "increase",
    prior_sd: float | None = None,
) -> np.ndarray:
    """Posterior P(effect in the desired direction), normal likelihood, flat or N(0, prior_sd²)."""
    effect, se = _arr(effect), _arr(std_error)
    sign = np.where(np.asarray(direction) == "decrease", -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if prior_sd is not None:
            if not prior_sd > 0:
                raise ExperimentInputError(f"prior_sd must be positive, got {prior_sd!r}")
            shrink = prior_sd**2 / (prior_sd**2 + se**2)
            effect, se = effect * shrink, se * np.sqrt(shrink)
        return special.ndtr(sign * effect / se)


class NonInferiority(NamedTuple):
    """One-sided non-inferiority test results (arrays)."""

    statistic: np.ndarray
    p_value: np.ndarray
    bound: np.ndarray
    passed: np.ndarray


def non_inferiority(
    effect: object,
    std_error: object,
    margin: object,
    *,
    direction: object = "increase",
    alpha: float = 0.05,
    df: object = np.inf,
) -> NonInferiority:
    """One-sided test of H0: the effect is at least `margin` in the harmful direction."""
    _check_alpha(alpha)
    effect, se, margin = _arr(effect), _arr(std_error), _arr(margin)
    if np.any(margin < 0):
        raise ExperimentInputError("non-inferiority margins are magnitudes and must be ≥ 0")
    sign = np.where(np.asarray(direction) == "decrease", -1.0, 1.0)
    q = _quantile(1 - alpha, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (sign * effect + margin) / se
        p = _upper_p(stat, df)
    bound = effect - sign * q * se
    valid = np.isfinite(p)
    return NonInferiority(stat, p, bound, np.where(valid, p < alpha, False))


class SrmResult(NamedTuple):
    """Sample ratio mismatch test: Pearson χ² against the planned split and its p-value."""

    chi2: float
    p_value: float

    def passed(self, threshold: float = SRM_THRESHOLD) -> bool:
        """True when the split is consistent with the plan (p ≥ threshold)."""
        return bool(self.p_value >= threshold)


def srm_check(observed_counts: Sequence[float], planned_shares: Sequence[float]) -> SrmResult:
    """Chi-square goodness-of-fit of arm counts against the planned shares (k − 1 df)."""
    observed = _arr(observed_counts)
    shares = _arr(planned_shares)
    if observed.ndim != 1 or observed.shape != shares.shape or observed.size < 2:
        raise ExperimentInputError(
            f"srm_check needs one count per planned share (at least two arms), got "
            f"{observed.size} count(s) and {shares.size} share(s)"
        )
    if np.any(~np.isfinite(observed)) or np.any(observed < 0):
        raise ExperimentInputError("arm counts must be finite and ≥ 0")
    if np.any(~np.isfinite(shares)) or np.any(shares <= 0) or abs(shares.sum() - 1) > 1e-6:
        raise ExperimentInputError(
            f"planned shares must be positive and sum to 1, got {list(planned_shares)}"
        )
    total = observed.sum()
    if total == 0:
        return SrmResult(math.nan, math.nan)
    expected = total * shares / shares.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return SrmResult(chi2, float(special.chdtrc(observed.size - 1, chi2)))


def adjust_pvalues(p_values: object, method: str = "bh") -> np.ndarray:
    """Adjusted p-values: Benjamini–Hochberg ("bh"), Holm ("holm") or none; NaNs stay NaN."""
    p = _arr(p_values)
    if p.ndim != 1:
        raise ExperimentInputError("adjust_pvalues expects a one-dimensional list of p-values")
    if method not in ("bh", "holm", "none"):
        raise ExperimentInputError(f"unknown correction {method!r}; use 'bh', 'holm' or 'none'")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ExperimentInputError("p-values must lie between 0 and 1")
    out = np.full_like(p, np.nan)
    values = p[finite]
    m = values.size
    if method == "none" or m == 0:
        out[finite] = values
        return out
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    if method == "bh":
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    else:
        scaled = ranked * (m - np.arange(m))
        adjusted = np.maximum.accumulate(scaled)
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[finite] = result
    return out


# --------------------------------------------------------------------------------------------
# Arm moments
# --------------------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    column = frame[name]
    if not pd.api.types.is_numeric_dtype(column.dtype):
        column = pd.to_numeric(column, errors="coerce")
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Dense integer ids of the distinct combinations of `columns` (NaN is a value)."""
    combined = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
        combined = combined * (len(uniques) + 1) + codes
    return np.unique(combined, return_inverse=True)[1].reshape(-1)


def _type_codes(frame: pd.DataFrame, metric_type: str | Mapping[str, str] | None) -> np.ndarray:
    if metric_type is None:
        if "metric_type" not in frame.columns:
            raise ExperimentInputError(
                "say which kind of metric each row is: a 'metric_type' column or the "
                "metric_type argument (conversion, mean or ratio)"
            )
        names = frame["metric_type"]
    elif isinstance(metric_type, str):
        names = pd.Series(np.full(len(frame), metric_type, dtype=object))
    else:
        if "metric" not in frame.columns:
            raise ExperimentInputError("a metric_type mapping needs a 'metric' column")
        names = frame["metric"].map(dict(metric_type))
    codes, uniques = pd.factorize(names, use_na_sentinel=False)
    bad = sorted(str(u) for u in uniques if u not in METRIC_TYPES)
    if bad:
        raise ExperimentInputError(
            f"unknown metric type(s) {bad}; each must be one of {list(METRIC_TYPES)}"
        )
    lookup = np.array([METRIC_TYPES.index(u) for u in uniques], dtype=np.int64)
    return lookup[codes] if len(codes) else codes.astype(np.int64)


@dataclass
class _Arms:
    """Per-arm moments as arrays (one element per input row)."""

    kind: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray  # per-user variance of the (linearised) value
    est_var: np.ndarray  # variance of the arm estimate
    has_x: np.ndarray
    mean_x: np.ndarray
    sxx: np.ndarray  # centred sum of squares of x
    sxy: np.ndarray  # centred cross-products of x and y
    var_x: np.ndarray
    cov_xy: np.ndarray
    ddof: np.ndarray
    denominator_zero: np.ndarray


def _arms(frame: pd.DataFrame, kind: np.ndarray) -> _Arms:
    n = _column(frame, "n")
    sy, syy = _column(frame, "sum_y"), _column(frame, "sum_y2")
    if np.any(np.isnan(n)) or np.any(n < 0) or np.any(np.isnan(sy)):
        raise ExperimentInputError("every row needs a count n ≥ 0 and a sum_y")
    conv, ratio = kind == _CONVERSION, kind == _RATIO
    if np.any(np.isnan(syy) & ~conv):
        raise ExperimentInputError("mean and ratio metrics need sum_y2 on every row")
    syy = np.where(conv & np.isnan(syy), sy, syy)  # y² = y for 0/1 values
    ddof = np.where(conv, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sy / n
        var = np.maximum((syy - sy * mean) / (n - ddof), 0.0)
        var = np.where(conv, mean * (1 - mean), var)
        var = np.where(n - ddof > 0, var, np.nan)

        sd, sdd, syd = (_column(frame, c) for c in RATIO_COLUMNS)
        if np.any(ratio & (np.isnan(sd) | np.isnan(sdd) | np.isnan(syd))):
            raise ExperimentInputError("ratio metrics need sum_d, sum_d2 and sum_yd on every row")
        mean_d = sd / n
        r = sy / sd
        s_dd = (sdd - sd * mean_d) / (n - 1)
        s_yd = (syd - sy * mean_d) / (n - 1)
        ratio_var = np.maximum(var - 2 * r * s_yd + r**2 * s_dd, 0.0) / mean_d**2
        mean = np.where(ratio, r, mean)
        var = np.where(ratio, ratio_var, var)
        denominator_zero = ratio & (sd == 0)

        sx, sxx_raw, sxy_raw = (_column(frame, c) for c in COVARIATE_COLUMNS)
        has_x = ~ratio & ~np.isnan(sx) & ~np.isnan(sxx_raw) & ~np.isnan(sxy_raw) & (n > 0)
        mean_x = sx / n
        sxx = np.where(has_x, np.maximum(sxx_raw - sx * mean_x, 0.0), 0.0)
        sxy = np.where(has_x, sxy_raw - sx * mean, 0.0)
        var_x = sxx / (n - ddof)
        cov_xy = sxy / (n - ddof)
        est_var = var / n
    return _Arms(
        kind, n, mean, var, est_var, has_x, mean_x, sxx, sxy, var_x, cov_xy, ddof, denominator_zero
    )


def arm_moments(
    stats: pd.DataFrame, *, metric_type: str | Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per-arm estimate, per-user variance and standard error from sufficient statistics."""
    arms = _arms(stats, _type_codes(stats, metric_type))
    out = stats.drop(
        columns=[c for c in ("sum_y", "sum_y2", *COVARIATE_COLUMNS, *RATIO_COLUMNS) if c in stats]
    ).copy()
    out["mean"] = arms.mean
    out["variance"] = arms.var
    out["std_error"] = np.sqrt(arms.est_var)
    if arms.has_x.any():
        out["mean_x"] = np.where(arms.has_x, arms.mean_x, np.nan)
        out["variance_x"] = np.where(arms.has_x, arms.var_x, np.nan)
        out["covariance_xy"] = np.where(arms.has_x, arms.cov_xy, np.nan)
    return out


# --------------------------------------------------------------------------------------------
# Comparisons against control
# --------------------------------------------------------------------------------------------


def _per_row(value: object, labels: np.ndarray, by: str, name: str) -> np.ndarray:
    """A scalar, or a mapping keyed by `by` labels, broadcast to one value per row."""
    if isinstance(value, Mapping):
        lookup = {key: float(v) for key, v in value.items()}
        return np.array([lookup.get(label, np.nan) for label in labels], dtype=np.float64)
    if isinstance(value, int | float):
        return np.full(len(labels), float(value))
    raise ExperimentInputError(f"{name} must be a number or a mapping by {by}, got {value!r}")


def _contrast(
    m_t: np.ndarray,
    v_t: np.ndarray,
    n_t: np.ndarray,
    m_c: np.ndarray,
    v_c: np.ndarray,
    n_c: np.ndarray,
    welch: np.ndarray,
    alpha: float,
) -> dict[str, np.ndarray]:
    """Absolute and relative effects, CIs and p-values from arm estimates and their variances."""
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = m_t - m_c
        var = v_t + v_c
        se = np.sqrt(var)
        welch_df = var**2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1))
        df = np.where(welch, welch_df, np.inf)
        stat = effect / se
        p = _two_sided_p(stat, df)
        q = _quantile(1 - alpha / 2, df)
        # The relative change is the difference over |control mean|, so that its sign is the
        # sign of the difference: for a negative baseline (net revenue after refunds, say),
        # m_t / m_c - 1 would call a deeper loss a rise. Same delta-method variance either way.
        defined = m_c != 0
        rel = np.where(defined, effect / np.abs(m_c), np.nan)
        rel_se = np.where(defined, np.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4), np.nan)
    return {
        "effect": effect,
        "std_error": se,
        "df": df,
        "statistic": stat,
        "p_value": p,
        "ci_low": effect - q * se,
        "ci_high": effect + q * se,
        "relative_effect": rel,
        "relative_std_error": rel_se,
        "relative_ci_low": rel - q * rel_se,
        "relative_ci_high": rel + q * rel_se,
    }


def _join_notes(*pairs: tuple[np.ndarray, str]) -> np.ndarray:
    size = len(pairs[0][0])
    out = np.full(size, "", dtype=object)
    for mask, text in pairs:
        if not mask.any():
            continue
        out[mask] = np.where(out[mask] == "", text, out[mask] + "; " + text)
    return out


@np.errstate(all="ignore")
def compare_to_control(
    stats: pd.DataFrame,
    *,
    control: str = "control",
    alpha: float = 0.05,
    power: float = 0.8,
    metric_type: str | Mapping[str, str] | None = None,
    cuped: bool = True,
    keys: Sequence[str] = ("metric",),
    proportion_test: Literal["wald", "pooled"] = "wald",
    planned_n: float | Mapping[str, float] | None = None,
    target_effect: float | Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Each variant against control within each `keys` group (metric, or metric × segment …)."""
    _check_alpha(alpha)
    _check_alpha(power, "power")
    if proportion_test not in ("wald", "pooled"):
        raise ExperimentInputError(
            f"proportion_test must be 'wald' or 'pooled', not {proportion_test!r}"
        )
    keys = list(keys)
    missing = [c for c in [*keys, "variant", "n", "sum_y"] if c not in stats.columns]
    if missing:
        raise ExperimentInputError(
            f"sufficient statistics lack column(s) {missing}; found {list(stats.columns)}"
        )
    frame = stats.reset_index(drop=True)
    kind = _type_codes(frame, metric_type)
    arms = _arms(frame, kind)
    variant = frame["variant"].to_numpy(dtype=object)

    group = _codes(frame, keys)
    n_groups = int(group.max()) + 1 if len(group) else 0
    arm_id = _codes(frame, [*keys, "variant"])
    if len(arm_id) and arm_id.max() + 1 < len(arm_id):
        dupes = frame.loc[frame.duplicated([*keys, "variant"], keep=False), [*keys, "variant"]]
        raise ExperimentInputError(
            f"each {' × '.join([*keys, 'variant'])} must appear once; repeated: "
            f"{dupes.head(3).to_dict('records')}"
        )
    is_control = variant == control
    if len(frame) and not is_control.any():
        raise ExperimentInputError(
            f"control variant {control!r} not found; variants are "
            f"{sorted({str(v) for v in variant})}"
        )
    control_row = np.full(n_groups, -1, dtype=np.int64)
    control_row[group[is_control]] = np.flatnonzero(is_control)

    # CUPED: θ = pooled within-arm slope over all arms of the group (= OLS y ~ variant + x).
    use_x = arms.has_x & np.isfinite(arms.mean)
    sum_sxy = np.bincount(group, weights=np.where(use_x, arms.sxy, 0.0), minlength=n_groups)
    sum_sxx = np.bincount(group, weights=np.where(use_x, arms.sxx, 0.0), minlength=n_groups)
    sum_x = np.bincount(
        group, weights=np.where(use_x, arms.mean_x * arms.n, 0.0), minlength=n_groups
    )
    sum_n = np.bincount(group, weights=np.where(use_x, arms.n, 0.0), minlength=n_groups)
    all_x = np.bincount(group, weights=use_x.astype(float), minlength=n_groups)
    arms_in_group = np.bincount(group, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta_g = np.where(sum_sxx > 0, sum_sxy / sum_sxx, np.nan)
        mean_x_g = sum_x / sum_n
    group_cuped = cuped & (all_x == arms_in_group) & np.isfinite(theta_g)
    theta = theta_g[group]
    with np.errstate(invalid="ignore"):
        adj_mean = arms.mean - theta * (arms.mean_x - mean_x_g[group])
        adj_var = np.maximum(arms.var - 2 * theta * arms.cov_xy + theta**2 * arms.var_x, 0.0)
        adj_est_var = adj_var / arms.n

    t = np.flatnonzero(~is_control)
    c = control_row[group[t]]
    has_c = c >= 0
    c_safe = np.where(has_c, c, 0)

    def pick(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return values[t], np.where(has_c, values[c_safe], np.nan)

    k = kind[t]
    n_t, n_c = pick(arms.n)
    m_t, m_c = pick(arms.mean)
    v_t, v_c = pick(arms.est_var)
    welch = k == _MEAN
    raw = _contrast(m_t, v_t, n_t, m_c, v_c, n_c, welch, alpha)
    if proportion_test == "pooled":
        conv = k == _CONVERSION
        with np.errstate(divide="ignore", invalid="ignore"):
            p_pool = (m_t * n_t + m_c * n_c) / (n_t + n_c)
            z = raw["effect"] / np.sqrt(p_pool * (1 - p_pool) * (1 / n_t + 1 / n_c))
        raw["statistic"] = np.where(conv, z, raw["statistic"])
        raw["p_value"] = np.where(conv, _two_sided_p(z), raw["p_value"])

    applied = group_cuped[group[t]] & has_c
    am_t, am_c = pick(adj_mean)
    av_t, av_c = pick(adj_est_var)
    adj = _contrast(am_t, av_t, n_t, am_c, av_c, n_c, welch, alpha)
    main = {key: np.where(applied, adj[key], raw[key]) for key in raw}

    # two users per arm at least, for conversions too: one user's 0/1 has variance 0, and a
    # z-test that takes it as exact called a one-user control arm a sure win
    min_n = 2
    dz_t, dz_c = pick(arms.denominator_zero.astype(float))
    few = has_c & ((n_t < min_n) | (n_c < min_n))
    with np.errstate(invalid="ignore"):
        moments = np.vstack([m_t, m_c, v_t, v_c, main["effect"], main["std_error"]])
    infinite = has_c & ~few & ~np.all(np.isfinite(moments) | np.isnan(moments), axis=0)
    denominator_zero = has_c & ~few & ~infinite & ((dz_t > 0) | (dz_c == 1))
    flat = has_c & ~few & ~infinite & ~denominator_zero & (main["std_error"] == 0)
    valid = has_c & ~few & ~infinite & ~denominator_zero & ~flat
    reason = _join_notes(
        (~has_c, f"no {control!r} arm to compare with"),
        (few, "too few users in an arm"),
        (infinite, "infinite or overflowing values in an arm (check the metric's events)"),
        (denominator_zero, "ratio denominator is zero in an arm"),
        (flat, "no variation in either arm"),
    )
    x_t = arms.has_x[t]
    note = _join_notes(
        (valid & (m_c == 0), "relative effect undefined: control mean is zero"),
        (cuped & (k == _RATIO), "CUPED not available for ratio metrics"),
        (cuped & (k != _RATIO) & x_t & ~applied & valid, "CUPED not applied: covariate unusable"),
    )
    invalid = ~valid
    for table in (main, raw):
        for key, values in table.items():
            table[key] = np.where(invalid, np.nan, values)
    with np.errstate(invalid="ignore"):
        vr = np.where(applied & valid, 1 - main["std_error"] ** 2 / raw["std_error"] ** 2, np.nan)

    mean_c_main = np.where(applied, am_c, m_c)
    columns: dict[str, object] = {key: frame[key].to_numpy()[t] for key in keys}
    columns |= {
        "variant": variant[t],
        "control": np.full(len(t), control, dtype=object),
        "metric_type": np.asarray(METRIC_TYPES, dtype=object)[k],
        "n_control": n_c,
        "n_variant": n_t,
        "mean_control": mean_c_main,
        "mean_variant": np.where(applied, am_t, m_t),
        **main,
        "cuped": applied & valid,
        "theta": np.where(applied, theta[t], np.nan),
        "variance_reduction": vr,
        "mean_control_unadjusted": m_c,
        "mean_variant_unadjusted": m_t,
        **{f"{key}_unadjusted": raw[key] for key in _UNADJUSTED_KEYS},
    }
    columns["mde"] = mde(main["std_error"], alpha=alpha, power=power)
    columns["mde_relative"] = np.where(
        mean_c_main != 0, columns["mde"] / np.abs(mean_c_main), np.nan
    )
    n_pair = n_t + n_c
    if target_effect is not None:
        labels = columns["metric"] if "metric" in columns else columns[keys[0]]
        target = _per_row(target_effect, labels, "metric", "target_effect")
        needed = sample_size_needed(
            main["std_error"], n_pair, target * np.abs(mean_c_main), alpha=alpha, power=power
        )
        needed = np.where(np.isfinite(needed), needed, np.nan)
        columns["target_relative_effect"] = target
        columns["n_needed"] = needed
        columns["n_additional"] = np.where(
            np.isfinite(needed), np.maximum(needed - n_pair, 0), np.nan
        )
    if planned_n is not None:
        planned = _per_row(planned_n, columns["variant"], "variant", "planned_n")
        rho = rho_for_planned_n(planned, alpha=alpha)
        w = sequential_multiplier(n_pair, alpha=alpha, rho=rho)
        columns["planned_n"] = planned
        columns["cs_low"] = main["effect"] - w * main["std_error"]
        columns["cs_high"] = main["effect"] + w * main["std_error"]
        columns["relative_cs_low"] = main["relative_effect"] - w * main["relative_std_error"]
        columns["relative_cs_high"] = main["relative_effect"] + w * main["relative_std_error"]
        columns["sequential_p_value"] = sequential_p_value(
            main["effect"], main["std_error"], n_pair, rho=rho
        )
    columns["valid"] = valid
    columns["reason"] = reason
    columns["note"] = note
    return pd.DataFrame(columns)


_UNADJUSTED_KEYS = (
    "effect",
    "std_error",
    "ci_low",
    "ci_high",
    "relative_effect",
    "relative_ci_low",
    "relative_ci_high",
    "p_value",
)


# --------------------------------------------------------------------------------------------
# Decision layer: correction family, guardrails, chance to beat control
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricPlan:
    """How a metric is judged: its role, desired direction and (guardrails) margin."""

    role: Role = "primary"
    direction: Direction = "increase"
    margin: float | None = None
    margin_type: Literal["relative", "absolute"] = "relative"

    def __post_init__(self) -> None:
        """Check the plan is usable."""
        if self.role not in ("primary", "secondary", "guardrail"):
            raise ExperimentInputError(f"unknown metric role {self.role!r}")
        if self.direction not in ("increase", "decrease"):
            raise ExperimentInputError(
                f"direction must be 'increase' or 'decrease', not {self.direction!r}"
            )
        if self.margin_type not in ("relative", "absolute"):
            raise ExperimentInputError("margin_type must be 'relative' or 'absolute'")
        if self.role == "guardrail" and (self.margin is None or not self.margin >= 0):
            raise ExperimentInputError("a guardrail needs a non-inferiority margin ≥ 0")


@np.errstate(all="ignore")
def assess(
    results: pd.DataFrame,
    plans: Mapping[str, MetricPlan],
    *,
    correction: Literal["bh", "holm", "none"] = "bh",
    alpha: float = 0.05,
    chance_to_beat: bool = False,
    scale: Literal["relative", "absolute"] = "relative",
    prior_sd: float | None = None,
    power: float = 0.8,
) -> pd.DataFrame:
    """Add adjusted p-values, guardrail non-inferiority and an outcome to comparison rows.

    A guardrail's power answers its own question: its MDE is the smallest margin the one-sided
    non-inferiority test at `alpha` would confirm with `power` if the true effect were zero,
    (z₁₋α + z_power)·SE, and the users needed are those that bring it down to the guardrail's
    margin (`target_relative_effect` becomes the margin, relative to |control mean|).
    """
    _check_alpha(alpha)
    _check_alpha(power, "power")
    if scale not in ("relative", "absolute"):
        raise ExperimentInputError(f"scale must be 'relative' or 'absolute', not {scale!r}")
    codes, names = pd.factorize(results["metric"])
    names = np.asarray(names, dtype=object)
    unplanned = sorted(str(m) for m in names if m not in plans)
    if unplanned:
        raise ExperimentInputError(f"no plan (role, direction) for metric(s) {unplanned}")
    chosen = [plans[m] for m in names]

    def lookup(values: list, dtype: object) -> np.ndarray:
        return np.asarray(values, dtype=dtype)[codes]

    role = lookup([p.role for p in chosen], object)
    direction = lookup([p.direction for p in chosen], object)
    margin = lookup([np.nan if p.margin is None else p.margin for p in chosen], np.float64)
    relative = lookup([p.margin_type == "relative" for p in chosen], bool)

    def column(name: str) -> np.ndarray:
        return results[name].to_numpy(dtype=np.float64, na_value=np.nan)

    valid = results["valid"].to_numpy(dtype=bool)
    family = (role != "guardrail") & valid
    guard = (role == "guardrail") & valid
    p_adj = np.full(len(results), np.nan)
    p_adj[family] = adjust_pvalues(column("p_value")[family], correction)
    effect = column("effect")
    sign = np.where(direction == "decrease", -1.0, 1.0)
    significant = family & (p_adj < alpha)
    est = np.where(relative, column("relative_effect"), effect)
    se = np.where(relative, column("relative_std_error"), column("std_error"))
    ni = non_inferiority(
        np.where(guard, est, np.nan),
        np.where(guard, se, np.nan),
        np.where(guard, margin, 0.0),
        direction=direction,
        alpha=alpha,
        df=column("df"),
    )
    is_guardrail = role == "guardrail"
    added: dict[str, np.ndarray] = {
        "role": role,
        "direction": direction,
        "p_value_adjusted": p_adj,
        "significant": significant,
        "margin": np.where(is_guardrail, margin, np.nan),
        "margin_type": np.where(
            is_guardrail, np.where(relative, "relative", "absolute").astype(object), None
        ),
        "ni_statistic": ni.statistic,
        "ni_p_value": ni.p_value,
        "ni_bound": ni.bound,
        "non_inferior": guard & ni.passed,
    }
    if chance_to_beat:
        rel = scale == "relative"
        added["chance_to_beat_control"] = chance_to_beat_control(
            column("relative_effect" if rel else "effect"),
            column("relative_std_error" if rel else "std_error"),
            direction=direction,
            prior_sd=prior_sd,
        )
    outcome = np.full(len(results), "invalid", dtype=object)
    outcome[family] = "inconclusive"
    outcome[significant & (sign * effect > 0)] = "better"
    outcome[significant & (sign * effect < 0)] = "worse"
    outcome[guard] = np.where(ni.passed[guard], "pass", "fail")
    added["outcome"] = outcome
    if "mde" in results.columns:
        added |= _guardrail_power(results, is_guardrail, margin, relative, alpha, power)
    kept = results.drop(columns=[c for c in added if c in results.columns])
    return pd.concat([kept, pd.DataFrame(added, index=results.index)], axis=1)


def _guardrail_power(
    results: pd.DataFrame,
    guardrail: np.ndarray,
    margin: np.ndarray,
    relative: np.ndarray,
    alpha: float,
    power: float,
) -> dict[str, np.ndarray]:
    """MDE and users needed of guardrail rows against their own one-sided test and margin."""

    def column(name: str) -> np.ndarray:
        if name not in results.columns:
            return np.full(len(results), np.nan)
        return results[name].to_numpy(dtype=np.float64, na_value=np.nan)

    z = special.ndtri(1 - alpha) + special.ndtri(power)
    se, base = column("std_error"), np.abs(column("mean_control"))
    n_pair = column("n_control") + column("n_variant")
    with np.errstate(divide="ignore", invalid="ignore"):
        margin_abs = np.where(relative, margin * base, margin)
        mde_abs = z * se
        mde_rel = np.where(base > 0, mde_abs / base, np.nan)
        target = np.where(relative, margin, margin / base)
        needed = np.ceil(n_pair * (se * z / margin_abs) ** 2)
    needed = np.where(np.isfinite(needed), needed, np.nan)
    out = {
        "mde": np.where(guardrail, mde_abs, column("mde")),
        "mde_relative": np.where(guardrail, mde_rel, column("mde_relative")),
    }
    if "n_needed" in results.columns:
        additional = np.where(np.isfinite(needed), np.maximum(needed - n_pair, 0), np.nan)
        out |= {
            "target_relative_effect": np.where(guardrail, target, column("target_relative_effect")),
            "n_needed": np.where(guardrail, needed, column("n_needed")),
            "n_additional": np.where(guardrail, additional, column("n_additional")),
        }
    return out
