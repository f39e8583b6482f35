"""diffpilot test suite."""
