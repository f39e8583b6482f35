"""Environments (Gymnasium) and scripted experts. Never imports policies: evaluation takes any object
with `reset()` and `select_action(obs)`."""
