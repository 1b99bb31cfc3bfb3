"""E-model against published values and closed forms; trends and worst segments on rows."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.voice_quality import (
    CODECS,
    basic_terms,
    delay_impairment,
    ie_eff,
    mos_from_r,
    quality_samples,
    quality_trend,
    r_factor,
    r_simplified,
    worst_segments,
)
from tests.rollup_tables import build_rollups

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 5, 1)


def test_g107_defaults_give_published_r_93_2_and_mos_4_41():
    ro, is_ = basic_terms()
    assert ro == pytest.approx(94.77, abs=0.01)
    assert is_ == pytest.approx(1.41, abs=0.01)
    assert float(delay_impairment(0.0)) == pytest.approx(0.15, abs=0.01)
    r = float(r_factor(0.0, 0.0, 0.0, "G.711"))
    assert r == pytest.approx(93.2, abs=0.01)
    assert float(mos_from_r(r)) == pytest.approx(4.41, abs=0.005)


def test_echo_delay_moves_sidetone_masking_with_the_talker_echo_delay():
    # STMRo = −10·lg(10^(−STMR/10) + e^(−T/4)·10^(−TELR/10)) (G.107 eq. 7-16): with a poor
    # echo loss (TELR 15 dB) the echo masks the sidetone at T = 0 and stops doing so as T grows.
    from analysis.voice_quality import G107

    p = G107(telr=15.0)
    stmro0 = -10 * math.log10(10 ** (-p.stmr / 10) + 10 ** (-p.telr / 10))
    assert stmro0 < p.stmr - 1  # a real difference at T = 0
    _, is_by_t = basic_terms(p, np.array([0.0, 200.0]))
    assert is_by_t[0] != is_by_t[1]  # tiny (Ist is flat near STMR 15 dB) but per the standard
    assert basic_terms(p, 200.0)[1] == pytest.approx(is_by_t[1])
    # r_factor with echo_delay uses Is at T = Ta for each sample
    ta = np.array([50.0, 200.0])
    ro, is_ = basic_terms(p, ta)
    expected = ro - is_ - delay_impairment(ta, ta, 2 * ta, p) - ie_eff(0.0, CODECS["G.711"]) + p.a
    got = r_factor(ta, 0.0, 0.0, "G.711", echo_delay=True, params=p)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    "r, mos",
    # G.107 Annex B curve at round R values (the table most VoIP texts reprint)
    [(0, 1.0), (50, 2.575), (60, 3.1), (70, 3.597), (80, 4.024), (90, 4.339), (100, 4.5)],
)
def test_r_to_mos_at_known_points(r, mos):
    assert float(mos_from_r(r)) == pytest.approx(mos, abs=1e-3)


def test_mos_is_clamped_for_out_of_range_r():
    assert mos_from_r([-20, 3, 120]).tolist() == [1.0, 1.0, 4.5]


def test_ie_eff_closed_form():
    g711 = CODECS["G.711"]
    assert float(ie_eff(0, g711)) == 0
    assert float(ie_eff(2, g711)) == pytest.approx(95 * 2 / (2 + 25.1))  # 7.011
    assert float(ie_eff(1, CODECS["G.711-noplc"])) == pytest.approx(95 / 5.3)  # 17.92
    assert float(ie_eff(2, g711, burst_r=2)) == pytest.approx(95 * 2 / (1 + 25.1))
    g729 = CODECS["G.729A"]
    assert float(ie_eff(3, g729)) == pytest.approx(11 + 84 * 3 / 22)


def test_absolute_delay_term_matches_closed_form_at_200_ms():
    x = 1.0  # log2(200 / 100)
    idd = 25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    got = float(delay_impairment(200.0)) - float(delay_impairment(0.0))
    assert got == pytest.approx(idd, abs=1e-9)
    assert idd == pytest.approx(3.044, abs=1e-3)


def test_simplified_form_by_hand():
    assert float(r_simplified(100, 5, 1)) == pytest.approx(93.2 - 120 / 40 - 2.5)
    assert float(r_simplified(300, 0, 0)) == pytest.approx(93.2 - (310 - 120) / 10)


def test_quality_worsens_with_delay_and_loss():
    r = r_factor([50, 150, 300, 300], [0, 0, 0, 20], [0, 0, 0, 5], "opus")
    assert np.all(np.diff(r) < 0)
    assert math.isclose(float(r[0]), 93.2 - 6, abs_tol=0.05)  # opus assumption Ie = 6


@pytest.fixture()
def db():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    rng = np.random.default_rng(8)
    n = 2000
    network = rng.choice(["wifi", "cellular", "wired"], n, p=[0.5, 0.3, 0.2])
    loss = np.where(network == "cellular", rng.gamma(2, 1.5, n), rng.gamma(1, 0.2, n))
    df = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "call_id": [f"c{i // 4}" for i in range(n)],
            "measured_at": [T0 + timedelta(minutes=3 * i) for i in range(n)],
            "latency_ms": rng.gamma(4, 20, n),
            "jitter_ms": rng.gamma(2, 4, n),
            "packet_loss_pct": loss,
            "mos_reported": rng.uniform(3, 4.5, n),
            "codec": rng.choice(["opus", "PCMU"], n),
            "region": rng.choice(["eu", "us"], n),
            "network": network,
            "release": "v1",
        }
    )
    c.register("q", df)
    c.execute("INSERT INTO voice_quality BY NAME SELECT * FROM q")
    build_rollups(c, "voice_quality")
    yield c, df
    c.close()


def test_samples_use_each_rows_codec_profile(db):
    con, rows = db
    s = quality_samples(con, T0, T0 + timedelta(days=10)).frame.set_index("sample_id")
    df = rows.set_index("sample_id").loc[s.index]
    pcmu = df.codec == "PCMU"
    expected = np.where(
        pcmu,
        r_factor(df.latency_ms, df.jitter_ms, df.packet_loss_pct, CODECS["G.711"]),
        r_factor(df.latency_ms, df.jitter_ms, df.packet_loss_pct, CODECS["opus"]),
    )
    assert np.allclose(s["r"], expected)
    assert set(s.loc[pcmu[pcmu].index, "codec_profile"]) == {"G.711"}


def test_daily_trend_matches_pandas_groupby(db):
    con, rows = db
    res = quality_trend(con, T0, T0 + timedelta(days=10), grain="day").frame
    s = quality_samples(con, T0, T0 + timedelta(days=10)).frame
    expected = s.groupby(s.measured_at.dt.floor("D"))["mos_estimated"].mean()
    assert np.allclose(res.set_index("period")["mos_estimated"], expected)
    assert res["samples"].sum() == len(rows)


def test_worst_segment_is_the_lossy_network_with_counts(db):
    con, rows = db
    res = worst_segments(con, T0, T0 + timedelta(days=10)).frame
    top = res.iloc[0]
    assert (top["dimension"], top["value"]) == ("network", "cellular")
    assert top["samples"] == (rows.network == "cellular").sum()
    assert worst_segments(con, T0, T0 + timedelta(days=10), dimensions=("ip",)).reason


def test_empty_window(db):
    con, rows = db
    assert quality_trend(con, T0 - timedelta(days=5), T0).reason
    assert worst_segments(con, T0 - timedelta(days=5), T0).reason


@pytest.fixture()
def awkward():
    """Calls whose samples cross hours and midnight, missing and NaN figures, samples with no
    call, codecs known, unknown and missing; rollups built per day as the publisher does."""
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    rng = np.random.default_rng(21)
    n = 3000
    at = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 3 * 86400, n)), unit="s")
    df = pd.DataFrame(
        {
            "sample_id": [f"s{i:05d}" for i in range(n)],
            # about 5 consecutive samples a call (minutes apart, so calls cross hours)
            "call_id": [f"c{i // 5}" if i % 97 else None for i in range(n)],
            "measured_at": at,
            "latency_ms": rng.gamma(3, 40, n),
            "jitter_ms": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2, 5, n)),
            "packet_loss_pct": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(1, 1.5, n)),
            "mos_reported": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(2, 4.5, n)),
            "codec": rng.choice(["opus", "PCMU", "G729", "speex", None], n),
            "region": rng.choice(["eu", "us", None], n),
            "network": rng.choice(["wifi", "cellular", None], n),
            "release": rng.choice(["v1", "v2"], n),
        }
    )
    c.register("q", df)
    c.execute("INSERT INTO voice_quality BY NAME SELECT * FROM q")
    # real NaNs (pandas' NaN arrives as NULL), and samples without a latency (left out)
    c.execute("UPDATE voice_quality SET jitter_ms = 'NaN' WHERE sample_id LIKE '%3'")
    c.execute("UPDATE voice_quality SET packet_loss_pct = 'NaN' WHERE sample_id LIKE '%7'")
    c.execute("UPDATE voice_quality SET latency_ms = NULL WHERE sample_id LIKE '%11'")
    c.execute("UPDATE voice_quality SET latency_ms = 'NaN' WHERE sample_id LIKE '%22'")
    build_rollups(c, "voice_quality")
    yield c
    c.close()


def _samples(con, start: datetime, end: datetime, default_codec: str = "opus") -> pd.DataFrame:
    """quality_samples in [start, end), each marked `first` when it is its call's first sample
    of the UTC day (over the whole day, also before `start`)."""
    s = quality_samples(con, T0, T0 + timedelta(days=3), default_codec).frame
    s = s.sort_values(["measured_at", "sample_id"])
    day = s["measured_at"].dt.floor("D")
    first = s["call_id"].notna() & ~pd.DataFrame({"c": s["call_id"], "d": day}).duplicated()
    s = s.assign(first=first)
    return s[(s["measured_at"] >= start) & (s["measured_at"] < end)]


def _raw_summary(samples: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The page's figures straight from the samples (numpy E-model, pandas means)."""
    s = samples.assign(poor=(samples["mos_estimated"] < 3.5).astype(float))
    return s.groupby(keys).agg(
        samples=("sample_id", "size"),
        calls=("first", "sum"),
        latency_ms=("latency_ms", "mean"),
        jitter_ms=("jitter_ms", "mean"),
        packet_loss_pct=("packet_loss_pct", "mean"),
        r=("r", "mean"),
        mos_estimated=("mos_estimated", "mean"),
        mos_reported=("mos_reported", "mean"),
        poor_share=("poor", "mean"),
    )


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index) == list(expected.index)
    for column in ("samples", "calls"):  # counts: exactly
        assert got[column].tolist() == expected[column].astype(int).tolist(), column
    for column in expected.columns:
        assert np.allclose(got[column], expected[column], rtol=1e-9, equal_nan=True), column


@pytest.mark.parametrize("grain", ["hour", "day"])
@pytest.mark.parametrize("default_codec", ["opus", "G.729A"])
def test_trend_from_the_rollup_equals_the_raw_samples(awkward, grain, default_codec):
    start, end = T0 + timedelta(hours=5), T0 + timedelta(days=2, hours=19)
    got = quality_trend(awkward, start, end, grain, default_codec).frame.set_index("period")
    samples = _samples(awkward, start, end, default_codec)
    assert samples["jitter_ms"].isna().any() and samples["codec"].isna().any()
    period = samples["measured_at"].dt.floor("h" if grain == "hour" else "D")
    expected = _raw_summary(samples.assign(period=period), ["period"])
    _assert_same(got, expected)
    assert got["samples"].sum() == len(samples)


def test_worst_segments_from_the_rollup_equal_the_raw_samples(awkward):
    start, end = T0 + timedelta(hours=5), T0 + timedelta(days=2, hours=19)
    dims = ("release", "network", "region", "codec_profile")
    got = worst_segments(awkward, start, end, dims, min_samples=1, top=100).frame
    samples = _samples(awkward, start, end)
    for dim in dims:
        mine = got[got["dimension"] == dim].set_index("value").sort_index()
        expected = _raw_summary(samples, [dim])
        expected.index.name = "value"
        _assert_same(mine.drop(columns="dimension"), expected)
    # the lowest estimated MOS first
    assert got["mos_estimated"].is_monotonic_increasing
