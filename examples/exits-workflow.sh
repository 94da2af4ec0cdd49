#!/usr/bin/env bash
# The early-exit workflow on real digits, both placements, into a local store (and S3 if asked):
#   train backbone -> profile edge and cloud -> plan -> train exits -> evaluate -> report -> export
#
# Usage: examples/exits-workflow.sh OUT_DIR
# Settings (environment): MODEL, INPUT_SHAPE, EPOCHS, EXIT_EPOCHS, EDGE_SLOWDOWN, BANDWIDTH_MBPS,
# RTT_MS, STRATEGY, INFEREDGE (the command), S3_STORE (e.g. s3://bucket, optional).
set -euo pipefail

out=${1:?usage: $0 OUT_DIR}
model=${MODEL:-resnet18}
shape=${INPUT_SHAPE:-3,16,16}
epochs=${EPOCHS:-8}
exit_epochs=${EXIT_EPOCHS:-20}
slowdown=${EDGE_SLOWDOWN:-8}     # a Jetson-class edge, emulated from this machine's timings
bandwidth=${BANDWIDTH_MBPS:-8}   # Infer-EDGE's LTE case; 20 is its WiFi case
rtt=${RTT_MS:-40}
strategy=${STRATEGY:-latency}
inferedge=${INFEREDGE:-inferedge}
mkdir -p "$out"

$inferedge train-backbone "$model" --input-shape "$shape" --epochs "$epochs" --patience 3 \
    -o "$out/backbone.pt"
$inferedge profile "$model" --input-shape "$shape" --device-name cloud -o "$out/cloud.json"
$inferedge profile "$model" --input-shape "$shape" --device-name edge \
    --emulate-slowdown "$slowdown" -o "$out/edge.json"

for placement in linear pareto; do
    $inferedge plan --edge "$out/edge.json" --cloud "$out/cloud.json" --strategy "$strategy" \
        --placement "$placement" --edge-exits 2 --cloud-exits 1 --memory-fraction 0.5 \
        --bandwidth-mbps "$bandwidth" --rtt-ms "$rtt" -o "$out/plan-$placement.json"
    $inferedge train-exits --plan "$out/plan-$placement.json" --weights "$out/backbone.pt" \
        --head sdn --epochs "$exit_epochs" -o "$out/exits-$placement.pt"
    $inferedge evaluate --plan "$out/plan-$placement.json" --weights "$out/backbone.pt" \
        --exits "$out/exits-$placement.pt" --edge "$out/edge.json" --cloud "$out/cloud.json" \
        --report-dir "$out/report-$placement"
done
$inferedge report "$out/report-linear" "$out/report-pareto" -o "$out/compare"

for store in "$out/store" ${S3_STORE:+"$S3_STORE"}; do
    # The set is named by the plan and by what was trained; export prints where it went.
    prefix=$($inferedge export --plan "$out/plan-pareto.json" --weights "$out/backbone.pt" \
        --exits "$out/exits-pareto.pt" --evaluation "$out/report-pareto" \
        --store "$store" --pipeline digits | sed -n 's#.* under \(.*\)/$#\1#p')
    $inferedge verify --store "$store" --prefix "$prefix"
done
