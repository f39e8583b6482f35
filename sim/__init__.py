"""Simulators the project owns (NAVSIM-style driving); numpy only, no torch."""
