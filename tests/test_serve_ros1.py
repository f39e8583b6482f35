"""`diffpilot serve` over a real rosmaster on loopback with a fake robot node (subprocesses, no mocks): the
faults a deployment meets — a topic stops, malformed messages, a clock jump, the e-stop, the robot node dies and comes
back, rosmaster restarts, a policy that returns NaN — with nothing unsafe sent and the server still running."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest

from tests.serve_support import (
    HIGH,
    LOW,
    MAX_VELOCITY,
    FakeRobot,
    RosMaster,
    read_records,
    robot_mapping,
    robot_policy,
    serve_process,
    wait_for,
)

PERIOD = 0.02  # 50 Hz
MAX_STEP = np.array(MAX_VELOCITY) * PERIOD + 1e-4


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    root = tmp_path_factory.mktemp("ros1")
    master = RosMaster(root)
    yield master, root
    master.stop()


def ok_statuses(record) -> int:
    if not record.exists():
        return 0
    return sum(1 for s in read_records(record)[1] if s["status"]["state"] == "ok")


def assert_commands_safe(record):
    """Finite, inside the limits, within max_velocity·period of the previous command; holds repeat it."""
    commands, statuses = read_records(record)
    assert commands, f"{record} received no commands"
    positions = np.array([c["position"] for c in commands])
    assert np.all(np.isfinite(positions)) and np.all(positions >= LOW) and np.all(positions <= HIGH)
    assert np.all(np.abs(np.diff(positions, axis=0)) <= MAX_STEP)
    last = None
    for s in (s["status"] for s in statuses):
        if s["state"] == "hold" and last is not None and s["command"] is not None:
            assert s["command"] == last
        if s["command"] is not None:
            last = s["command"]
    return commands, [s for s in statuses]


def states_between(statuses, t0, t1):
    return [s["status"] for s in statuses if t0 <= s["recv"] <= t1]


def test_serve_survives_robot_faults_over_a_real_rosmaster(ros, tmp_path):
    master, _ = ros
    policy = robot_policy(tmp_path / "policy")
    robot = robot_mapping(tmp_path / "robot.yaml")
    metrics = tmp_path / "metrics.json"
    rec = [tmp_path / f"robot{i}.jsonl" for i in range(3)]
    robot1 = FakeRobot(master.env, rec[0])
    serve = serve_process(
        master.env, f"policy={policy}", f"robot={robot}", f"metrics_path={metrics}", log=tmp_path / "serve.log"
    )
    robots = [robot1]
    try:
        assert wait_for(lambda: ok_statuses(rec[0]) >= 25, 90), (tmp_path / "serve.log").read_text()[-3000:]
        # 1. A topic stops for 0.5 s: stale after max_age 0.1 s → hold within one control period.
        t_stop = robot1.send("stop /robot/pose")
        time.sleep(0.5)
        t_start = robot1.send("start /robot/pose")
        time.sleep(0.4)
        # 2. Malformed messages (a joint missing, an image of the wrong size), then 3. a clock jump of −500 s.
        robot1.send("malformed /robot/joint_states 5")
        robot1.send("malformed /robot/image 3")
        time.sleep(0.3)
        t_clock = robot1.send("clock -500")
        time.sleep(0.5)
        # 4. The e-stop: stop (nothing sent) until released.
        t_estop = robot1.send("estop true")
        time.sleep(0.3)
        t_release = robot1.send("estop false")
        time.sleep(0.4)
        # 5. The robot node dies and comes back.
        robot1.kill()
        time.sleep(0.4)
        robots.append(FakeRobot(master.env, rec[1]))
        assert wait_for(lambda: ok_statuses(rec[1]) >= 10, 20)
        # 6. rosmaster restarts; then the robot restarts too and must find the server through the new master.
        master.restart()
        time.sleep(1.5)
        robots[1].kill()
        robots.append(FakeRobot(master.env, rec[2]))
        assert wait_for(lambda: ok_statuses(rec[2]) >= 10, 20), (tmp_path / "serve.log").read_text()[-3000:]
        assert serve.poll() is None, "the server must keep running through every fault"
    finally:
        for r in robots:
            r.kill()
        serve.send_signal(signal.SIGINT)
        rc = serve.wait(30)
    log = (tmp_path / "serve.log").read_text()
    assert rc == 0, log[-3000:]

    commands, statuses = assert_commands_safe(rec[0])
    for record in rec[1:]:
        assert_commands_safe(record)
    # The stale pose: every tick from max_age + one period (+ transport) after the stop until it restarts holds.
    stale = states_between(statuses, t_stop + 0.1 + PERIOD + 0.03, t_start)
    assert len(stale) >= 15 and all(s["state"] == "hold" and "observation.pose" in s["reason"] for s in stale)
    held = {tuple(s["command"]) for s in stale}
    assert len(held) == 1  # the one last safe command, repeated
    assert any(s["state"] == "ok" for s in states_between(statuses, t_start + 0.3, t_clock))
    # The clock jump changes nothing: still ok.
    after_jump = states_between(statuses, t_clock + 0.1, t_estop)
    assert after_jump and all(s["state"] == "ok" for s in after_jump)
    # The e-stop: stop and no command on the wire while engaged.
    engaged = states_between(statuses, t_estop + 0.05, t_release)
    assert engaged and all(s["state"] == "stop" and s["command"] is None for s in engaged)
    assert not [c for c in commands if t_estop + 0.05 < c["recv"] < t_release]
    summary = json.loads(metrics.read_text())
    assert summary["malformed_messages"] == {"observation.state": 5, "observation.image": 3}
    assert summary["clock_jumps"] >= 3
    # Each fault is logged once, not once per tick or message.
    assert log.count("dropping malformed message on /robot/joint_states") == 1
    assert log.count("dropping malformed message on /robot/image") == 1
    assert _stale_pose_logs(log) == 1  # logged once for the whole stale period
    assert log.count("clock jump in header stamps") == 3
    assert "rosmaster restarted" in log and log.count("e-stop ENGAGED") == 1


def test_nan_policy_sends_nothing_and_dry_run_publishes_no_commands(ros, tmp_path):
    master, _ = ros
    nan_policy = robot_policy(tmp_path / "nan", image=False, nan=True)
    good_policy = robot_policy(tmp_path / "good", image=False)
    robot = robot_mapping(tmp_path / "robot.yaml", image=False)
    for name, policy, extra in (("nan", nan_policy, []), ("dry", good_policy, ["--dry-run"])):
        record = tmp_path / f"{name}.jsonl"
        fake = FakeRobot(master.env, record, "--image-topic", "")
        log = tmp_path / f"{name}.log"
        serve = serve_process(master.env, f"policy={policy}", f"robot={robot}", "duration=4", *extra, log=log)
        try:
            assert serve.wait(90) == 0, log.read_text()[-3000:]
        finally:
            fake.kill()
        commands, statuses = read_records(record)
        states = [s["status"] for s in statuses]
        assert len(states) > 100 and not commands  # nothing on the command topic
        if name == "nan":
            assert all(s["state"] == "hold" and s["command"] is None for s in states)
            assert log.read_text().count("inference failed (nan)") == 1
        else:
            assert sum(s["state"] == "ok" for s in states) > 100 and all(s["dry_run"] for s in states)
            assert all(not s["sent"] for s in states)


def _stale_pose_logs(log: str) -> int:
    """Warnings that the pose topic went stale during the injected pose fault: after it had been seen (finite
    age) and before the next fault (the clock jump); later faults (the robot dying) may stale it again."""
    marker = "hold: stale observation(s): observation.pose on /robot/pose (age "
    section = log.split("clock jump in header stamps", 1)[0]
    return sum(1 for line in section.splitlines() if marker in line and f"{marker}inf" not in line)


@pytest.mark.parametrize("on_fault, ending", [("hold", "SIGTERM"), ("stop", "duration")])
def test_first_command_ramps_from_the_robot_and_shutdown_sends_the_final_command(ros, tmp_path, on_fault, ending):
    master, _ = ros
    policy = robot_policy(tmp_path / "policy", image=False)
    safety = {"on_fault": on_fault, "stop_command": [100.0, 400.0], "estop_topic": "/diffpilot/estop"}
    robot = robot_mapping(tmp_path / "robot.yaml", image=False, safety=safety, position_from="observation.state")
    record, log = tmp_path / "robot.jsonl", tmp_path / "serve.log"
    fake = FakeRobot(master.env, record, "--image-topic", "", "--start", "60", "440")
    extra = ["duration=3"] if ending == "duration" else []
    serve = serve_process(master.env, f"policy={policy}", f"robot={robot}", *extra, log=log)
    try:
        if ending == "SIGTERM":
            assert wait_for(lambda: ok_statuses(record) >= 50, 90), log.read_text()[-3000:]
            serve.send_signal(signal.SIGTERM)
        assert serve.wait(90) == 0, log.read_text()[-3000:]
        time.sleep(0.3)
    finally:
        fake.kill()
    commands, statuses = assert_commands_safe(record)
    first = next(s["status"] for s in statuses if s["status"]["command"] is not None)  # earlier ticks may be lost
    steps = first["tick"] + 1  # at most one step per tick since the loop started, from where the robot was
    assert np.all(np.abs(np.array(first["command"]) - [60.0, 440.0]) <= steps * MAX_STEP), first
    final = [s["status"] for s in statuses if s["status"]["reason"] == "shutdown"]
    assert final and all(s["state"] == on_fault for s in final)
    assert commands[-1]["position"] == final[-1]["command"]
    if on_fault == "stop":
        assert final[-1]["command"] == [100.0, 400.0] and len(final) > 1  # ramped there at the rate limit
    else:
        assert len(final) == 1 and final[0]["command"] == statuses[-2]["status"]["command"]
