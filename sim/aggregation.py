"""NAVSIM v2's two-stage (pseudo closed-loop) aggregation of scene scores.

Stage one scores the agent's plan for a scene (t = 0) and for its previous frame (t = -0.5 s). Stage two
scores follow-up scenes that start 4 s later (and their own previous frames), each from a different ego start
point; a follow-up counts by how close its start point is to where the agent's stage-one plan ended:

    w_j = exp(-|endpoint - start_j|^2 / (2 sigma^2)) / sum_k exp(...),   sigma^2 = 0.1 m^2

(scene_aggregator.py ``SceneAggregator.calculate_pseudo_closed_loop_weights``; uniform weights when the sum
is close to 0 by ``np.isclose`` or NaN). Per group and for every score column
(run_pdm_score.py ``calculate_individual_mapping_scores``):

    group = (now x sum_j w_j follow_now_j + previous x sum_j w'_j follow_previous_j) / 2

and the benchmark's value is the mean over groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SIGMA_SQUARED = 0.1


def pseudo_closed_loop_weights(
    endpoint: np.ndarray, start_points: np.ndarray, sigma_squared: float = SIGMA_SQUARED
) -> np.ndarray:
    """(M,) weights of M follow-up scenes from the stage-one plan's endpoint (2,) and their start points (M, 2)."""
    start_points = np.asarray(start_points, dtype=np.float64).reshape(-1, 2)
    d2 = ((start_points - np.asarray(endpoint, dtype=np.float64)) ** 2).sum(-1)
    w = np.exp(-d2 / (2.0 * sigma_squared))
    total = w.sum()
    if np.isclose(total, 0.0) or np.isnan(total):
        return np.full(len(w), 1.0 / len(w))
    return w / total


@dataclass(frozen=True)
class StageOneFrame:
    """The agent's scores for one stage-one frame and where its plan ended (2,) (the frame all points share)."""

    scores: Mapping[str, float]
    endpoint: np.ndarray


@dataclass(frozen=True)
class FollowUp:
    """One follow-up scene's scores and the ego's start point (2,) in that shared frame."""

    scores: Mapping[str, float]
    start_point: np.ndarray


def _weighted(follow_ups: Sequence[FollowUp], weights: np.ndarray, key: str) -> float:
    return float(sum(w * f.scores[key] for w, f in zip(weights, follow_ups, strict=True)) / weights.sum())


@dataclass(frozen=True)
class TwoStageScores:
    """One group's value of every score column, and its stage means (run_pdm_score.py returns all three):
    stage_one = mean of the two stage-one frames, stage_two = mean of their weighted follow-ups."""

    group: dict[str, float]
    stage_one: dict[str, float]
    stage_two: dict[str, float]


def two_stage_group(
    now: StageOneFrame,
    previous: StageOneFrame,
    follow_now: Sequence[FollowUp],
    follow_previous: Sequence[FollowUp],
    keys: Sequence[str],
) -> TwoStageScores:
    """The two-stage value of every score column in `keys` for one scene and its previous frame."""
    w_now = pseudo_closed_loop_weights(now.endpoint, np.array([f.start_point for f in follow_now]))
    w_prev = pseudo_closed_loop_weights(previous.endpoint, np.array([f.start_point for f in follow_previous]))
    group, one, two = {}, {}, {}
    for key in keys:
        second_now, second_prev = _weighted(follow_now, w_now, key), _weighted(follow_previous, w_prev, key)
        group[key] = 0.5 * (now.scores[key] * second_now + previous.scores[key] * second_prev)
        one[key] = 0.5 * (now.scores[key] + previous.scores[key])
        two[key] = 0.5 * (second_now + second_prev)
    return TwoStageScores(group, one, two)
