"""Open-loop evaluation of planners on scenes, the NAVSIM v1 way: one proposal per scene, simulated and
scored, ego progress normalised by the PDM-Closed reference of the same scene."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from diffpilot.sim.frames import previous_frame
from diffpilot.sim.planners import PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.scene import Scene
from diffpilot.sim.scoring import ScoreBreakdown, ScoringContext, aggregate, masked_progress, score_states


def score_scene_proposals(
    scene: Scene, proposals: np.ndarray, reference: np.ndarray, ctx: ScoringContext | None = None
) -> ScoreBreakdown:
    """Score proposals (B, 8, 3) of one scene; `reference` (8, 3) is PDM-Closed's proposal (EP's yardstick)."""
    ctx = ctx or ScoringContext(scene)
    ref_scores = score_states(ctx, simulate_in_scene(scene, np.asarray(reference)[None]))
    ref_progress = float(masked_progress(ref_scores)[0])
    return score_states(ctx, simulate_in_scene(scene, proposals), reference_progress=ref_progress)


def evaluate_planners(
    scenes: Sequence[Scene],
    planners: dict[str, Callable[[Scene], np.ndarray]],
    reference: PDMClosedPlanner | None = None,
    two_frame: bool = True,
) -> dict:
    """Per-scene rows and an aggregate table (means; PDMS/EPDMS in percent) for each planner, with the mean
    planning latency per scene in milliseconds. With `two_frame`, each planner also plans the scene's previous
    frame (0.5 s earlier) and EC compares the two simulated plans, as NAVSIM v2 does; otherwise EC = 1."""
    reference = reference or PDMClosedPlanner()
    rows: dict[str, list[dict]] = {name: [] for name in planners}
    latency: dict[str, list[float]] = {name: [] for name in planners}
    for scene in scenes:
        t0 = time.perf_counter()
        ref = reference.plan(scene)
        ref_ms = (time.perf_counter() - t0) * 1e3
        ctx = ScoringContext(scene)
        ref_scores = score_states(ctx, simulate_in_scene(scene, ref[None]))
        ref_progress = float(masked_progress(ref_scores)[0])
        for name, plan in planners.items():
            if plan == reference.plan:
                proposal, ms = ref, ref_ms
            else:
                t0 = time.perf_counter()
                proposal = plan(scene)
                ms = (time.perf_counter() - t0) * 1e3
            latency[name].append(ms)
            prev_states = None
            if two_frame:
                prev = previous_frame(scene)
                prev_states = simulate_in_scene(prev, np.asarray(plan(prev))[None])
            s = score_states(
                ctx,
                simulate_in_scene(scene, np.asarray(proposal)[None]),
                reference_progress=ref_progress,
                previous=prev_states,
            )
            rows[name].append({"token": scene.token, "family": scene.family, **s.row(0)})
    table = {}
    for name in planners:
        table[name] = aggregate(rows[name])
        table[name]["latency_ms"] = float(np.mean(latency[name]))
    return {"table": table, "rows": rows}
