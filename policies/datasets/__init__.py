"""Datasets: LeRobot v3.0 and Diffusion Policy zarr on disk, episodes in memory, windows, statistics."""
