import numpy as np

from diffpilot.envs.driving_plot import plot_driving_scene
from diffpilot.sim.planners import PDMClosedPlanner
from diffpilot.sim.scenarios import make_scene

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_driving_scene_writes_png_and_survives_nan(tmp_path):
    scene = make_scene(2_000_000, family="cut_in")
    planner = PDMClosedPlanner()
    chosen = planner.plan(scene)
    proposals = planner.last["proposals"].copy()
    proposals[0, 3] = np.nan  # one broken point
    proposals[1] = np.nan  # one proposal entirely non-finite
    anchors = proposals[2:] + 0.5
    out = tmp_path / "sub" / "bev.png"
    plot_driving_scene(out, scene, proposals=proposals, chosen=chosen, anchors=anchors, title="test")
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000
    assert not list(out.parent.glob(".*tmp"))  # the atomic temp file is gone
