"""Voice quality: ITU-T G.107 E-model R and MOS beside the reported MOS, trends, worst segments.

Equations: ITU-T G.107 (2015) sections 7.1-7.7 and Annex B, as collected in
reference/voice_observability.md section 6:
  R = Ro - Is - Id - Ie,eff + A
  Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)            (G.107 eq. 7-29)
  MOS = 1 + 0.035 R + R (R - 60)(100 - R) 7e-6 for 0 < R < 100     (Annex B), clamped to [1, 4.5]
Ro, Is, Idte, Idle and Idd use the full G.107 formulas with the Table 1 defaults; with every
parameter at its default R = 93.2 (MOS 4.41).

Which delay goes where (our choice, stated): the one-way mouth-to-ear delay is
Ta = latency_ms + 2 * jitter_ms (a de-jitter buffer sized at twice the jitter, as in the
PingPlotter/LiveKit simplified form, reference section 6.2). WebRTC endpoints cancel echo,
so by default the echo paths are left at their G.107 defaults (T = Tr = 0) and delay enters
through the absolute-delay term Idd only; `echo_delay=True` sets T = Ta and Tr = 2 Ta with
TELR 65 dB instead. The simplified PingPlotter form is computed beside it as a cross-check.

Codec profiles (equipment impairment Ie and packet-loss robustness Bpl): G.711 from G.113
Appendix I as quoted in the reference; G.729A+VAD from G.113 Appendix I (Ie 11, Bpl 19; not in
the project reference); Opus has no G.113 entry, so its Ie 6 / Bpl 20 is an assumption (the
same one the demo source makes), labelled as such in every result.

The page's trend and worst segments read the hourly rollup quality_segments_hourly
(collectors/rollups.py), which sums each hour's samples per segment with R and MOS computed at
publish time by the SQL form of the same equations (idd_sql, r_sql, mos_sql); quality_samples
reads raw samples, for drill-downs and checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class CodecProfile:
    name: str
    ie: float
    bpl: float
    source: str


CODECS: dict[str, CodecProfile] = {
    "G.711": CodecProfile("G.711", 0.0, 25.1, "G.113 App. I, G.711 with Appendix I PLC"),
    "G.711-noplc": CodecProfile("G.711-noplc", 0.0, 4.3, "G.113 App. I, G.711 without PLC"),
    "G.729A": CodecProfile("G.729A", 11.0, 19.0, "G.113 App. I, G.729A + VAD"),
    "opus": CodecProfile("opus", 6.0, 20.0, "assumption: G.113 has no Opus entry"),
}
_ALIASES = {
    "g711": "G.711",
    "g.711": "G.711",
    "pcmu": "G.711",
    "pcma": "G.711",
    "g711-noplc": "G.711-noplc",
    "g729": "G.729A",
    "g.729": "G.729A",
    "g729a": "G.729A",
    "g.729a": "G.729A",
    "opus": "opus",
}


def codec_profile(name: str | None, default: str = "opus") -> CodecProfile:
    """The profile for a codec name as reported (case and punctuation tolerant)."""
    key = _ALIASES.get(str(name or "").strip().lower())
    return CODECS[key] if key else CODECS[default]


@dataclass(frozen=True)
class G107:
    """ITU-T G.107 Table 1 default values."""

    slr: float = 8.0
    rlr: float = 2.0
    stmr: float = 15.0
    lstr: float = 18.0
    ds: float = 3.0
    dr: float = 3.0
    telr: float = 65.0
    wepl: float = 110.0
    qdu: float = 1.0
    nc: float = -70.0
    nfor: float = -64.0
    ps: float = 35.0
    pr: float = 35.0
    a: float = 0.0
    mt: float = 100.0
    st: float = 1.0


def _lg(x: Any) -> Any:
    return np.log10(x)


def noise_sum(p: G107 = G107()) -> float:
    """No, the power addition of circuit, room and noise-floor noise (G.107 eq. 7-3 to 7-6)."""
    olr = p.slr + p.rlr
    nos = p.ps - p.slr - p.ds - 100 + 0.004 * (p.ps - olr - p.ds - 14) ** 2
    pre = p.pr + 10 * _lg(1 + 10 ** ((10 - p.lstr) / 10))
    nor = p.rlr - 121 + pre + 0.008 * (pre - 35) ** 2
    nfo = p.nfor + p.rlr
    return float(
        10 * _lg(10 ** (p.nc / 10) + 10 ** (nos / 10) + 10 ** (nor / 10) + 10 ** (nfo / 10))
    )


def basic_terms(p: G107 = G107(), t_ms: ArrayLike = 0.0) -> tuple[float, np.ndarray | float]:
    """(Ro, Is): basic signal-to-noise ratio and simultaneous impairments (G.107 7.2, 7.3).
    Is depends on the talker-echo delay T through STMRo; `t_ms` may be an array."""
    olr = p.slr + p.rlr
    no = noise_sum(p)
    ro = 15 - 1.5 * (p.slr + no)
    xolr = olr + 0.2 * (64 + no - p.rlr)
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)
    t = np.asarray(t_ms, dtype=float)
    stmro = -10 * _lg(10 ** (-p.stmr / 10) + np.exp(-t / 4) * 10 ** (-p.telr / 10))
    ist = (
        12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8)
        - 28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35)
        - 13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13)
        + 29
    )
    q = 37 - 15 * _lg(p.qdu)
    g = 1.07 + 0.258 * q + 0.0602 * q**2
    y = (ro - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    iq = 15 * _lg(1 + 10**y + 10**z)
    is_ = iolr + ist + iq
    return float(ro), (float(is_) if np.ndim(is_) == 0 else is_)


def delay_impairment(
    ta_ms: ArrayLike, t_ms: ArrayLike = 0.0, tr_ms: ArrayLike = 0.0, p: G107 = G107()
) -> np.ndarray:
    """Id = Idte + Idle + Idd (G.107 7.4), vectorised over delays in ms."""
    ta = np.asarray(ta_ms, dtype=float)
    t = np.broadcast_to(np.asarray(t_ms, dtype=float), ta.shape)
    tr = np.broadcast_to(np.asarray(tr_ms, dtype=float), ta.shape)
    ro, _ = basic_terms(p)
    no = noise_sum(p)
    # talker echo
    terv = p.telr - 40 * _lg((1 + t / 10) / (1 + t / 150)) + 6 * np.exp(-0.3 * t**2)
    roe = -1.5 * (no - p.rlr)
    re = 80 + 2.5 * (terv - 14)
    idte = ((roe - re) / 2 + np.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - np.exp(-t))
    # listener echo
    rle = 10.5 * (p.wepl + 7) * (tr + 1) ** -0.25
    idle = (ro - rle) / 2 + np.sqrt((ro - rle) ** 2 / 4 + 169)
    # absolute delay
    x = np.log10(np.maximum(ta, p.mt) / p.mt) / np.log10(2)
    k = 6 * p.st
    idd = 25 * ((1 + x**k) ** (1 / k) - 3 * (1 + (x / 3) ** k) ** (1 / k) + 2)
    idd = np.where(ta > p.mt, idd, 0.0)
    return np.asarray(idte + idle + idd, dtype=float)


def ie_eff(loss_pct: ArrayLike, codec: CodecProfile, burst_r: float = 1.0) -> np.ndarray:
    """Effective equipment impairment with packet loss (G.107 eq. 7-29)."""
    ppl = np.clip(np.asarray(loss_pct, dtype=float), 0.0, 100.0)
    return np.asarray(codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_r + codec.bpl))


def mos_from_r(r_values: ArrayLike) -> np.ndarray:
    """G.107 Annex B: R to MOS (conversational quality estimate), clamped to [1, 4.5]."""
    r = np.asarray(r_values, dtype=float)
    mos = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
    mos = np.where(r <= 0, 1.0, np.where(r >= 100, 4.5, mos))
    return np.clip(mos, 1.0, 4.5)


def r_factor(
    latency_ms: ArrayLike,
    jitter_ms: ArrayLike = 0.0,
    loss_pct: ArrayLike = 0.0,
    codec: CodecProfile | str = "G.711",
    burst_r: float = 1.0,
    echo_delay: bool = False,
    params: G107 = G107(),
) -> np.ndarray:
    """E-model R for measured one-way latency, jitter and loss (delay mapping in the docstring)."""
    prof = codec if isinstance(codec, CodecProfile) else codec_profile(codec)
    ta = np.asarray(latency_ms, dtype=float) + 2.0 * np.nan_to_num(
        np.asarray(jitter_ms, dtype=float)
    )
    t = ta if echo_delay else 0.0
    tr = 2 * ta if echo_delay else 0.0
    ro, is_ = basic_terms(params, t)
    loss = np.nan_to_num(np.asarray(loss_pct, dtype=float))
    idd = delay_impairment(ta, t, tr, params)
    return np.asarray(ro - is_ - idd - ie_eff(loss, prof, burst_r) + params.a, dtype=float)


def r_simplified(
    latency_ms: ArrayLike, jitter_ms: ArrayLike = 0.0, loss_pct: ArrayLike = 0.0
) -> np.ndarray:
    """PingPlotter's simplified form (reference section 6.2); no codec dependence."""
    el = np.asarray(latency_ms, dtype=float) + 2 * np.asarray(jitter_ms, dtype=float) + 10
    r = np.where(el < 160, 93.2 - el / 40, 93.2 - (el - 120) / 10)
    return np.asarray(r - 2.5 * np.asarray(loss_pct, dtype=float))


# The E-model in SQL, for the hourly quality rollup (collectors/rollups.py): the same formulas
# as r_factor with the G.107 defaults and echo_delay=False, where Ro, Is and the listener-echo
# term are constants and only Idd (of Ta) and Ie,eff (of loss and codec) vary per sample.
# Column names of the rollup's per-profile sums, by codec profile:
PROFILE_KEYS = {"G.711": "g711", "G.711-noplc": "g711_noplc", "G.729A": "g729a", "opus": "opus"}


def _r_constant(p: G107 = G107()) -> float:
    """Ro - Is - Id(0) + A with T = Tr = 0: R for a zero delay and a codec with Ie,eff 0."""
    ro, is_ = basic_terms(p)
    return float(ro - is_ - float(delay_impairment(0.0, p=p)) + p.a)


def idd_sql(ta: str, p: G107 = G107()) -> str:
    """The absolute-delay impairment Idd (G.107 7.4) as a DuckDB expression of `ta` (the
    one-way delay Ta in ms; our own SQL, never input)."""
    k = 6 * p.st
    x = f"log2(({ta}) / {p.mt!r})"
    return (
        f"CASE WHEN ({ta}) > {p.mt!r} THEN 25 * (pow(1 + pow({x}, {k!r}), {1 / k!r}) "
        f"- 3 * pow(1 + pow({x} / 3, {k!r}), {1 / k!r}) + 2) ELSE 0 END"
    )


def r_sql(idd: str, loss: str, codec: CodecProfile, p: G107 = G107()) -> str:
    """r_factor (echo_delay=False, burst_r 1) as a DuckDB expression of `idd` (idd_sql of
    Ta = latency + 2 x jitter) and `loss` (packet loss %, clipped to 0-100):
    R = (Ro - Is - Id(0) + A) - Idd - Ie,eff (G.107 eq. 7-28, 7-29). Our own SQL, never input."""
    ie = f"({codec.ie!r} + {95.0 - codec.ie!r} * ({loss}) / (({loss}) + {codec.bpl!r}))"
    return f"({_r_constant(p)!r} - ({idd}) - {ie})"


def mos_sql(r: str) -> str:
    """mos_from_r in SQL (G.107 Annex B, clamped to [1, 4.5]); `r` is our own SQL."""
    curve = f"1 + 0.035 * ({r}) + ({r}) * (({r}) - 60) * (100 - ({r})) * 7e-6"
    return (
        f"CASE WHEN ({r}) <= 0 THEN 1.0 WHEN ({r}) >= 100 THEN 4.5 "
        f"ELSE least(greatest({curve}, 1.0), 4.5) END"
    )


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    reason: str | None = None


_SAMPLES_SQL = """
SELECT sample_id, call_id, measured_at, latency_ms, jitter_ms, packet_loss_pct, mos_reported,
       codec, coalesce(region, '(unknown)') AS region, coalesce(network, '(unknown)') AS network,
       coalesce(release, '(unknown)') AS release
FROM voice_quality
WHERE measured_at >= ? AND measured_at < ? AND latency_ms IS NOT NULL AND NOT isnan(latency_ms)
"""

POOR_MOS = 3.5  # Twilio Voice Insights' low-MOS warning (reference section 5)


def quality_samples(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    default_codec: str = "opus",
    echo_delay: bool = False,
) -> Table:
    """Every sample with its E-model R and MOS (full and simplified) beside the reported MOS."""
    df = con.execute(_SAMPLES_SQL, [start, end]).df()
    if df.empty:
        return Table(df, "no voice quality samples in this window")
    df = df.drop_duplicates("sample_id")
    codec = df["codec"].astype(object).where(df["codec"].notna(), "")
    profiles = {c: codec_profile(c, default_codec) for c in codec.unique()}
    df["codec_profile"] = codec.map({c: p.name for c, p in profiles.items()})
    df["codec_source"] = codec.map({c: p.source for c, p in profiles.items()})
    r = np.empty(len(df))
    for name, idx in df.groupby("codec_profile").indices.items():
        sub = df.iloc[idx]
        r[idx] = r_factor(
            sub["latency_ms"],
            sub["jitter_ms"],
            sub["packet_loss_pct"],
            CODECS[str(name)],
            echo_delay=echo_delay,
        )
    df["r"] = r
    df["mos_estimated"] = mos_from_r(r)
    df["mos_simplified"] = mos_from_r(
        r_simplified(df["latency_ms"], df["jitter_ms"].fillna(0), df["packet_loss_pct"].fillna(0))
    )
    return Table(df)


# What the quality rollup (collectors/rollups.py, quality_segments_hourly) sums per hour and
# segment; R, MOS and poor samples once per codec profile.
_SUMS = (
    "n",
    "n_calls",
    "sum_latency_ms",
    "sum_jitter_ms",
    "n_jitter_ms",
    "sum_packet_loss_pct",
    "n_packet_loss_pct",
    "sum_mos_reported",
    "n_mos_reported",
    *(f"{s}_{k}" for k in PROFILE_KEYS.values() for s in ("sum_r", "sum_mos", "n_poor")),
)
SUMMARY_COLUMNS = [
    "samples",
    "calls",
    "latency_ms",
    "jitter_ms",
    "packet_loss_pct",
    "r",
    "mos_estimated",
    "mos_reported",
    "poor_share",
]


def _rollup_sums(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, keys: str
) -> pd.DataFrame:
    """The rollup's sums over the hours in [start, end) per `keys` (our own SQL) and codec."""
    sums = ", ".join(f"CAST(sum({c}) AS DOUBLE) AS {c}" for c in _SUMS)
    return con.execute(
        f"SELECT {keys}, codec, {sums} FROM quality_segments_hourly "  # noqa: S608 - fixed SQL
        "WHERE hour >= ? AND hour < ? GROUP BY ALL",
        [start, end],
    ).df()


def _summarise(sums: pd.DataFrame, keys: list[str], default_codec: str) -> pd.DataFrame:
    """Per group of `keys`: samples, calls (each counted at its first sample of the day), mean
    network figures, mean R and estimated MOS (each codec under its own profile), mean reported
    MOS and the share of samples with an estimated MOS under POOR_MOS."""
    codec = sums["codec"].astype(object).where(sums["codec"].notna(), "")
    profile = codec.map(lambda c: PROFILE_KEYS[codec_profile(c, default_codec).name])
    d = sums.assign(codec_profile=profile.map({k: n for n, k in PROFILE_KEYS.items()}))
    for s in ("sum_r", "sum_mos", "n_poor"):
        d[s] = 0.0
        for key in PROFILE_KEYS.values():
            d[s] = d[s].where(profile != key, d[f"{s}_{key}"])
    totals = [c for c in _SUMS if not c.endswith(tuple(PROFILE_KEYS.values()))]
    g = d.groupby(keys, sort=True)[[*totals, "sum_r", "sum_mos", "n_poor"]].sum()

    def mean(total: str, count: str) -> pd.Series:
        return g[total] / g[count].where(g[count] > 0)

    out = pd.DataFrame(
        {
            "samples": g["n"].astype("int64"),
            "calls": g["n_calls"].astype("int64"),
            "latency_ms": mean("sum_latency_ms", "n"),
            "jitter_ms": mean("sum_jitter_ms", "n_jitter_ms"),
            "packet_loss_pct": mean("sum_packet_loss_pct", "n_packet_loss_pct"),
            "r": mean("sum_r", "n"),
            "mos_estimated": mean("sum_mos", "n"),
            "mos_reported": mean("sum_mos_reported", "n_mos_reported"),
            "poor_share": mean("n_poor", "n"),
        }
    )
    return out[out["samples"] > 0]


def quality_trend(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    grain: str = "hour",
    default_codec: str = "opus",
) -> Table:
    """Per hour or day: samples, calls, mean network figures, mean R, estimated and reported
    MOS, share of poor samples; from the hourly quality rollup, so [start, end) is read as the
    hours that start in it, and the cost follows hours and segments, not samples."""
    if grain not in ("hour", "day"):
        return Table(pd.DataFrame(), f"grain must be hour or day, not {grain!r}")
    period = (
        "hour AS period"
        if grain == "hour"
        else "CAST(date_trunc('day', hour) AS TIMESTAMP) AS period"
    )
    sums = _rollup_sums(con, start, end, period)
    if sums.empty or sums["n"].sum() == 0:
        return Table(pd.DataFrame(), "no voice quality samples in this window")
    return Table(_summarise(sums, ["period"], default_codec).reset_index())


SEGMENT_DIMENSIONS = ("release", "network", "region", "codec_profile")


def worst_segments(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    dimensions: tuple[str, ...] = ("release", "network", "region"),
    min_samples: int = 20,
    top: int = 10,
    default_codec: str = "opus",
) -> Table:
    """The segments (one dimension at a time) with the lowest mean estimated MOS, from the
    hourly quality rollup (figures as quality_trend's).

    Segments with fewer than `min_samples` samples are left out so a handful of bad samples
    cannot top the list; each row carries its counts.
    """
    bad = [d for d in dimensions if d not in SEGMENT_DIMENSIONS]
    if bad:
        return Table(pd.DataFrame(), f"cannot segment voice quality by {bad}")
    sums = _rollup_sums(con, start, end, "release, network, region")
    if sums.empty or sums["n"].sum() == 0:
        return Table(pd.DataFrame(), "no voice quality samples in this window")
    parts = []
    for dim in dimensions:
        g = _summarise(sums, [dim], default_codec).reset_index().rename(columns={dim: "value"})
        parts.append(g.assign(dimension=dim)[["dimension", "value", *SUMMARY_COLUMNS]])
    out = pd.concat(parts, ignore_index=True)
    out = out[out["samples"] >= min_samples]
    if out.empty:
        return Table(pd.DataFrame(), f"no segment has {min_samples} samples or more")
    out = out.sort_values("mos_estimated").head(top)
    return Table(out.reset_index(drop=True))
