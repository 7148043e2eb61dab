"""The fleet parent's reading of a model run's heartbeat events, on a real Prefect API (prefect_test_harness)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events import Event
from prefect.testing.utilities import prefect_test_harness

from edgebench.flows.fleet import _silence

CRASHED_AFTER_S = 60


def in_state(kind: StateType, since: datetime) -> SimpleNamespace:
    return SimpleNamespace(type=kind, timestamp=since)


def test_silence_counts_from_the_last_heartbeat_and_never_from_a_run_that_sends_none():
    now = datetime.now(timezone.utc)
    started = in_state(StateType.RUNNING, now - timedelta(seconds=600))  # a RUNNING state entered 10 minutes ago
    beating, silent, quiet_worker = (str(uuid.uuid4()) for _ in range(3))
    with prefect_test_harness(server_startup_timeout=120):
        with get_client(sync_client=True) as client:
            for run_id, ago in ((beating, 10), (silent, 300), (silent, 200)):
                event = Event(event="prefect.flow-run.heartbeat", occurred=now - timedelta(seconds=ago),
                              resource={"prefect.resource.id": f"prefect.flow-run.{run_id}"})
                client._client.post("/events", json=[event.model_dump(mode="json")]).raise_for_status()
            deadline = time.monotonic() + 60
            while _silence(client, silent, started, CRASHED_AFTER_S) == 0.0:  # the server stores events in batches
                assert time.monotonic() < deadline, "the heartbeat events never became readable"
                time.sleep(1)
            assert 200 <= _silence(client, silent, started, CRASHED_AFTER_S) < 260  # its newest beat, not its first
            assert _silence(client, beating, started, CRASHED_AFTER_S) < CRASHED_AFTER_S
            assert _silence(client, quiet_worker, started, CRASHED_AFTER_S) == 0.0  # no heartbeats: proves nothing
            young = in_state(StateType.RUNNING, datetime.now(timezone.utc) - timedelta(seconds=30))
            assert _silence(client, silent, young, CRASHED_AFTER_S) == 0.0  # running for less than crashed_after_s
            starting = in_state(StateType.PENDING, now - timedelta(seconds=120))
            assert _silence(client, quiet_worker, starting, CRASHED_AFTER_S) >= 120  # its worker died starting it
