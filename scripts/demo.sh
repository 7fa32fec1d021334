#!/usr/bin/env bash
# The main job on the embedded defaults: sample architectures for a causal task and check them.
set -euo pipefail
BIN=${BIN:-.venv/bin}
$BIN/einsearch ops
$BIN/einsearch sample -n 8 --seed 0 --task toy-causal --max-params 2e5
$BIN/einsearch check "net(64, repeat(2, block(pre:rms, compose(attend(softmax, linear(0.5), linear(0.5), id))), block(pre:rms, compose(seq(linear(4), act(gelu), linear(1))))))" --task toy-causal
