"""Simulators the project owns (NAVSIM-style driving); numpy and scipy only, no torch.

scene        typed records (map, agents, ego) and validation; scene_io: .npz + JSON files, atomic writes
scenarios    seeded scenario families, train/val/test seed splits, follow-up scenes 4 s later
geometry     boxes, polygons, polylines; vehicle: the ego's box; idm: the IDM car-following law
simulate     LQR tracker + kinematic bicycle (proposal -> 41 states)
comfort      comfort bounds (C, HC) and two-frame extended comfort (EC)
scoring      PDMS / EPDMS sub-scores as NAVSIM computes them; evaluate: planners on scenes (SceneScorer);
             frames: the previous frame of a scene; aggregation: NAVSIM v2's two-stage score;
             two_stage: a scene's two-stage group (frames, follow-ups, scorers) scored for one planner
reactive     NAVSIM v2's reactive IDM traffic
planners     constant velocity and PDM-Closed (NAVSIM's and the privileged one)
"""
