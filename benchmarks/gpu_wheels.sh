#!/usr/bin/env bash
# Fetch, on a machine with the package index, the wheels that a bare GPU host (Python 3.12, torch, numpy,
# pandas, rich, einops, h5py, scipy, filelock already there) lacks to run offrl's CUDA checks: gymnasium,
# MuJoCo and Minari. Writes them to .whl/ (git-ignored); benchmarks/gpu_check.sh installs them from there
# with --no-index when they are missing.
#
#   bash benchmarks/gpu_wheels.sh [DIR] [PYTHON_VERSION]      # default: .whl 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.whl}
py=${2:-3.12}
mkdir -p "$dir"
python3 -m pip download --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$dir" \
  gymnasium==1.4.0 farama-notifications==0.0.6 minari==0.5.4 \
  mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 glfw==2.11.0 pyopengl==3.1.10 websockets==17.4
du -sh "$dir"
