"""Prefect artifacts published from inside a real flow run (prefect_test_harness): a table and a markdown summary."""

from __future__ import annotations

from edgebench.reports.prefect_artifacts import RESULTS_KEY, SUMMARY_KEY, publish
from tests.unit.test_reports_prefect import tonight


def test_publish_inside_a_flow_run_creates_both_artifacts():
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    run, df, findings = tonight()

    @flow
    def publish_flow():
        return publish(df, findings, run)

    with prefect_test_harness(server_startup_timeout=120):  # a busy 2-core CI box is slow to start it
        assert publish_flow() is True
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[RESULTS_KEY, SUMMARY_KEY])))
    kinds = {a.key: a.type for a in found}
    assert kinds == {RESULTS_KEY: "table", SUMMARY_KEY: "markdown"}
