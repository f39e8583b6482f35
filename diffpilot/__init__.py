"""diffpilot: diffusion and flow action policies for robots and cars."""

__version__ = "0.1.0"
