"""Dataset readers and writers (LeRobot v3.0 layout)."""
