"""The production path through the local spool: a simulated agent (2,000 calls) ships through
the SDK's spool sink, `workbench collect spool` ingests it, `workbench publish` publishes it,
and every page function reads back exactly the truth the workload implies."""

from __future__ import annotations

import pytest

from tests.golden.harness import (
    assert_agent_report,
    assert_truth,
    run_golden_path,
    spool_transport,
)
from tests.golden.workload import golden_workload, truth_of


@pytest.fixture(scope="module")
def golden():
    workload = golden_workload(seed=7, calls=2000)
    return workload, truth_of(workload)


def test_the_workload_is_big_and_realistic_enough_to_mean_something(golden):
    workload, truth = golden
    assert truth.calls >= 2000 and truth.turns > 10_000
    assert all(truth.outcomes[o] > 0 for o in ("resolved", "escalated", "abandoned", "failed"))
    assert truth.failed_login_bursts_by_ip and truth.failed_login_bursts_by_user
    # calls overlap: at the median call's start, others are still going on
    spans = sorted((c.start_s, c.end_s) for c in workload.calls)
    overlapping = sum(1 for (s, _), (_, e) in zip(spans[1:], spans, strict=False) if s < e)
    assert overlapping > len(spans) / 2


def test_the_spool_path_delivers_exactly_the_truth(golden, tmp_path):
    workload, truth = golden
    observed = run_golden_path(workload, spool_transport(tmp_path), tmp_path / "data")
    assert_agent_report(truth, observed.report)
    assert_truth(truth, observed.con)
    spool_files = list((tmp_path / "spool" / "calls").iterdir())
    assert len(spool_files) > 1, "calls were spread over several spool files"
