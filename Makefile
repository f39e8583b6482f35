# diffpilot — `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The quick demo: scripted-expert PushT demonstrations → BC diffusion policy → evaluation + video.
DEMO_EPISODES ?= 200
DEMO_EVAL     ?= 50
DEMO_ARGS     ?=

.PHONY: help venv demo demo-full test test-all lint bench bench-inference compat clean ros-deps gl-deps

help:
	@echo "make demo       quick PushT demo: demos, train, evaluate, video (minutes on 2 CPU cores)"
	@echo "make demo-full  the full-size recipe (Diffusion Policy's UNet, 100k steps: hours; a GPU helps)"
	@echo "make test       the test suite (fast; slow tests: make test-all)"
	@echo "make lint       ruff"
	@echo "make bench      benchmarks → bench/results/*.json"
	@echo "make bench-inference  latency vs LeRobot, few-step / RTI / GPC success (trains 3 CPU models: ~4 h)"
	@echo "make compat     LeRobot 0.4.4 / 0.6.1 peer venvs: datasets both ways, policies imported (~14 GB)"

# robomimic and openpi-client (the websocket server's reference client in the tests) go in with --no-deps: robomimic
# declares torch/torchvision that fight the pin, openpi-client declares numpy<2 though its client runs on numpy 2.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps robomimic==0.3.0
	$(BIN)/pip install --quiet --no-deps openpi-client==0.1.2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/diffpilot data episodes=$(DEMO_EPISODES) obs_mode=state output=data/pusht_demo overwrite=true
	$(BIN)/diffpilot train experiment=pusht_demo dataset.root=data/pusht_demo output_dir=runs/demo \
		eval.episodes=$(DEMO_EVAL) eval.videos=2 $(DEMO_ARGS)
	@echo "videos: runs/demo/eval/videos/  ·  TensorBoard: $(BIN)/tensorboard --logdir runs/demo/tensorboard"

demo-full: $(STAMP)
	$(BIN)/diffpilot data episodes=200 obs_mode=all output=data/pusht overwrite=true
	$(BIN)/diffpilot train experiment=pusht_full dataset.root=data/pusht $(DEMO_ARGS)

# ROS 1 from Debian bookworm for the serving tests (tests/test_serve_ros1.py run a real rosmaster): a no-op when
# installed; an apt failure fails the build (the ROS tests are never skipped silently).
ROS_DEBS := python3-rospy python3-rosmaster python3-std-msgs python3-sensor-msgs python3-geometry-msgs
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ros-deps:
	@if dpkg-query -W -f='$${Status}\n' $(ROS_DEBS) 2>/dev/null | grep -qv "install ok installed" \
		|| [ "$$(dpkg-query -W -f='$${Status}\n' $(ROS_DEBS) 2>/dev/null | wc -l)" -ne 5 ]; then \
		echo "installing ROS 1 packages: $(ROS_DEBS)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(ROS_DEBS) \
		|| { echo "ros-deps: apt-get failed; the ROS 1 serving tests need $(ROS_DEBS)" >&2; exit 1; }; \
	fi
	@command -v rosmaster >/dev/null || { echo "ros-deps: rosmaster not on PATH after install" >&2; exit 1; }

# Headless OpenGL for robosuite/MuJoCo camera rendering (MUJOCO_GL=egl; Mesa renders in software without a GPU).
GL_DEBS := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri
gl-deps:
	@if [ "$$(dpkg-query -W -f='$${Status}\n' $(GL_DEBS) 2>/dev/null | grep -c "install ok installed")" -ne 4 ]; then \
		echo "installing headless OpenGL packages: $(GL_DEBS)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(GL_DEBS) \
		|| { echo "gl-deps: apt-get failed; robosuite camera rendering needs $(GL_DEBS)" >&2; exit 1; }; \
	fi

# pytest exits 5 when it collects nothing: that must fail, never pass.
test: $(STAMP) ros-deps gl-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "" ; rc=$$?; [ $$rc -eq 5 ] && exit 1; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/pusht.py

# LeRobot 0.4.4 needs torch < 2.11 and torchvision, so it gets its own peer venv (never made by `make test`).
# The peer install must not see constraints.txt (it pins torch 2.13).
COMPAT_VENV  := .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.installed

# The fast-inference benchmarks: three CPU-trained PushT state models (diffusion, flow and the shortcut flow
# model, configs experiment=pusht_cpu), every sampler's latency beside LeRobot's DiffusionPolicy and its success on
# 200 episodes, then GPC over the first two (bench/results/inference.json, bench/results/compose/).
INFER_D := runs/cpu_diffusion/checkpoints/last/pretrained_model
INFER_F := runs/cpu_flow/checkpoints/last/pretrained_model
INFER_S := runs/cpu_shortcut/checkpoints/last/pretrained_model
INFER_R := runs/cpu_shortcut_rti/checkpoints/step_0001500/pretrained_model   # RTI fine-tune, picked on search seeds
bench-inference: $(STAMP) $(COMPAT_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	test -f data/pusht/meta/info.json || $(BIN)/diffpilot data episodes=200 obs_mode=all output=data/pusht
	test -f $(INFER_D)/config.json || $(BIN)/diffpilot train experiment=pusht_cpu output_dir=runs/cpu_diffusion
	test -f $(INFER_F)/config.json || \
		$(BIN)/diffpilot train experiment=pusht_cpu policy=flow_unet_small output_dir=runs/cpu_flow
	test -f $(INFER_S)/config.json || $(BIN)/diffpilot train experiment=pusht_shortcut_cpu
	$(BIN)/python bench/inference.py --diffusion $(INFER_D) --flow $(INFER_F) --shortcut $(INFER_S) --episodes 200
	test -f $(INFER_R)/config.json || $(BIN)/diffpilot train experiment=pusht_shortcut_rti_cpu
	$(BIN)/python bench/inference.py --shortcut $(INFER_R) --episodes 200 --shapes state --n-action-steps 4 \
		--shortcut-rti-times 0.125 0.625 0.875 --only "shortcut flow-128" shortcut-8 shortcut-4 shortcut-1 \
		"shortcut rti-3 (from t=0.625)" "shortcut rti-3 (t=0.125,0.625,0.875)" \
		--output bench/results/inference_shortcut_rti.json
	$(BIN)/diffpilot compose parents=[$(INFER_D),$(INFER_F)] output_dir=runs/compose
	mkdir -p bench/results/compose && cp runs/compose/compose.json runs/compose/weight_sweep.png bench/results/compose/

$(COMPAT_STAMP): compat/requirements-lerobot.txt
	test -d $(COMPAT_VENV) || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/pip install --quiet -r compat/requirements-lerobot.txt
	$(COMPAT_VENV)/bin/python -c "from lerobot.datasets.lerobot_dataset import LeRobotDataset; \
		from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy"
	touch $(COMPAT_STAMP)

# LeRobot 0.6 needs Python 3.12 (PYTHON312: any python3.12 on PATH, or pyenv's).
PYTHON312     ?= $(shell command -v python3.12 || ls $$HOME/.pyenv/versions/3.12*/bin/python 2>/dev/null | head -1)
COMPAT6_VENV  := .venv-compat6
COMPAT6_STAMP := $(COMPAT6_VENV)/.installed
$(COMPAT6_STAMP): compat/requirements-lerobot-0.6.txt
	test -n "$(PYTHON312)" || { echo "make compat: LeRobot 0.6 needs Python 3.12 (set PYTHON312=...)" >&2; exit 1; }
	test -d $(COMPAT6_VENV) || $(PYTHON312) -m venv $(COMPAT6_VENV)
	$(COMPAT6_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPAT6_VENV)/bin/pip install --quiet -r compat/requirements-lerobot-0.6.txt
	touch $(COMPAT6_STAMP)

compat: $(STAMP) $(COMPAT_STAMP) $(COMPAT6_STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python compat/check_lerobot_compat.py --peer-python $(COMPAT_VENV)/bin/python \
		--policy-peer-python $(COMPAT6_VENV)/bin/python

clean:
	rm -rf runs data/pusht_demo
