#!/usr/bin/env bash
# TecNet trained across two "hosts" on this machine: network namespaces ddp0 (10.231.0.1) and ddp1
# (10.231.0.2) joined by a veth pair and nothing else (no route out: the traffic cannot leave them).
# Each host starts the same torchrun command with its --node-rank; node 0 holds the rendezvous and
# rank 0, which writes OUT. On real machines, run that command on each (see docs/recipes.md,
# "Training on several processes or machines"). The namespaces are removed however the run ends.
#
#   sudo scripts/ddp_two_hosts.sh DATA OUT [il-robot train tecnet options, e.g. --steps 20 --set ...]
#
# Environment: NPROC_PER_NODE (processes per host, default 1), DDP_PORT (rendezvous port, default 29500),
# PYTHON (default: the repo's .venv). Exit status: the first non-zero of the two hosts' torchrun.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 DATA OUT [il-robot train tecnet options]" >&2
    exit 2
fi
DATA=$1 OUT=$2
shift 2
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
NPROC=${NPROC_PER_NODE:-1}
PORT=${DDP_PORT:-29500}
HOSTS=(ddp0 ddp1)
ADDRS=(10.231.0.1 10.231.0.2)
LINKS=(ddp0-eth ddp1-eth)

if [[ $(id -u) -ne 0 ]]; then
    echo "$0: needs root (ip netns, veth)" >&2
    exit 2
fi
for ns in "${HOSTS[@]}"; do
    if ip netns list | grep -qw "^$ns"; then
        echo "$0: network namespace $ns exists already (another run?); remove it with: ip netns del $ns" >&2
        exit 2
    fi
done

PIDS=()
cleanup() {
    local pid
    # Each host's command runs in a process group of its own (set -m): SIGTERM to the group reaches torchrun,
    # which stops its workers (rank 0 saves a checkpoint first).
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${HOSTS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done   # takes its end of the veth along
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for i in 0 1; do
    ip netns add "${HOSTS[$i]}"
done
ip link add "${LINKS[0]}" type veth peer name "${LINKS[1]}"
for i in 0 1; do
    ip link set "${LINKS[$i]}" netns "${HOSTS[$i]}"
    ip -n "${HOSTS[$i]}" addr add "${ADDRS[$i]}/24" dev "${LINKS[$i]}"
    ip -n "${HOSTS[$i]}" link set lo up
    ip -n "${HOSTS[$i]}" link set "${LINKS[$i]}" up
done
echo "hosts: ${HOSTS[0]} ${ADDRS[0]}, ${HOSTS[1]} ${ADDRS[1]} (veth ${LINKS[0]} <-> ${LINKS[1]});" \
     "rendezvous ${ADDRS[0]}:$PORT"
for i in 0 1; do      # the link's own route and nothing else: no traffic can leave the two hosts
    echo "routes of ${HOSTS[$i]}: $(ip -n "${HOSTS[$i]}" route | paste -sd ';')"
done

# One host's torchrun: GLOO_SOCKET_IFNAME puts gloo on the link (its default, the hostname's address, is
# not in the namespace). exec: the job's PID is torchrun's, so waiting for it waits for its workers too.
# The log of node N goes to OUT.node-N.log and to this terminal, prefixed (by a tee that outlives the stop
# signal, so that what the stopping processes say is kept).
node() {
    local i=$1
    shift
    exec ip netns exec "${HOSTS[$i]}" env GLOO_SOCKET_IFNAME="${LINKS[$i]}" PYTHONUNBUFFERED=1 \
        "$PYTHON" -m torch.distributed.run --nnodes 2 --nproc-per-node "$NPROC" --node-rank "$i" \
        --rdzv-endpoint "${ADDRS[0]}:$PORT" \
        -m il_robot.cli.main train tecnet --data "$DATA" --out "$OUT" --quiet "$@"
}
mkdir -p "$(dirname "$OUT")"
cd "$REPO"
set -m
node 0 "$@" > >(trap '' TERM; tee "$OUT.node-0.log" | sed -u 's/^/[node 0] /') 2>&1 &
PIDS+=($!)
node 1 "$@" > >(trap '' TERM; tee "$OUT.node-1.log" | sed -u 's/^/[node 1] /') 2>&1 &
PIDS+=($!)

status=0
for pid in "${PIDS[@]}"; do
    code=0
    wait "$pid" || code=$?
    [[ $status -ne 0 ]] || status=$code
done
PIDS=()
set +m
bytes=$(ip netns exec "${HOSTS[1]}" cat "/sys/class/net/${LINKS[1]}/statistics/tx_bytes")
echo "node 1 sent $bytes bytes over the link; exit status $status"
exit "$status"
