"""The fan-out's plain parts: what a model run receives and sends back, and what the parent does with each state."""

from __future__ import annotations

import json

import pytest

from edgebench import fleet
from edgebench.config import PipelineConfig
from edgebench.pipeline import new_run
from edgebench.runs import ModelResults
from edgebench.storage import Storage
from tests.synthetic_runs import synthetic_run


def test_the_parameters_are_json_and_rebuild_the_same_settings(tmp_path):
    config = PipelineConfig(models=["resnet_mixed", "r3d_18"], formats={"onnx": ["fp32", "int8"]})
    settings = new_run(config, tmp_path, quick=True)
    params = fleet.run_parameters("r3d_18", settings, "s3://bucket/eb", None, (1, 3, 4, 32, 32))
    again = json.loads(json.dumps(params))  # what run_deployment sends and the worker receives
    assert again["model"] == "r3d_18" and again["input_shape"] == [1, 3, 4, 32, 32]
    rebuilt = fleet.settings_from(again["run"])
    assert rebuilt == settings  # config, run id, folders, budget: all the same (threads: 0 resolves alike here)


def test_threads_zero_is_resolved_on_the_worker(tmp_path, monkeypatch):
    settings = new_run(PipelineConfig(), tmp_path)
    params = json.loads(json.dumps(fleet.run_parameters("resnet_mixed", settings, str(tmp_path))))
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))  # a bigger worker host
    assert fleet.settings_from(params["run"]).threads == 64
    fixed = new_run(PipelineConfig(threads=2), tmp_path)
    params = json.loads(json.dumps(fleet.run_parameters("resnet_mixed", fixed, str(tmp_path))))
    assert fleet.settings_from(params["run"]).threads == 2  # a configured count is kept


def test_results_travel_whole(tmp_path):
    run = synthetic_run(0)
    results = ModelResults(run.models[0], run.artifacts, run.parity, run.latency, [])
    storage = Storage(str(tmp_path / "storage"))
    url = fleet.save_results(storage, run.run_id, results, 12.34)
    assert url.endswith(f"runs/{run.run_id}/models/resnet_mixed.json")
    back, worker = fleet.load_results(storage, run.run_id, "resnet_mixed")
    assert back == results
    assert set(worker) == {"host", "worker_pid", "pid", "seconds"} and worker["seconds"] == 12.3
    assert not list((tmp_path / "storage").rglob("*.tmp*"))  # written to a temporary name, then renamed


@pytest.mark.parametrize("state, retries_done, expected", [
    ("COMPLETED", 0, fleet.DONE),
    ("CRASHED", 0, fleet.RETRY),  # its worker died: another takes it
    ("CRASHED", 2, fleet.GIVE_UP),  # out of retries
    ("FAILED", 0, fleet.GIVE_UP),  # the model itself failed: running it again would fail again
    ("CANCELLED", 0, fleet.GIVE_UP),
    ("RUNNING", 0, fleet.WAIT),
    ("SCHEDULED", 0, fleet.WAIT),
])
def test_what_the_parent_does_with_each_state(state, retries_done, expected):
    tracked = fleet.Tracked("m", "id", retries=retries_done, scheduled_at=100.0)
    assert fleet.next_step(state, tracked, retries=2, now=160.0, start_timeout_s=3600) == expected


def test_a_run_no_worker_starts_is_given_up_after_the_start_timeout():
    tracked = fleet.Tracked("m", "id", scheduled_at=100.0)
    assert fleet.next_step("SCHEDULED", tracked, 2, now=100.0 + 3599, start_timeout_s=3600) == fleet.WAIT
    assert fleet.next_step("SCHEDULED", tracked, 2, now=100.0 + 3601, start_timeout_s=3600) == fleet.GIVE_UP
    assert fleet.next_step("RUNNING", tracked, 2, now=100.0 + 9999, start_timeout_s=3600) == fleet.WAIT  # started


@pytest.mark.parametrize("state", ["RUNNING", "PENDING"])  # PENDING: its worker died while starting it
def test_a_live_model_run_silent_past_crashed_after_is_marked_crashed(state):
    tracked = fleet.Tracked("m", "id", scheduled_at=100.0)
    assert fleet.next_step(state, tracked, 2, 200.0, 3600, silent_s=89, crashed_after_s=90) == fleet.WAIT
    assert fleet.next_step(state, tracked, 2, 200.0, 3600, silent_s=91, crashed_after_s=90) == fleet.CRASH
    assert fleet.next_step("SCHEDULED", tracked, 2, 200.0, 3600, silent_s=91, crashed_after_s=90) == fleet.WAIT
    assert fleet.next_step("COMPLETED", tracked, 2, 200.0, 3600, silent_s=500, crashed_after_s=90) == fleet.DONE


def test_pinned_workers_get_their_own_cores_and_their_own_benchmark_lock(monkeypatch):
    from edgebench.benchmarks.local import device_key
    from edgebench.errors import UserError
    from edgebench.flows.serve import fleet_cpus
    from edgebench.flows.worker import cpu_list

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [fleet_cpus(i, 4) for i in (1, 2)] == [["--cpus", "0-3"], ["--cpus", "4-7"]]
    assert fleet_cpus(1, 0) == []  # not pinned: every worker shares the host's cores
    with pytest.raises(UserError, match="worker 3 would need cores 8-11; this machine has 8"):
        fleet_cpus(3, 4)
    assert cpu_list("0-3,6") == {0, 1, 2, 3, 6}
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {4, 5, 6, 7})
    assert device_key("local") == "local@cpus4-7" and device_key("queue:mac") == "queue:mac"
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert device_key("local") == "local"  # the whole host: the one lock every unpinned run shares
