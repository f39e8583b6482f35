"""The websocket policy server (openpi's protocol) on loopback, driven by the real `openpi-client` package: wire
format both ways, serving through the safety layer, malformed frames, a second client, a client that drops
mid-stream, and `diffpilot serve adapter=websocket` as a process."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from diffpilot.policies.registry import load_policy
from diffpilot.serve.inference import PolicyRunner
from diffpilot.serve.mapping import load_mapping
from diffpilot.serve.websocket import WebsocketPolicyServer
from diffpilot.serve.wire import WireError, pack, unpack
from tests.serve_support import HIGH, LOW, MAX_VELOCITY, robot_mapping, robot_policy, websocket_serve

HZ = 50.0
STEP = np.array(MAX_VELOCITY) / HZ  # the rate limit per tick


def test_wire_format_matches_openpi_client_both_ways():
    message = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.uint8(7), "c": [1, "x"]}
    ours = unpack(msgpack_numpy.packb(message))
    assert ours["a"].dtype == np.float32 and ours["a"].tolist() == message["a"].tolist() and ours["b"] == 7
    theirs = msgpack_numpy.unpackb(pack(message))
    assert np.array_equal(theirs["a"], message["a"]) and theirs["c"] == [1, "x"]
    bad = [
        ("text", "a str frame"),
        (b"\xc1\xc1", "not a msgpack message"),
        (msgpack_numpy.packb({"a": np.zeros(2)})[:-3], "not a msgpack message"),
        (pack({"a": {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]}}), "numeric dtype"),
        (pack({"a": {b"__ndarray__": True, b"data": b"\0" * 7, b"dtype": "<f8", b"shape": [1]}}), "expected 8"),
        (pack({"a": {b"__ndarray__": True, b"data": b"", b"dtype": "<f8", b"shape": [-1]}}), "integers ≥ 0"),
    ]
    for frame, message in bad:
        with pytest.raises(WireError, match=message):
            unpack(frame)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("ws")
    policy = load_policy(robot_policy(work / "policy", image=True))
    robot = robot_mapping(work / "robot.yaml", control_hz=HZ, image=True, position_from="observation.state")
    mapping = load_mapping(robot, policy.config)
    runner = PolicyRunner(policy, {"enabled": True, "start": 2, "num_steps": 2})
    server = WebsocketPolicyServer(runner, mapping, policy.config.n_obs_steps, policy.config.n_action_steps)
    port = server.start(0)
    yield server, port
    server.close()


def observation(position) -> dict:
    return {
        "observation.state": np.asarray(position, np.float32),
        "observation.pose": np.array([100.0, 100.0, 1.0], np.float32),
        "observation.image": np.zeros((16, 16, 3), np.uint8),  # (H, W, 3) as cameras give it
    }


def wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def drive(client, ticks: int, position=(60.0, 440.0)) -> list[dict]:
    replies, next_tick = [], time.monotonic()
    for _ in range(ticks):
        replies.append(client.infer(observation(position)))
        next_tick += 1 / HZ
        time.sleep(max(0.0, next_tick - time.monotonic()))
    return replies


def assert_safe(replies, start) -> np.ndarray:
    commands = np.array([start] + [r["actions"][0] for r in replies if len(r["actions"])])
    assert np.all(commands[1:] >= LOW) and np.all(commands[1:] <= HIGH)
    assert np.all(np.abs(np.diff(commands, axis=0)) <= STEP + 1e-6)  # the first ramps from the reported position
    return commands


def test_openpi_client_is_served_through_the_safety_layer(served):
    server, port = served
    client = WebsocketClientPolicy(host="127.0.0.1", port=port)
    meta = client.get_server_metadata()
    assert (
        meta["server"] == "diffpilot"
        and meta["action_dim"] == 2
        and meta["features"]["observation.image"] == [3, 16, 16]
    )
    replies = drive(client, 60)
    assert replies[-1]["state"] == "ok" and sum(r["state"] == "ok" for r in replies) >= 50
    assert all(r["actions"].shape in ((1, 2), (0, 2)) for r in replies)
    assert_safe(replies, [60.0, 440.0])
    # Malformed frames: garbage bytes, a text frame, a wrong shape, a non-finite value — each answered, none used.
    ws = client._ws
    last = replies[-1]["actions"][0]
    overflow = observation([0.0, 0.0]) | {"observation.state": np.array([1e39, 0.0])}  # float64: inf as float32
    for frame in (b"\x00garbage", "text", pack(observation([1.0, 2.0, 3.0])), pack(overflow)):
        ws.send(frame)
        reply = unpack(ws.recv())
        assert reply["reason"].startswith("malformed frame") and np.all(np.abs(reply["actions"][0] - last) <= STEP)
        last = reply["actions"][0]
    assert server.core.metrics.malformed["observation.state"] >= 4
    after = drive(client, 10)
    assert after[-1]["state"] == "ok"
    # A second client while the first controls: refused with a text frame (openpi's client raises on it).
    with pytest.raises(TypeError, match="bytes-like object is required, not 'str'"):
        WebsocketClientPolicy(host="127.0.0.1", port=port)
    # The first client drops mid-stream (no close frame); a new client is served afresh.
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()
    assert wait_until(lambda: not server.connected, 5)
    client2 = WebsocketClientPolicy(host="127.0.0.1", port=port)
    replies2 = drive(client2, 40, position=(300.0, 300.0))
    assert replies2[0]["state"] != "ok"  # fresh history: the first tick waits for its chunk
    assert replies2[-1]["state"] == "ok" and server.connections == 2
    client2._ws.close()


def test_diffpilot_serve_adapter_websocket_runs_as_a_process(tmp_path):
    policy = robot_policy(tmp_path / "policy", image=False)
    robot = robot_mapping(tmp_path / "robot.yaml", control_hz=HZ, image=False)
    proc, url = websocket_serve(f"policy={policy}", f"robot={robot}")
    try:
        assert url.startswith("ws://127.0.0.1:")
        client = WebsocketClientPolicy(host=url)
        obs = {"observation.state": np.array([100.0, 100.0], np.float32), "observation.pose": np.ones(3, np.float32)}
        replies = [client.infer(obs) for _ in range(30)]
        assert replies[-1]["state"] == "ok"
        client._ws.close()
    finally:
        proc.send_signal(2)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-2000:]
    assert "served" in out and "1 client(s)" in out
