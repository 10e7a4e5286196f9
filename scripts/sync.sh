#!/usr/bin/env bash
# Scheduled CVAT sync: one pass of `cvat-track sync --once`, safe to run from cron or systemd.
#
#   scripts/sync.sh [extra cvat-track sync options]
#
# Environment:
#   CVAT_TRACK_HOME    folder holding serverless.yaml and .cvat-track/ (default: repo root)
#   CVAT_TRACK_VENV    virtualenv to use (default: $CVAT_TRACK_HOME/.venv, if present)
#   CVAT_TRACK_ENV     file with secrets to source (default: $CVAT_TRACK_HOME/.cvat-track/env),
#                      e.g. `CVAT_ACCESS_TOKEN=...`; keep it chmod 600. Never pass secrets
#                      on the command line (they would show in `ps`).
#
# A lock (flock) keeps two scheduled passes on one machine from overlapping; several machines
# may still share the job queue through a PostgreSQL state store (sync.state.path), where job
# leases keep them apart. An interrupted pass is resumed by the next one.
set -euo pipefail

HOME_DIR="${CVAT_TRACK_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$HOME_DIR"
VENV="${CVAT_TRACK_VENV:-$HOME_DIR/.venv}"
if [[ -x "$VENV/bin/cvat-track" ]]; then
  CVAT_TRACK="$VENV/bin/cvat-track"
else
  CVAT_TRACK="$(command -v cvat-track)"
fi
ENV_FILE="${CVAT_TRACK_ENV:-$HOME_DIR/.cvat-track/env}"
if [[ -f "$ENV_FILE" ]]; then
  set -a
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  set +a
fi
mkdir -p .cvat-track
exec 9>.cvat-track/sync.lock
if ! flock -n 9; then
  echo "cvat-track sync: another pass is still running; skipping this one" >&2
  exit 0
fi
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 HF_HUB_OFFLINE=1
exec "$CVAT_TRACK" sync --once --config "$HOME_DIR/serverless.yaml" \
  --json "$HOME_DIR/.cvat-track/last-run.json" "$@"
