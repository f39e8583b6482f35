"""mp4 writing for rollout videos (H.264 through PyAV), written to a temp file then renamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpilot.atomic import atomic_path


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: int = 10) -> None:
    """frames: list of (H, W, 3) uint8, H and W even (cropped by one pixel if not)."""
    import av  # imported here: evaluation without videos needs no video codec

    if not frames:
        raise ValueError(f"{path}: no frames to write")
    h, w = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            img = np.ascontiguousarray(frame[:h, :w, :3])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
