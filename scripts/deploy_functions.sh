#!/usr/bin/env bash
# Deploy the Nuclio functions listed in serverless.yaml into CVAT's Nuclio project,
# like CVAT's own serverless/deploy_cpu.sh.
#
#   scripts/deploy_functions.sh [--gpu] [--platform local|kube] [--manifest FILE] [NAME...]
#
# The manifest is read by `python -m cvat_extension.adapters.nuclio.manifest` so the shell
# never parses YAML. CVAT_FUNCTIONS_REDIS_HOST/PORT are passed on when set (state sharing).
set -euo pipefail

platform=local
manifest=serverless.yaml
gpu=()
names=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpu) gpu=(--gpu); shift ;;
    --platform) platform="$2"; shift 2 ;;
    --manifest) manifest="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) names+=("$1"); shift ;;
  esac
done

command -v nuctl >/dev/null || { echo "nuctl not found: install Nuclio's CLI (see CVAT's serverless docs)" >&2; exit 2; }
nuctl create project cvat --platform "$platform" >/dev/null 2>&1 || true

lines=$(python -m cvat_extension.adapters.nuclio.manifest "$manifest" "${gpu[@]}" ${names:+--only "${names[@]}"})
while IFS=$'\t' read -r name path file replicas envs; do
  [[ -z "$name" ]] && continue
  echo "Deploying $name ($path/$file, $replicas replica(s))"
  args=(--project-name cvat --path "$path" --file "$path/$file" --platform "$platform"
        --min-replicas "$replicas" --max-replicas "$replicas")
  if [[ -n "$envs" ]]; then
    IFS=',' read -ra pairs <<< "$envs"
    for pair in "${pairs[@]}"; do args+=(--env "$pair"); done
  fi
  [[ -n "${CVAT_FUNCTIONS_REDIS_HOST:-}" ]] && args+=(--env "CVAT_FUNCTIONS_REDIS_HOST=$CVAT_FUNCTIONS_REDIS_HOST")
  [[ -n "${CVAT_FUNCTIONS_REDIS_PORT:-}" ]] && args+=(--env "CVAT_FUNCTIONS_REDIS_PORT=$CVAT_FUNCTIONS_REDIS_PORT")
  nuctl deploy "$name" "${args[@]}"
done <<< "$lines"

nuctl get function --platform "$platform"
