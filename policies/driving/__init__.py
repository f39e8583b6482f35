"""Driving planners on the NAVSIM-style agent input (envs/driving.py): the ego-status MLP, DiffusionDrive and its
vanilla-diffusion peer, WAM-Diff; their shared trajectory layout, scene encoder and checkpoint base (common.py,
encoders.py). Each plans with `plan(obs_batch) -> (B, 8, 3)` and trains by `diffpilot train task=driving`."""
