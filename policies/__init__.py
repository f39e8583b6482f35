"""Policies: samplers (noise -> action chunk), denoiser networks, datasets and the BC trainer."""
