"""The Ray executor on a local cluster, all traffic on loopback.

The whole scenario (:mod:`tests.plugins.runtime.ray_scenario`) runs once per session as its own process
inside ``unshare -n -p -f --mount-proc`` with only ``lo`` up: no traffic can leave the machine, and every
process the cluster starts ends with the namespace.  Where that namespace cannot be made (not root, no
``unshare``/``ip``) the tests skip saying so.  Cost: ≈ 1 min on 2 cores (simulation 11 s, Ray head 6 s,
workers 5 s, three runs of the 12 slices), bounded by ``timeout`` below.

Tolerance, fixed before the first run: the Ray runs compute the same float operations on the same CPU
in the same order, so the uint16 images must be bit-identical to the local run's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(420)]
ROOT = Path(__file__).resolve().parents[3]
_NAMESPACE = ["unshare", "-n", "-p", "-f", "--mount-proc"]


def _namespace_problem() -> str | None:
    """Why an isolated loopback-only namespace cannot be made here (None when it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2) for a loopback-only network namespace"
    probe = subprocess.run([*_NAMESPACE, "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        reason = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["unknown"]
        return f"cannot make a loopback-only network namespace (unshare -n needs root): {reason[0]}"
    return None


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install reconstream[ray])")
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    out = tmp_path_factory.mktemp("ray") / "scenario.json"
    command = f"ip link set lo up && exec {sys.executable} -m tests.plugins.runtime.ray_scenario {out}"
    run = subprocess.run(
        [*_NAMESPACE, "sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=400
    )
    assert run.returncode == 0, f"the Ray scenario failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    return dict(json.loads(out.read_text(encoding="utf-8")))


def test_twelve_slice_cine_on_two_workers_equals_the_local_run(scenario: dict[str, Any]) -> None:
    assert scenario["n_slices_binned"] == 12
    assert scenario["executor"] == "ray"
    ray = scenario["ray"]
    assert ray["n_images"] == [96, 96]  # 12 slices × 8 cardiac phases
    assert ray["same_order"] and ray["bit_identical"], ray
    assert ray["n_units"] == 12 and ray["n_local"] == 0  # every slice ran on a worker


def test_a_worker_killed_mid_run_is_replaced_and_the_session_completes(scenario: dict[str, Any]) -> None:
    kill = scenario["kill"]
    assert max(scenario["load_at_kill"]) >= 1  # the killed worker had a slice in hand
    assert kill["n_retried"] >= 1 and kill["n_local"] == 0
    assert kill["n_images"] == [96, 96] and kill["same_order"] and kill["bit_identical"], kill
    assert any("died" in line and "another worker" in line for line in scenario["warnings"])


def test_an_unreachable_cluster_falls_back_to_local_with_a_warning(scenario: dict[str, Any]) -> None:
    fallback = scenario["fallback"]
    assert fallback["executor"] == "local"
    assert any("no Ray cluster answers" in w and "running locally" in w for w in fallback["warnings"])
    assert fallback["bit_identical"]


def test_a_server_on_the_cluster_journals_a_session_that_replays_to_the_same_images(
    scenario: dict[str, Any],
) -> None:
    server = scenario["server"]
    assert server["executor"] == "ray" and server["n_units"] == 2  # both slices ran on the cluster
    assert server["errors"] == [] and server["n_images"] == 16  # 2 slices × 8 phases
    assert server["replay_matches"] is True and server["n_replayed"] == 16


def test_a_dixon_volume_on_a_worker_equals_the_local_one(scenario: dict[str, Any]) -> None:
    dixon = scenario["dixon"]
    assert dixon["same_volume"], dixon  # water, fat and field map bit-identical
    assert dixon["n_outputs"][0] == dixon["n_outputs"][1] and dixon["same_order"] and dixon["bit_identical"]


def test_sweep_points_run_as_ray_tasks(scenario: dict[str, Any]) -> None:
    sweep = scenario["sweep"]
    assert any("on Ray" in line for line in sweep["progress"]), sweep["progress"]
    assert not any("unavailable" in line for line in sweep["progress"])
    assert sweep["quality_ray"] == sweep["quality_local"]  # same images, same scores


def test_a_plugin_error_on_a_worker_is_reported_as_in_process(scenario: dict[str, Any]) -> None:
    remote, local = scenario["worker_error"], scenario["local_error"]
    assert local is not None and remote is not None
    assert (remote["stage"], remote["plugin"], remote["cause"]) == ("unfold", "cine_unfold", "ValueError")
    assert (local["stage"], local["plugin"], local["cause"]) == ("unfold", "cine_unfold", "ValueError")
    assert "needs calibration lines" in remote["message"] and "needs calibration lines" in local["message"]


def test_flow_series_on_workers_equal_the_local_run(scenario: dict[str, Any]) -> None:
    flow = scenario["flow"]
    assert flow["n_series"] == 4 and flow["n_units"] == 4  # 2 planes × (reference, encoded), each one unit
    assert flow["n_images"][0] == flow["n_images"][1] > 0
    assert flow["same_order"] and flow["bit_identical"], flow


def test_with_every_worker_gone_the_run_completes_locally_and_the_workers_come_back(
    scenario: dict[str, Any],
) -> None:
    gone = scenario["all_killed"]
    assert gone["n_local"] >= 1 and gone["bit_identical"] and gone["same_order"], gone
    assert any("no worker can be reached" in w and "locally" in w for w in scenario["warnings"])
    assert gone["back"] and gone["n_units_next_run"] == 12 and gone["next_run_identical"]


def test_pet_frames_on_workers_equal_the_local_run(scenario: dict[str, Any]) -> None:
    pet = scenario["pet"]
    assert pet["n_units"] == 2 and pet["n_frame_images"] == [2, 2]  # 60 k prompts in frames of 40 k
    assert pet["same_order"] and pet["bit_identical"], pet
