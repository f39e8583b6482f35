"""RTI warm start (real-time iteration, RTI-DP): between chunks, shift the previous clean chunk by the executed
steps, re-noise it to an intermediate level and run only a short step list — 3 network evaluations instead of 100.
A full sample is drawn after `reset()` and whenever the observation jumps. It only changes the sampler's starting
point and step list.

Which models it suits: one whose few large steps from an intermediate level land near its full sampler's chunk —
a well-trained model, or a shortcut flow model fine-tuned for RTI's own jumps (experiment=pusht_shortcut_rti_cpu:
RTI-3 within 3 points of its 128-step sampler on PushT). On an under-trained model (the 6,000-step `make demo`
policy) it costs 20–30 points of success; measure before deploying it (docs/results.md)."""

from __future__ import annotations

import torch


def shift_chunk(chunk: torch.Tensor, k: int, pad: str) -> torch.Tensor:
    """Drop the k executed steps of a (B, H, A) chunk and pad k steps at the end: its last action held ("hold")
    or continued at its last velocity ("extrapolate")."""
    last = chunk[:, -1:]
    if pad == "hold":
        tail = last.expand(-1, k, -1)
    else:
        velocity = chunk[:, -1:] - chunk[:, -2:-1]
        tail = last + velocity * torch.arange(1, k + 1, dtype=chunk.dtype, device=chunk.device)[None, :, None]
    return torch.cat([chunk[:, k:], tail], dim=1)


DEFAULT_START = {"diffusion": 0.8, "flow": 0.7}  # diffusion: level 0.8·K (80 of 100); flow: time 0.7


class RTIWarmStart:
    """Chunk planner for `DiffusionPolicy.chunk_planner`. The defaults are `diffpilot eval` / `serve`'s: start at
    diffusion level 80 of 100 (flow time 0.7), 3 steps, the shifted chunk's tail extrapolated.

    start: the re-noising level — an integer diffusion level (e.g. 80) or a flow time in [0, 1) (e.g. 0.7); None:
    DEFAULT_START for the policy's schedule;
    num_steps: network evaluations per warm-started chunk; jump_threshold: largest change of any normalised
    observation value since the last chunk that still allows a warm start (None: never fall back);
    clip: clamp the shifted chunk to the normalised action range [−1, 1] (discrete dimensions such as a
    gripper stay in range); pad: how the executed steps' room at the end is filled — "hold" repeats the
    last action (RTI-DP), "extrapolate" continues the chunk's last velocity (then clipped); timesteps: an explicit
    step list starting at `start` instead of the sampler's `num_steps` levels from it (e.g. flow times
    [0.625, 0.875, 0.9375]: one long jump, then short ones near the data).
    """

    PADS = ("hold", "extrapolate")

    def __init__(
        self,
        policy,
        start: float | None = None,
        num_steps: int = 3,
        jump_threshold: float | None = None,
        clip: bool = True,
        pad: str = "extrapolate",
        timesteps: list[float] | None = None,
    ):
        if start is None:
            fraction = DEFAULT_START[policy.sampler.family]
            steps = getattr(policy.schedule, "num_train_steps", None)
            start = round(fraction * steps) if steps else fraction
        if pad not in self.PADS:
            raise ValueError(f"pad={pad!r}: expected one of {self.PADS}")
        if timesteps is not None and (len(timesteps) != num_steps or float(timesteps[0]) != float(start)):
            raise ValueError(
                f"timesteps={list(timesteps)}: expected {num_steps} (num_steps) levels starting at start={start}"
            )
        self.policy, self.num_steps, self.jump_threshold, self.clip = policy, num_steps, jump_threshold, clip
        self.pad = pad
        self.timesteps = (
            list(timesteps) if timesteps is not None else policy.sampler.default_timesteps(num_steps, start=start)
        )
        self.start = self.timesteps[0]
        self.full_samples = self.warm_samples = 0
        self.reset()

    @classmethod
    def from_config(cls, policy, rti: dict) -> RTIWarmStart:
        """From the `rti:` block of the eval / serve configs (start, num_steps, jump_threshold, pad, timesteps)."""
        given = ("start", "num_steps", "jump_threshold", "pad", "timesteps")
        return cls(policy, **{k: rti[k] for k in given if rti.get(k) not in (None, [])})

    def reset(self) -> None:
        self._prev: torch.Tensor | None = None  # last clean chunk, normalised (B, horizon, A)
        self._prev_obs: torch.Tensor | None = None  # last normalised observation (B, D), kept for jump checks

    def _jumped(self, window: dict) -> bool:
        """Whether any normalised observation value moved more than jump_threshold since the last chunk."""
        if self.jump_threshold is None:
            return False
        obs = self.policy._prepare_obs(window, window=True)
        obs_now = torch.cat([v[:, -1].flatten(1) for v in obs.values()], dim=1)
        previous, self._prev_obs = self._prev_obs, obs_now
        if previous is None or previous.shape != obs_now.shape:  # first chunk, or the batch changed
            return True
        return bool((obs_now - previous).abs().max() > self.jump_threshold)

    def _shift(self, chunk: torch.Tensor, k: int) -> torch.Tensor:
        return shift_chunk(chunk, k, self.pad)

    def __call__(self, window: dict) -> torch.Tensor:
        """Observation window (B, n_obs, …) → action chunk (B, horizon, A) in action units."""
        policy = self.policy
        batch = len(next(iter(window.values())))
        jumped = self._jumped(window)
        if self._prev is None or self._prev.shape[0] != batch or jumped:
            x = policy.predict_chunk(window, normalized=True)
            self.full_samples += 1
        else:
            shifted = self._shift(self._prev, policy.config.n_action_steps)
            if self.clip:
                shifted = shifted.clamp(-1.0, 1.0)
            x_init = policy.sampler.add_noise(shifted, torch.randn(shifted.shape).to(shifted), self.start)
            x = policy.predict_chunk(window, noise=x_init, timesteps=self.timesteps, normalized=True)
            self.warm_samples += 1
        self._prev = x
        return policy.normalizer.unnormalize(policy.config.action_key, x)
