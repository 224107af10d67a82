# SPDX-License-Identifier: GPL-3.0-or-later
import math

import numpy as np
import pytest

from infercom import power


@pytest.mark.parametrize("snr_db", [-16, -8, -4, 0, 4, 10, 15])
@pytest.mark.parametrize("planes", [8, 5, 1])
def test_importance_kkt_and_mean_power(snr_db, planes):
    p = power.plane_powers("importance", snr_db, planes)
    assert p.shape == (planes,) and p.dtype == np.float64
    assert abs(p.mean() - 1.0) < 1e-12
    assert np.all(p > 0)                       # f'(0) = -inf: the optimum is interior
    assert np.all(np.diff(p) <= 0)             # more important planes never get less power
    spread, mean_err = power.kkt_residual(p, snr_db)
    assert spread < 1e-9 and mean_err < 1e-12


@pytest.mark.parametrize("snr_db", [-8, -4, 0, 4])
def test_importance_is_a_minimum(snr_db):
    """No feasible perturbation (mean kept at 1, powers >= 0) lowers the expected MSE."""
    p = power.plane_powers("importance", snr_db)
    d0 = power.expected_mse(p, snr_db)
    rng = np.random.default_rng(1)
    for _ in range(200):
        e = rng.standard_normal(8) * 1e-2 * p.max()
        e -= e.mean()
        q = p + e
        if np.any(q < 0):
            continue
        assert power.expected_mse(q, snr_db) >= d0 * (1 - 1e-12)
    # moving power from the MSB to the LSB plane by a finite amount is worse too
    q = p.copy()
    q[0] -= 0.3
    q[-1] += 0.3
    assert power.expected_mse(q, snr_db) > d0


@pytest.mark.parametrize("snr_db,gain_db", [(0, 6.2), (-4, 3.85)])
def test_expected_gain_over_equal(snr_db, gain_db):
    d_eq = power.expected_mse(power.plane_powers("equal", snr_db), snr_db)
    d_imp = power.expected_mse(power.plane_powers("importance", snr_db), snr_db)
    assert abs(10 * math.log10(d_eq / d_imp) - gain_db) < 0.1


def test_equal_profile_and_expected_mse_formula():
    p = power.plane_powers("equal", 3, 6)
    assert np.array_equal(p, np.ones(6))
    q = power.qfunc(math.sqrt(10 ** 0.3))
    want = q * sum(4.0**k for k in range(2, 8)) + (4.0**2 - 1) / 12
    assert power.expected_mse(p, 3) == pytest.approx(want, rel=1e-12)
    assert power.qfunc(0.0) == pytest.approx(0.5)


def test_bad_profile_arguments():
    with pytest.raises(ValueError, match="profile"):
        power.plane_powers("greedy", 0)
    with pytest.raises(ValueError, match="planes"):
        power.plane_powers("equal", 0, 9)
    with pytest.raises(ValueError, match="finite"):
        power.plane_powers("importance", float("nan"))
    p = power.plane_powers("importance", 0)
    with pytest.raises(ValueError):
        p[0] = 1.0                                 # cached profiles are read-only


def test_limits_come_from_the_table():
    from infercom import limits

    assert power.PROFILES is limits.PROFILES
    assert (power.DESIGN_SNR_MIN_DB, power.DESIGN_SNR_MAX_DB) == limits.FIELD_RANGES["design_snr_db"]
    lo, hi = limits.FIELD_RANGES["planes"]
    for m in (lo, hi):
        assert power.plane_powers("importance", -4, m).shape == (m,)
    for m in (lo - 1, hi + 1, True):
        with pytest.raises(ValueError, match="planes"):
            power.plane_powers("importance", -4, m)
    for p in limits.PROFILES:
        assert power.check_profile(p) == p
    with pytest.raises(ValueError, match="profile"):
        power.check_profile("loud")
