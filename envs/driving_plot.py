"""Bird's-eye view (BEV) picture of one driving scene in the ego frame: drivable area, lanes, traffic lights,
other agents (boxes now, faint futures), the ego, and optionally a planner's proposals, a policy's anchors and
the chosen trajectory. Matplotlib with the Agg backend (no display needed); the PNG is written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpilot.atomic import atomic_path
from diffpilot.sim.geometry import box_corners
from diffpilot.sim.scene import AgentClass, LightState, Scene
from diffpilot.sim.vehicle import PACIFICA, ego_corners

_AGENT_COLORS = {
    AgentClass.VEHICLE: "tab:blue",
    AgentClass.PEDESTRIAN: "tab:orange",
    AgentClass.CYCLIST: "tab:purple",
    AgentClass.STATIC: "dimgray",
}
_LIGHT_COLORS = {LightState.GREEN: "limegreen", LightState.YELLOW: "gold", LightState.RED: "red"}


def _as_trajectories(trajs) -> np.ndarray:
    """(P, T, 2) x, y of one trajectory (T, >=2) or a set (P, T, >=2), each starting from the ego (origin)."""
    a = np.asarray(trajs, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] < 2:
        raise ValueError(f"plot_driving_scene: expected trajectories of shape (T, >=2) or (P, T, >=2), got {a.shape}")
    xy = a[..., :2]
    start = np.zeros((len(xy), 1, 2))
    return np.concatenate([start, xy], axis=1)


def _view_limits(trajs: list[np.ndarray]) -> tuple[float, float, float, float]:
    """x / y limits covering the ego, every finite trajectory point and a margin, within a sane window."""
    pts = [np.array([[-10.0, -6.0], [40.0, 6.0]])]
    for t in trajs:
        flat = t.reshape(-1, 2)
        pts.append(flat[np.isfinite(flat).all(-1)])
    p = np.concatenate(pts)
    p = np.clip(p, -100.0, 100.0)
    lo, hi = p.min(0) - 8.0, p.max(0) + 8.0
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def plot_driving_scene(
    path: str | Path,
    scene: Scene,
    proposals=None,
    chosen=None,
    anchors=None,
    title: str = "",
) -> None:
    """Write a BEV PNG of `scene` to `path` (atomically).

    proposals: (P, T, >=2) trajectories (thin lines), e.g. PDM-Closed's 15 (P, 8, 3) proposals;
    chosen: (T, >=2) the selected trajectory (thick); anchors: (K, T, >=2) e.g. DiffusionDrive's anchors
    (dashed). All in the ego frame at the current time (rear axle at the origin, +x forward); each is drawn
    from the origin. Non-finite points break a line rather than failing the plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon

    mp, ag, c = scene.map, scene.agents, scene.current_index
    props = _as_trajectories(proposals) if proposals is not None else None
    anch = _as_trajectories(anchors) if anchors is not None else None
    best = _as_trajectories(chosen) if chosen is not None else None
    x0, x1, y0, y1 = _view_limits([t for t in (props, anch, best) if t is not None])

    height = float(np.clip(10.0 * (y1 - y0) / max(x1 - x0, 1e-6), 3.0, 12.0)) + 1.2
    fig, ax = plt.subplots(figsize=(10, height))
    ax.set_facecolor("#e9e9e9")

    # drivable area (road and intersection surfaces), then lanes
    for a in range(len(mp.area_polygons)):
        poly = mp.area_polygons[a, : mp.area_polygon_num[a]]
        if len(poly) >= 3:
            face = "#ffffff" if int(mp.area_kinds[a]) == 0 else "#f6f3ea"
            ax.add_patch(Polygon(poly, closed=True, facecolor=face, edgecolor="#bdbdbd", lw=0.6, zorder=0))
    for lane in range(mp.num_lanes):
        poly = mp.lane_polygons[lane, : mp.lane_polygon_num[lane]]
        if len(poly) >= 3:
            ax.add_patch(Polygon(poly, closed=True, fill=False, edgecolor="#c8c8c8", lw=0.5, zorder=1))
        pts = mp.lane_points(lane)
        style = ":" if bool(mp.lane_is_connector[lane]) else "--"
        ax.plot(pts[:, 0], pts[:, 1], style, color="#9e9e9e", lw=0.6, zorder=1)
    if len(mp.route_centerline):
        ax.plot(*mp.route_centerline.T, color="#8fbc8f", lw=3.0, alpha=0.35, zorder=1, solid_capstyle="round")

    # traffic lights: stop regions coloured by the current state
    for k in range(len(mp.light_lanes)):
        state = LightState(int(mp.light_states[k, c]))
        color = _LIGHT_COLORS.get(state, "lightgray")
        ax.add_patch(Polygon(mp.light_stop_polygons[k], closed=True, facecolor=color, alpha=0.8, zorder=2))

    # other agents: faint future, box now (with a heading tick)
    for i in range(ag.num):
        color = _AGENT_COLORS.get(AgentClass(int(ag.classes[i])), "tab:blue")
        fut = ag.valid[i, c:]
        if fut.sum() > 1:
            xy = np.where(fut[:, None], ag.poses[i, c:, :2], np.nan)
            ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1.5, alpha=0.35, zorder=3)
        if not ag.valid[i, c]:
            continue
        x, y, h = ag.poses[i, c]
        corners = box_corners(np.array([x, y]), np.array(h), ag.sizes[i, 0], ag.sizes[i, 1])
        ax.add_patch(Polygon(corners, closed=True, facecolor=color, edgecolor="black", lw=0.6, alpha=0.75, zorder=4))
        tip = np.array([x, y]) + 0.5 * ag.sizes[i, 0] * np.array([np.cos(h), np.sin(h)])
        ax.plot([x, tip[0]], [y, tip[1]], color="black", lw=0.6, zorder=4)

    # ego history and box
    hist = scene.ego.history_poses
    ax.plot(hist[:, 0], hist[:, 1], color="darkred", lw=1.0, alpha=0.5, zorder=5)
    ego = ego_corners(np.zeros((1, 3)))[0]
    ax.add_patch(Polygon(ego, closed=True, facecolor="tab:red", edgecolor="black", lw=0.8, zorder=6))
    ax.plot([0.0, PACIFICA.rear_axle_to_center + 0.5 * PACIFICA.length], [0.0, 0.0], color="black", lw=0.8, zorder=6)

    handles = [
        Polygon(np.zeros((3, 2)), facecolor="tab:red", edgecolor="black", label="ego"),
        Polygon(np.zeros((3, 2)), facecolor="tab:blue", edgecolor="black", alpha=0.75, label="agents (now)"),
    ]
    if anch is not None:
        for t in anch:
            ax.plot(t[:, 0], t[:, 1], "--", color="tab:cyan", lw=0.9, alpha=0.8, zorder=7)
        handles.append(Line2D([], [], ls="--", color="tab:cyan", label=f"anchors ({len(anch)})"))
    if props is not None:
        for t in props:
            ax.plot(t[:, 0], t[:, 1], "-", color="tab:green", lw=0.8, alpha=0.7, zorder=8)
            ax.plot(t[1:, 0], t[1:, 1], ".", color="tab:green", ms=2.0, alpha=0.7, zorder=8)
        handles.append(Line2D([], [], color="tab:green", lw=0.8, label=f"proposals ({len(props)})"))
    if best is not None:
        for t in best:
            ax.plot(t[:, 0], t[:, 1], "-", color="magenta", lw=3.0, zorder=9, solid_capstyle="round")
            ax.plot(t[1:, 0], t[1:, 1], "o", color="magenta", mec="black", mew=0.5, ms=4.0, zorder=9)
        handles.append(Line2D([], [], color="magenta", lw=3.0, label="chosen"))

    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x (m, ego frame, forward)")
    ax.set_ylabel("y (m, left)")
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    ax.set_title(title or f"{scene.token}  ({scene.family})", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
