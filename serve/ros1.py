"""ROS 1 adapter (rospy from Debian's python3-rospy & co.): subscribes to the mapping's observation topics and
the e-stop, publishes commands and a JSON status per tick, and re-registers with a restarted rosmaster.
Everything else is the ROS-free core. rospy lives in the system's dist-packages, which is appended to sys.path
here, on import of this adapter only — the project's virtual environment stays as it is."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from .mapping import RobotMapping
from .messages import split_seconds
from .safety import Decision
from .server import PolicyServer, TickInfo

log = logging.getLogger("diffpilot.serve.ros1")
ROS1_PYTHON_PATH = "/usr/lib/python3/dist-packages"
APT_PACKAGES = "python3-rospy python3-rosmaster python3-std-msgs python3-sensor-msgs python3-geometry-msgs"


class AdapterUnavailable(RuntimeError):
    """The ROS client library this adapter needs is not installed."""


def import_rospy():
    """rospy, reaching Debian's dist-packages if needed (appended: the venv's own packages keep priority)."""
    if ROS1_PYTHON_PATH not in sys.path and os.path.isdir(ROS1_PYTHON_PATH):
        sys.path.append(ROS1_PYTHON_PATH)
    try:
        import rospy
    except ImportError as err:
        raise AdapterUnavailable(
            f"rospy is not importable ({err}); on Debian bookworm install it with `apt-get install -y "
            f"--no-install-recommends {APT_PACKAGES}` (or `make ros-deps`)"
        ) from None
    return rospy


def message_classes() -> dict[str, type]:
    import_rospy()
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Bool, Float32MultiArray, Float64MultiArray, String

    classes = (PoseStamped, Image, JointState, Bool, Float32MultiArray, Float64MultiArray, String)
    return {cls._type: cls for cls in classes}


def ros_time(rospy, seconds: float):
    return rospy.Time(*split_seconds(seconds))


class Ros1Bridge:
    """Create it, build the PolicyServer with `send=bridge.send`, then `start(server)`."""

    def __init__(self, mapping: RobotMapping, node_name: str = "diffpilot", dry_run: bool = False):
        self.rospy = import_rospy()
        self.mapping, self.node_name, self.dry_run = mapping, node_name, dry_run
        self.classes = message_classes()
        self._stop = threading.Event()
        self.subscriptions: list[tuple[str, str]] = []
        self.publications: list[tuple[str, str]] = []
        self._subs: list = []
        self.cmd_pub = self.status_pub = None

    def start(self, server: PolicyServer) -> None:
        rospy, m = self.rospy, self.mapping
        handlers, level = list(logging.root.handlers), logging.root.level
        rospy.init_node(self.node_name, anonymous=False, disable_signals=True)
        # rospy re-configures the root logger to write only to its log file; keep our console output too.
        for handler in handlers:
            if handler not in logging.root.handlers:
                logging.root.addHandler(handler)
        logging.root.setLevel(min(level, logging.root.level) or logging.INFO)
        logging.getLogger("rospy").setLevel(logging.WARNING)
        logging.getLogger("rosout").setLevel(logging.WARNING)
        if not self.dry_run:
            self.cmd_pub = rospy.Publisher(m.action.topic, self.classes[m.action.type], queue_size=10, tcp_nodelay=True)
            self.publications.append((m.action.topic, m.action.type))
        if m.status_topic:
            self.status_pub = rospy.Publisher(m.status_topic, self.classes["std_msgs/String"], queue_size=10)
            self.publications.append((m.status_topic, "std_msgs/String"))
        by_topic: dict[str, list[str]] = {}
        for key, source in m.observations.items():
            by_topic.setdefault(source.topic, []).append(key)
        for topic, keys in by_topic.items():
            msg_type = m.observations[keys[0]].type

            def callback(msg, keys=keys):
                for key in keys:
                    server.observe_message(key, msg)

            self._subscribe(topic, msg_type, callback)
        if m.safety.estop_topic:
            self._subscribe(m.safety.estop_topic, "std_msgs/Bool", lambda msg: server.set_estop(bool(msg.data)))
        self._watchdog = threading.Thread(target=self._watch_master, name="diffpilot-master-watch", daemon=True)
        self._watchdog.start()
        log.info(
            "ROS 1 node %s: %d observation topic(s) → %s%s",
            rospy.get_name(),
            len(by_topic),
            m.action.topic,
            " (dry run: no commands published)" if self.dry_run else "",
        )

    def _subscribe(self, topic: str, msg_type: str, callback) -> None:
        sub = self.rospy.Subscriber(topic, self.classes[msg_type], callback, queue_size=1, tcp_nodelay=True)
        self._subs.append(sub)
        self.subscriptions.append((topic, msg_type))

    def send(self, decision: Decision, info: TickInfo) -> None:
        rospy = self.rospy
        if self.rospy.is_shutdown():
            return
        sent = decision.command is not None and self.cmd_pub is not None
        if sent:
            values = [float(v) for v in decision.command]
            stamp = ros_time(rospy, info.stamp) if info.stamp is not None else rospy.Time.now()
            if self.mapping.action.type == "sensor_msgs/JointState":
                msg = self.classes["sensor_msgs/JointState"]()
                msg.header.stamp = stamp
                msg.name, msg.position = list(self.mapping.action.names), values
            else:
                msg = self.classes["std_msgs/Float64MultiArray"](data=values)
            self.cmd_pub.publish(msg)
        if self.status_pub is not None:
            status = info.status(decision) | {"sent": bool(sent), "dry_run": self.dry_run}
            self.status_pub.publish(self.classes["std_msgs/String"](data=json.dumps(status)))

    # ---------------------------------------------------------------- rosmaster restarts
    def _watch_master(self, interval: float = 0.5) -> None:
        """A restarted rosmaster forgets this node: established connections keep flowing, but nodes that
        (re)start later would never find us. Re-register every topic when the master comes back."""
        import rosgraph

        master = rosgraph.Master(self.rospy.get_name())
        pid, down = None, False
        while not self._stop.wait(interval):
            try:
                new_pid = master.getPid()
            except Exception as err:  # unreachable master: keep serving over the connections we have
                if not down:
                    log.warning("rosmaster unreachable (%s): existing connections keep flowing", err)
                down = True
                continue
            if pid is not None and (down or new_pid != pid):
                try:
                    self._reregister(master)
                    log.warning(
                        "rosmaster restarted (pid %s → %s): re-registered %d topic(s)",
                        pid,
                        new_pid,
                        len(self.subscriptions) + len(self.publications),
                    )
                except Exception as err:
                    log.error("re-registering with rosmaster failed (%s); retrying", err)
                    continue
            pid, down = new_pid, False

    def _reregister(self, master) -> None:
        import xmlrpc.client

        uri = self.rospy.get_node_uri()
        for topic, msg_type in self.publications:
            master.registerPublisher(topic, msg_type, uri)
        node = xmlrpc.client.ServerProxy(uri)
        for topic, msg_type in self.subscriptions:
            publishers = master.registerSubscriber(topic, msg_type, uri)
            node.publisherUpdate("/master", topic, publishers)

    def spin_until(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.rospy.is_shutdown():
            time.sleep(0.1)

    def shutdown(self) -> None:
        time.sleep(0.2)  # publishers send from a queue: let the final command out before the node goes
        self._stop.set()
        for sub in self._subs:
            sub.unregister()
        self.rospy.signal_shutdown("diffpilot serve finished")
