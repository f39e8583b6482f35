"""Open-loop evaluation of planners on scenes, the NAVSIM way: one proposal per scene, simulated and scored,
ego progress normalised by the PDM-Closed reference of the same scene, v2's human filter when a human plan
is given."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from diffpilot.sim.frames import previous_frame
from diffpilot.sim.planners import PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.reactive import with_reactive_traffic
from diffpilot.sim.scene import Scene
from diffpilot.sim.scoring import (
    NAVSIM_SCORER,
    TRAFFIC,
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
    normaliser) and, with a human plan, v2's human penalty filter applies (evaluate/pdm_score.py; give no human
    plan for synthetic follow-up scenes: NAVSIM filters original scenes only). traffic="reactive": each proposal
    is scored in a world whose vehicles react to it (sim/reactive.py), the reference in that same world, the
    human in its own."""

    scene: Scene
    reference_states: SimulatedStates
    human: ScoreBreakdown | None = None
    config: ScorerConfig = NAVSIM_SCORER
    traffic: str = "log_replay"
    ctx: ScoringContext = field(init=False)  # log replay: the one world every proposal is scored in
    reference: ReferenceProgress = field(init=False)

    def __post_init__(self):
        if self.traffic not in TRAFFIC:
            raise ValueError(f"traffic={self.traffic!r}: expected one of {TRAFFIC}")
        if self.traffic == "log_replay":  # one world for every proposal
            self.ctx = ScoringContext(self.scene)
            self.reference = ReferenceProgress.of(score_states(self.ctx, self.reference_states, config=self.config))

    @staticmethod
    def of(
        scene: Scene,
        reference_plan: np.ndarray,
        human_plan: np.ndarray | None = None,
        config: ScorerConfig = NAVSIM_SCORER,
        traffic: str = "log_replay",
    ) -> SceneScorer:
        """`reference_plan`, `human_plan`: (8, 3) proposals; the human plan is scored alone."""
        ref_states = simulate_in_scene(scene, np.asarray(reference_plan)[None])
        scorer = SceneScorer(scene, ref_states, None, config, traffic)
        if human_plan is not None:
            human_states = simulate_in_scene(scene, np.asarray(human_plan)[None])
            scorer.human = score_states(scorer.world(human_states), human_states, config=config)
        return scorer

    def world(self, states: SimulatedStates) -> ScoringContext:
        """The scoring context one simulated plan (one row) is scored in."""
        if self.traffic == "log_replay":
            return self.ctx
        reactive = with_reactive_traffic(self.scene, states.poses[0], states.speed[0])
        return ScoringContext(reactive, traffic="reactive")

    def score(self, states: SimulatedStates, previous: SimulatedStates | None = None) -> ScoreBreakdown:
        if self.traffic == "log_replay":
            s = score_states(self.ctx, states, self.reference, previous, self.config)
        else:
            rows = []
            for i in range(len(states)):
                one = states.take([i])
                ctx = self.world(one)
                ref = ReferenceProgress.of(score_states(ctx, self.reference_states, config=self.config))
                prev = previous.take([i]) if previous is not None else None
                rows.append(score_states(ctx, one, ref, prev, self.config))
            s = ScoreBreakdown.concat(rows)
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
    traffic: str = "log_replay",
) -> dict:
    """Per-scene rows and an aggregate table (means; PDMS/EPDMS in percent) for each planner, with the mean
    planning latency per scene in milliseconds. With `two_frame`, each planner also plans the scene's previous
    frame (0.5 s earlier) and EC compares the two simulated plans, as NAVSIM v2 does; otherwise EC = 1. With a
    `human` planner (the scenes' driver), v2's human penalty filter applies. `traffic`: log_replay | reactive."""
    reference = reference or PDMClosedPlanner()
    rows: dict[str, list[dict]] = {name: [] for name in planners}
    latency: dict[str, list[float]] = {name: [] for name in planners}
    for scene in scenes:
        t0 = time.perf_counter()
        ref = reference.plan(scene)
        ref_ms = (time.perf_counter() - t0) * 1e3
        human_plan = None if human is None else (ref if human is reference else human.plan(scene))
        scorer = SceneScorer.of(scene, ref, human_plan, traffic=traffic)
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
