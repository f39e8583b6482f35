"""Optional Weights & Biases logging (offline mode): a training run's scalars, its final evaluation's video and the
run config reach the W&B run beside TensorBoard."""

from __future__ import annotations

from .conftest import diffpilot
from .wandb_records import logged


def test_a_training_run_logs_to_wandb_offline(tmp_path, lerobot_dataset):
    run = tmp_path / "run"
    proc = diffpilot(
        "train", f"dataset.root={lerobot_dataset}", f"output_dir={run}", "train.steps=4", "train.batch_size=4",
        "train.warmup_steps=1", "train.log_every=2", "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16", "policy.network.n_groups=4", "policy.sampler.num_inference_steps=2",
        "eval.episodes=2", "eval.n_envs=2", "eval.videos=1", "task.max_episode_steps=10",
        "wandb.enabled=true", "wandb.mode=offline", "wandb.name=tiny",
        env_extra={"WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (offline,) = (run / "wandb").glob("offline-run-*")
    history, summary, config = logged(next(offline.glob("run-*.wandb")))
    assert [row["step"] for row in history if "train/loss" in row] == [2, 4]
    assert summary["train_steps"] == 4 and summary["eval/success_rate"] == 0
    assert summary["eval/video_episode_100000/_type"] == "video-file"
    assert list((offline / "files" / "media" / "videos").rglob("*.mp4"))
    assert config["train"]["steps"] == 4 and config["wandb"]["mode"] == "offline"
    assert any((run / "tensorboard").iterdir())  # TensorBoard as before


def test_bad_wandb_settings_are_named(tmp_path):
    proc = diffpilot("train", "wandb.mode=cloud", f"output_dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and proc.stderr.strip() == "diffpilot: wandb.mode='cloud': expected online or offline"


def test_a_resumed_run_continues_its_wandb_run(tmp_path, lerobot_dataset):
    run = tmp_path / "run"
    common = [
        f"dataset.root={lerobot_dataset}", f"output_dir={run}", "train.batch_size=4", "train.warmup_steps=1",
        "train.log_every=2", "train.save_every=2", "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16", "policy.network.n_groups=4", "wandb.enabled=true", "wandb.mode=offline",
    ]  # fmt: skip
    env = {"WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    assert diffpilot("train", *common, "train.steps=4", env_extra=env).returncode == 0
    proc = diffpilot("train", *common, "train.steps=4", f"resume={run}/checkpoints/step_0000002", env_extra=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and len({p.name.rsplit("-", 1)[1] for p in runs}) == 1  # one W&B run id
