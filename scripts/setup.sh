#!/usr/bin/env bash
# Set up il_robot in .venv/ on a fresh Debian/Ubuntu machine (idempotent).
#   bash scripts/setup.sh            runtime + ROS 2 wheels + LeRobot export + test tools (+ the ros2 CLI, see below)
#   IL_ROBOT_EXTRAS=train bash ...   also the training extras (torch 2.13.0 CPU, onnx)
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless rendering needs EGL with Mesa (works without a GPU).
missing=()
for pkg in libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (EGL/Mesa for headless MuJoCo rendering)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages for headless rendering: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# The two-host tests build hosts from network namespaces (iproute2) and watch the real interfaces
# with tcpdump; as root they run (CI), otherwise they skip.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  tools=()
  for pkg in iproute2 tcpdump; do dpkg -s "$pkg" >/dev/null 2>&1 || tools+=("$pkg"); done
  if [ ${#tools[@]} -gt 0 ]; then
    echo "installing ${tools[*]} (network namespaces and packet capture for the two-host tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tools[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# ONNX Runtime: the GPU build where nvidia-smi works, else the CPU one; exactly one of them (both
# install the module onnxruntime, so the second overwrites the first and removing either breaks the
# other). A venv that holds the other build (the machine gained or lost its GPU) is cleaned first.
if nvidia-smi >/dev/null 2>&1; then runtime=runtime-gpu; other=onnxruntime; else runtime=runtime; other=onnxruntime-gpu; fi
if .venv/bin/python -m pip show -q "$other" >/dev/null 2>&1; then
  echo "the venv holds $other, the other onnxruntime build: replacing it"
  .venv/bin/python -m pip uninstall -q -y onnxruntime onnxruntime-gpu
fi
extras="ros,$runtime,bags,lerobot,test"
if [ -n "${IL_ROBOT_EXTRAS:-}" ]; then
  # torch first, pinned: an unpinned torch would pull gigabytes of CUDA wheels.
  case ",$IL_ROBOT_EXTRAS," in *,train,*) .venv/bin/python -m pip install -q torch==2.13.0 ;; esac
  extras="$extras,$IL_ROBOT_EXTRAS"
fi
.venv/bin/python -m pip install -q -e ".[$extras]"
# The real ROS 2 command line (ros2 launch/run/param/topic; not on PyPI: wheels built from upstream), when
# a checkout of them is at hand (CI has ../shared/ros2-cli); the launch tests need it.
ros2_cli=${IL_ROBOT_ROS2_CLI:-../shared/ros2-cli}
if [ -f "$ros2_cli/install.sh" ]; then
  bash "$ros2_cli/install.sh" .venv
else
  echo "no ROS 2 CLI wheels at $ros2_cli (set IL_ROBOT_ROS2_CLI): ros2 launch tests will be skipped"
fi
# .venv as an ament prefix holding il_robot, for `ros2 launch il_robot ...` (source scripts/ros2_env.sh).
.venv/bin/python -m il_robot.ament_prefix >/dev/null
echo "il_robot is set up in $(pwd)/.venv"
