#!/usr/bin/env bash
# A sharded run on a real Kubernetes cluster, end to end, for users who have one (CI has none:
# the contract tests in tests/it/shards.rs run the same pods' command locally).
#
#   scripts/k8s-smoke.sh SCENARIO IMAGE [SHARDS]
#
# Needs kubectl pointed at the cluster, IMAGE pushed where the cluster pulls from (see the
# Dockerfile), and the scenario's target reachable from the pods. It renders the manifest with
# `kubectl create --dry-run=server` first (the API server checks every field), creates the
# Secret the manifest names when the scenario reads certificates or keys, applies, waits for
# the Job, merges the shards' result lines from their logs, and deletes what it created.
set -euo pipefail
scenario=${1:?usage: scripts/k8s-smoke.sh SCENARIO IMAGE [SHARDS]}
image=${2:?usage: scripts/k8s-smoke.sh SCENARIO IMAGE [SHARDS]}
shards=${3:-3}
ns=${NAMESPACE:-default}
gauntlet=${GAUNTLET:-gauntlet}
command -v kubectl >/dev/null || { echo "k8s-smoke: kubectl is not installed"; exit 3; }
kubectl version >/dev/null 2>&1 || { echo "k8s-smoke: kubectl reaches no cluster (kubectl version fails)"; exit 3; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$gauntlet" k8s job "$scenario" --shards "$shards" --image "$image" --namespace "$ns" --start-in 90s >"$work/job.yaml"
name=$(awk '/^kind: Job/{j=1} j && /^  name:/{print $2; exit}' "$work/job.yaml")
echo "== job $name: server-side dry run"
kubectl create --dry-run=server -f "$work/job.yaml" -o name
# The Secret line is in the manifest's comments (keys never go into the manifest itself).
secret=$(sed -n '/create secret generic/,/^# Each shard/p' "$work/job.yaml" | grep -v '^# Each shard' | sed 's/^#  *//' | tr -d '\\\n')
if [ -n "$secret" ]; then
    echo "== secret"
    eval "$secret"
fi
cleanup() {
    kubectl -n "$ns" delete -f "$work/job.yaml" --ignore-not-found >/dev/null || true
    kubectl -n "$ns" delete secret "$name-files" --ignore-not-found >/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
kubectl apply -f "$work/job.yaml"
echo "== waiting for job/$name"
# Complete or failed (a failed index fails the Job; the merge then names what is missing).
kubectl -n "$ns" wait --for=condition=complete --timeout=30m "job/$name" &
kubectl -n "$ns" wait --for=condition=failed --timeout=30m "job/$name" &
wait -n || true
kill %1 %2 2>/dev/null || true
kubectl -n "$ns" logs -l "job-name=$name" --tail=-1 --max-log-requests="$shards" >"$work/logs.txt"
echo "== merge"
set +e
"$gauntlet" merge - --scenario "$scenario" --out "results/k8s-$name" <"$work/logs.txt"
rc=$?
set -e
echo "k8s-smoke: merged into results/k8s-$name (exit $rc: the merged verdict)"
exit "$rc"
