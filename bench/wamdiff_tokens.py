"""WAM-Diff's trajectory tokens, measured before any model: the demonstrator's plans on the test scenes scored as
NAVSIM scores them (PDMS, EPDMS and every sub-score, comfort included), then the same plans after encode → decode
(the tokeniser's floor: the best a perfect token predictor could score), then with the mistakes a token predictor
makes: one coarse digit (0.1 m or 0.1 rad) off by one class at a random pose and channel, and every fine digit
redrawn at random (errors up to 0.09 m / rad), each applied to every scene with a fixed seed.

  python bench/wamdiff_tokens.py --scenes 500      # → bench/results/wamdiff.json "tokeniser_floor"
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

from diffpilot.atomic import update_json
from diffpilot.envs.driving import BuiltinPlanner, evaluate_open_loop, scored_split
from diffpilot.policies.driving import trajectory_tokens as tt

RESULTS = Path(__file__).resolve().parent / "results"


class Demonstrator(BuiltinPlanner):
    """The privileged PDM-Closed planner that wrote the demonstrations, its plans passed through `transform`
    ((N, 8, 3) → (N, 8, 3)) before the open-loop protocol scores them (the previous frame's plan too, for EC)."""

    def __init__(self, transform: Callable[[np.ndarray], np.ndarray]):
        super().__init__("pdm_closed_privileged")
        self.transform = transform

    def plan_scenes(self, scenes) -> np.ndarray:
        return self.transform(super().plan_scenes(scenes))


def round_trip(plans: np.ndarray) -> np.ndarray:
    """(N, 8, 3) plans → tokens → plans."""
    return tt.decode(tt.encode(plans)).numpy()


def coarse_slip(plans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One coarse digit per plan (random pose and channel) one class up or down; the rest decoded exactly."""
    tokens = tt.encode(plans).clone()
    rows = torch.arange(len(tokens))
    coarse = (~tt.position_is_fine()).nonzero().squeeze(1)
    positions = coarse[torch.as_tensor(rng.integers(len(coarse), size=len(tokens)))]
    step = torch.as_tensor(rng.choice([-1, 1], size=len(tokens)))
    tokens[rows, positions] = (tokens[rows, positions] + step).clamp(0, tt.COARSE_CLASSES - 1)
    return tt.decode(tokens).numpy()


def fine_redrawn(plans: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every fine digit drawn uniformly (a predictor that gets the coarse digits right and guesses the fine ones)."""
    tokens = tt.encode(plans).clone()
    fine = tt.position_is_fine()
    guesses = torch.as_tensor(rng.integers(tt.FINE_CLASSES, size=(len(tokens), int(fine.sum()))))
    tokens[:, fine] = tt.FINE_OFFSET + guesses
    return tt.decode(tokens).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "wamdiff.json")
    args = parser.parse_args()
    start = time.perf_counter()
    scenes, references, humans = scored_split("test", args.scenes, True)
    plans = np.stack(humans)
    rng = np.random.default_rng(args.seed)
    variants = {
        "demonstrator": lambda p: p,
        "digits_0.01_round_trip": round_trip,
        "one_coarse_digit_off_by_one": lambda p: coarse_slip(p, rng),
        "fine_digits_guessed": lambda p: fine_redrawn(p, rng),
    }
    rows = {}
    for name, transform in variants.items():
        result = evaluate_open_loop(
            Demonstrator(transform), scenes, 64, reference_plans=references, two_frame=True, human_plans=humans
        )
        table = result.table()
        table["max_abs_change"] = float(np.abs(transform(plans) - plans).max())
        rows[name] = table
        print(f"{name}: PDMS {table['pdms']:.1f}, EPDMS {table['epdms']:.1f}, C {table.get('c', float('nan')):.3f}")
    update_json(args.output, tokeniser_floor={
        "tokens": "digits_0.01 (coarse 0.1 + fine 0.01 per coordinate, 48 positions)",
        "split": "test", "scenes": len(scenes), "rows": rows,
        "command": "python bench/wamdiff_tokens.py " + " ".join(sys.argv[1:]),
        "seconds": time.perf_counter() - start, "measured": date.today().isoformat(),
    })  # fmt: skip
    print(f"wrote {args.output} (tokeniser_floor)")


if __name__ == "__main__":
    main()
