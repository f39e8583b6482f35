"""Open-loop evaluation of planners on scenes, the NAVSIM way: one proposal per scene, simulated and scored,
ego progress normalised by the PDM-Closed reference of the same scene, v2's human filter when a human plan
is given."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from diffpilot.sim.frames import previous_frame
from diffpilot.sim.planners import PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.scene import Scene
from diffpilot.sim.scoring import (
    NAVSIM_SCORER,
    ReferenceProgress,
    ScoreBreakdown,
    ScorerConfig,
    ScoringContext,
    aggregate,
    apply_human_filter,
    score_states,
)
from diffpilot.sim.simulate import SimulatedStates


@dataclass
class SceneScorer:
    """Scores proposals of one scene as NAVSIM's pipeline does: the reference plan shares the batch (EP's
    normaliser) and, with a human plan, v2's human penalty filter applies (evaluate/pdm_score.py)."""

    ctx: ScoringContext
    reference: ReferenceProgress
    human: ScoreBreakdown | None = None
    config: ScorerConfig = NAVSIM_SCORER

    @staticmethod
    def of(
        scene: Scene,
        reference_plan: np.ndarray,
        human_plan: np.ndarray | None = None,
        config: ScorerConfig = NAVSIM_SCORER,
    ) -> SceneScorer:
        """`reference_plan`, `human_plan`: (8, 3) proposals; the human plan is scored alone."""
        ctx = ScoringContext(scene)
        ref = score_states(ctx, simulate_in_scene(scene, np.asarray(reference_plan)[None]), config=config)
        human = None
        if human_plan is not None:
            human = score_states(ctx, simulate_in_scene(scene, np.asarray(human_plan)[None]), config=config)
        return SceneScorer(ctx, ReferenceProgress.of(ref), human, config)

    def score(self, states: SimulatedStates, previous: SimulatedStates | None = None) -> ScoreBreakdown:
        s = score_states(self.ctx, states, self.reference, previous, self.config)
        return s if self.human is None else apply_human_filter(s, self.human)


def score_scene_proposals(scene: Scene, proposals: np.ndarray, reference: np.ndarray) -> ScoreBreakdown:
    """Score proposals (B, 8, 3) of one scene; `reference` (8, 3) is PDM-Closed's proposal (EP's yardstick)."""
    return SceneScorer.of(scene, reference).score(simulate_in_scene(scene, proposals))


def evaluate_planners(
    scenes: Sequence[Scene],
    planners: dict[str, Callable[[Scene], np.ndarray]],
    reference: PDMClosedPlanner | None = None,
    two_frame: bool = True,
    human: PDMClosedPlanner | None = None,
) -> dict:
    """Per-scene rows and an aggregate table (means; PDMS/EPDMS in percent) for each planner, with the mean
    planning latency per scene in milliseconds. With `two_frame`, each planner also plans the scene's previous
    frame (0.5 s earlier) and EC compares the two simulated plans, as NAVSIM v2 does; otherwise EC = 1. With a
    `human` planner (the scenes' driver), v2's human penalty filter applies."""
    reference = reference or PDMClosedPlanner()
    rows: dict[str, list[dict]] = {name: [] for name in planners}
    latency: dict[str, list[float]] = {name: [] for name in planners}
    for scene in scenes:
        t0 = time.perf_counter()
        ref = reference.plan(scene)
        ref_ms = (time.perf_counter() - t0) * 1e3
        human_plan = None if human is None else (ref if human is reference else human.plan(scene))
        scorer = SceneScorer.of(scene, ref, human_plan)
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
            s = scorer.score(simulate_in_scene(scene, np.asarray(proposal)[None]), prev_states)
            rows[name].append({"token": scene.token, "family": scene.family, **s.row(0)})
    table = {}
    for name in planners:
        table[name] = aggregate(rows[name])
        table[name]["latency_ms"] = float(np.mean(latency[name]))
    return {"table": table, "rows": rows}
