#!/usr/bin/env bash
# A venv with LeRobot's own dataset loader, to check `il-robot dataset export --format lerobot` (idempotent).
#   bash scripts/lerobot_check_venv.sh          builds .venv-lerobot/ (or $IL_ROBOT_LEROBOT_VENV), prints its python
# lerobot 0.4.4 pins torch<2.11 and an unpinned torch from PyPI pulls gigabytes of CUDA wheels, so
# nothing here lets pip resolve torch: the venv gets our torch 2.13.0 CPU wheel and lerobot without its
# dependencies, then only what LeRobotDataset needs to read a v3 dataset back (parquet, video decoding).
# torchcodec decodes the videos (torchvision 0.28 has no video reader left); it needs FFmpeg's shared
# libraries (Debian's, installed here as root when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${IL_ROBOT_LEROBOT_VENV:-.venv-lerobot}
STAMP="$VENV/.il_robot-lerobot-check"
# What the venv holds; a change here (or below) rebuilds it. torchcodec 0.13 is the one built for torch 2.13.
PINS="torch==2.13.0 torchvision==0.28.0 torchcodec==0.13.0 lerobot==0.4.4"
# What lerobot.datasets imports, in the ranges lerobot 0.4.4 declares.
DEPS=("datasets>=4,<5" "huggingface-hub>=0.34.2,<0.36" "accelerate>=1.10,<2" "av>=15,<16" "packaging>=24.2,<26"
      "pyarrow" "pandas" "fsspec" "pillow")

WANT="$PINS ${DEPS[*]}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import lerobot" 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi

missing=()
for pkg in libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (FFmpeg's libraries, for torchcodec)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "missing FFmpeg libraries for torchcodec: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ -e "$VENV" ]; then
  [ -f "$VENV/pyvenv.cfg" ] || { echo "$VENV exists and is not a venv; not replacing it" >&2; exit 1; }
  rm -rf "$VENV"
fi
"$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# torch's own dependencies are small (sympy, networkx, jinja2, filelock, fsspec); torch itself is the CPU wheel.
"${pip[@]}" torch==2.13.0
"${pip[@]}" "${DEPS[@]}"
# Last and without dependencies: their declared torch pins are the ones this venv must not follow.
echo "(pip may warn that lerobot wants torch<2.11: expected, the CPU torch 2.13 is what this venv holds)" >&2
# shellcheck disable=SC2086
"${pip[@]}" --no-deps ${PINS#torch==2.13.0 }
# The loader imports as test/lerobot_read_back.py imports it (torchvision's ops cannot load: see there).
"$VENV/bin/python" -c "import sys; sys.path.insert(0, 'test'); import lerobot_read_back as r
r.import_torchvision_without_its_ops(); import torchcodec.decoders, lerobot.datasets.lerobot_dataset" >&2
echo "$WANT" > "$STAMP"
echo "$VENV/bin/python"
