"""`diffpilot <command> [hydra overrides]`: data | dataset | train | eval | compose | serve | export | import | info |
rl. Each command is a Hydra app, so any config value is overridable the way Hydra users expect
(`diffpilot train train.steps=500`)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "data": ("diffpilot.commands.data", "Make scripted-expert demonstrations as a LeRobot v3 dataset"),
    "dataset": ("diffpilot.commands.dataset", "Inspect and edit a dataset: info | viz | split | merge | convert"),
    "train": ("diffpilot.commands.train", "Train a diffusion / flow policy by behaviour cloning"),
    "eval": ("diffpilot.commands.evaluate", "Evaluate a trained policy: success rate, CI, videos"),
    "compose": ("diffpilot.commands.compose", "GPC: search convex weights over trained policies, save the mix"),
    "serve": ("diffpilot.commands.serve", "Serve a policy on a robot (ROS 1/2) or replay a bag through it"),
    "export": ("diffpilot.commands.export", "Export a policy's chunk planner to ONNX (parity with torch checked)"),
    "import": ("diffpilot.commands.importer", "Import a LeRobot DiffusionPolicy checkpoint as a diffpilot policy"),
    "info": ("diffpilot.commands.info", "Total / active parameters and FLOPs per chunk of a policy or checkpoint"),
    "rl": ("diffpilot.commands.rl", "Improve a trained policy with RL: algo=dsrl_sac | dsrl_na | dppo | gspo | grpo"),
}


def usage() -> str:
    lines = ["usage: diffpilot <command> [key=value …] [--help | --cfg job]", "", "commands:"]
    lines += [f"  {name:<7} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Configs live in diffpilot/configs (Hydra); `diffpilot <command> --help` lists them."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"diffpilot: unknown command {name!r}; expected one of {sorted(COMMANDS)}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"diffpilot-{name}", *argv[1:]]
    module.app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
