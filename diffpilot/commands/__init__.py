"""One module per `diffpilot` command; each exposes `app()`, a Hydra entry point."""
