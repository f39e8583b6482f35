"""ROS 2 adapter (rclpy). rclpy comes from a ROS 2 install (`source /opt/ros/<distro>/setup.bash`), not from
PyPI, so it is imported only when this adapter is used and a missing rclpy is a clear error. The adapter only
moves messages: conversion, caching, inference, scheduling and safety are the shared core."""

from __future__ import annotations

import json
import logging
import threading

from .mapping import RobotMapping
from .messages import split_seconds
from .ros1 import AdapterUnavailable
from .safety import Decision
from .server import PolicyServer, TickInfo

log = logging.getLogger("diffpilot.serve.ros2")


def import_rclpy():
    try:
        import rclpy
    except ImportError as err:
        raise AdapterUnavailable(
            f"rclpy is not importable ({err}); source your ROS 2 install first (`source /opt/ros/<distro>/setup.bash`) "
            "or use adapter=ros1, or replay a bag offline with bag=<path>"
        ) from None
    return rclpy


def message_classes() -> dict[str, type]:
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Bool, Float32MultiArray, Float64MultiArray, String

    classes = {
        "geometry_msgs/PoseStamped": PoseStamped,
        "sensor_msgs/Image": Image,
        "sensor_msgs/JointState": JointState,
        "std_msgs/Bool": Bool,
        "std_msgs/Float32MultiArray": Float32MultiArray,
        "std_msgs/Float64MultiArray": Float64MultiArray,
        "std_msgs/String": String,
    }
    return classes


class Ros2Bridge:
    """Same life cycle as Ros1Bridge: construct, build the server with send=bridge.send, start(server)."""

    def __init__(self, mapping: RobotMapping, node_name: str = "diffpilot", dry_run: bool = False):
        self.rclpy = import_rclpy()
        self.mapping, self.node_name, self.dry_run = mapping, node_name, dry_run
        self.classes = message_classes()
        self.node = self.cmd_pub = self.status_pub = None

    def start(self, server: PolicyServer) -> None:
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data

        rclpy, m = self.rclpy, self.mapping
        rclpy.init()
        self.node = rclpy.create_node(self.node_name)
        if not self.dry_run:
            self.cmd_pub = self.node.create_publisher(self.classes[m.action.type], m.action.topic, 10)
        if m.status_topic:
            self.status_pub = self.node.create_publisher(self.classes["std_msgs/String"], m.status_topic, 10)
        by_topic: dict[str, list[str]] = {}
        for key, source in m.observations.items():
            by_topic.setdefault(source.topic, []).append(key)
        for topic, keys in by_topic.items():

            def callback(msg, keys=keys):
                for key in keys:
                    server.observe_message(key, msg)

            msg_class = self.classes[m.observations[keys[0]].type]
            self.node.create_subscription(msg_class, topic, callback, qos_profile_sensor_data)
        if m.safety.estop_topic:
            self.node.create_subscription(
                self.classes["std_msgs/Bool"], m.safety.estop_topic, lambda msg: server.set_estop(bool(msg.data)), 10
            )
        self._executor = MultiThreadedExecutor()
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._executor.spin, name="diffpilot-rclpy", daemon=True)
        self._spin.start()

    def send(self, decision: Decision, info: TickInfo) -> None:
        sent = decision.command is not None and self.cmd_pub is not None
        if sent:
            values = [float(v) for v in decision.command]
            if self.mapping.action.type == "sensor_msgs/JointState":
                msg = self.classes["sensor_msgs/JointState"]()
                if info.stamp is not None:
                    msg.header.stamp.sec, msg.header.stamp.nanosec = split_seconds(info.stamp)
                else:
                    msg.header.stamp = self.node.get_clock().now().to_msg()
                msg.name, msg.position = list(self.mapping.action.names), values
            else:
                msg = self.classes["std_msgs/Float64MultiArray"](data=values)
            self.cmd_pub.publish(msg)
        if self.status_pub is not None:
            status = info.status(decision) | {"sent": bool(sent), "dry_run": self.dry_run}
            self.status_pub.publish(self.classes["std_msgs/String"](data=json.dumps(status)))

    def shutdown(self) -> None:
        if self.node is not None:
            self._executor.shutdown()
            self.node.destroy_node()
        self.rclpy.try_shutdown()
