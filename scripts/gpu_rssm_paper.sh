#!/usr/bin/env bash
# The paper's RSSM (Hafner et al. 2019 sizes, config/planet.yaml's bracketed values) trained on a lent GPU
# machine within one device call (issue 21 part 4): seed episodes, encoder pretraining, world-model training
# with planner episodes, its figures and ONNX export, then closed-loop planning on the val tasks. Every stage
# runs under a deadline (BUDGET_S, default 480 s after start); a training cut by it is saved and finished
# (--resume at the step reached), so the figures come back either way. Results: flat files in $OUT.
#
#   GPU machine (device tool, repo root, carry [".whl", ".gl"]):   bash scripts/gpu_rssm_paper.sh
#     (.whl: the mujoco wheels for cp312; .gl: the GL loader debs; both made as the device README says)
#   pipeline check on this machine's CPU, a few minutes:
#     OUT=/tmp/rssm-out DEVICE=cpu TINY=1 PY=.venv/bin/python MUJOCO_GL=egl nice -n 19 bash scripts/gpu_rssm_paper.sh
# Knobs: DEVICE (cuda), PY (python3), WORKERS (14), BUDGET_S (480), WORK (/tmp/rssm-paper, must not exist),
# PRETRAIN_STEPS (3000), VAL_EPISODES (14), TINY (1: tiny sizes, for the pipeline check).
set -u -o pipefail

: "${OUT:?set OUT to the folder the results go to}"
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
WORKERS=${WORKERS:-14}
BUDGET_S=${BUDGET_S:-480}
WORK=${WORK:-/tmp/rssm-paper}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-3000}
VAL_EPISODES=${VAL_EPISODES:-14}
TINY=${TINY:-0}
DATA=$WORK/episodes
RUN=$WORK/run
SOURCES=expert,okay,poor,random,redirect,wrong   # config/planet.yaml's seed_sources: 6 per task covers each once
PER_TASK=6
VAL_TASKS=8

if [ "$TINY" = 1 ]; then
    TRAIN_TASKS=${TRAIN_TASKS:-2} VAL_TASKS=1 DURATION=3 STEPS=${STEPS:-30} PRETRAIN_STEPS=10 VAL_EPISODES=1
    SETTINGS=(model.conv_depth=8 model.belief_size=16 model.state_size=4 model.hidden_size=16 model.task_size=4
              data.batch_size=4 data.chunk_length=8 planner.horizon=3 planner.candidates=16 planner.top_k=4
              planner.iterations=2 collect.every=10 collect.episode_duration=3 export.horizons=[3]
              train.encoder_pretrain_batch=8 train.eval_every=10 train.checkpoint_every=10 train.log_every=5
              train.open_loop_horizon=3 train.open_loop_sequences=1 train.video_sequences=1)
else
    # The paper's sizes and planner; the step count is whatever the deadline allows (the run is cut, then
    # finished at the step it reached), so train.steps only has to be out of reach.
    TRAIN_TASKS=200 DURATION=10 STEPS=${STEPS:-100000}
    SETTINGS=(model.conv_depth=32 model.belief_size=200 model.state_size=30 model.hidden_size=200
              data.batch_size=50 data.chunk_length=50 planner.candidates=1000 planner.top_k=100
              planner.iterations=10 collect.every=100 train.eval_every=100 train.checkpoint_every=200
              train.log_every=20)
fi
# Absolute deadlines (s after start) of each stage; what follows a stage needs the time after it.
SEED_END=$((BUDGET_S * 23 / 100))        # 110 of 480: seed episodes, as many whole tasks as fit
TRAIN_END=$((BUDGET_S - 195))            # 285: pretraining + training, then cut and saved
FINISH_END=$((BUDGET_S - 140))           # 340: curves, open-loop figures, summary, ONNX export
VAL_END=$((BUDGET_S - 10))               # 470: val-task planning (~1 min an episode: the paper's planner on
                                         # one CPU core per worker); 10 s to copy the files

stamp() { echo "[$(date +%T) t=${SECONDS}s] $*"; }
left() { local s=$(( $1 - SECONDS )); [ "$s" -gt 5 ] && echo "$s" || echo 5; }

copy_outputs() {
    # Flat files, at most 8 (log.txt among them): what the device tool brings back.
    for f in train_log.csv val_log.csv summary.json curves.png open_loop.png; do
        [ -f "$RUN/$f" ] && cp -f "$RUN/$f" "$OUT/$f"
    done
    local extras=()
    for f in pretrain_log.csv config.yaml open_loop.csv open_loop.mp4 onnx; do
        [ -e "$RUN/$f" ] && extras+=("run/$f")
    done
    [ -f "$WORK/seed.json" ] && extras+=(seed.json)
    if [ ${#extras[@]} -gt 0 ]; then
        tar -C "$WORK" -czf "$OUT/extras.tgz" "${extras[@]}" 2>/dev/null
        if [ "$(stat -c %s "$OUT/extras.tgz")" -gt 15000000 ]; then     # the ONNX graphs too big: leave them
            tar -C "$WORK" -czf "$OUT/extras.tgz" --exclude='run/onnx/*.onnx' "${extras[@]}" 2>/dev/null
        fi
    fi
    return 0
}

device_setup() {
    # Only on the GPU machine: GL loaders for MuJoCo's EGL rendering, and the mujoco wheels.
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    local vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing the wheels in .whl failed" >&2; return 1; }
    SITE=/tmp/site
}

complete_tasks() {
    # Train tasks 0..m-1 that have all their seed episodes (a cut collection leaves a prefix, roughly).
    local m=0
    while [ "$m" -lt "$TRAIN_TASKS" ]; do
        [ "$(ls "$DATA"/train-"$(printf %03d "$m")"_*.npz 2>/dev/null | grep -vc '\.partial\.npz$')" -ge "$PER_TASK" ] \
            || break
        m=$((m + 1))
    done
    echo "$m"
}

main() {
    stamp "gpu_rssm_paper.sh: DEVICE=$DEVICE TINY=$TINY BUDGET_S=$BUDGET_S WORKERS=$WORKERS WORK=$WORK" \
          "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -e "$WORK" ]; then echo "$WORK exists already: set WORK to a new folder" >&2; return 2; fi
    mkdir -p "$DATA"
    SITE=
    if command -v nvidia-smi >/dev/null && [ -d .gl ] && [ -d .whl ]; then
        nvidia-smi
        device_setup || return 3
        stamp "GL loaders and wheels installed"
    fi
    export PYTHONPATH="${SITE:+$SITE:}$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    export MUJOCO_GL=${MUJOCO_GL:-egl} TQDM_MININTERVAL=${TQDM_MININTERVAL:-10}   # fewer progress lines in the log
    "$PY" - "$DEVICE" <<'EOF' || { echo "the environment check failed (above): nothing trained" >&2; return 3; }
import sys, time
import mujoco, numpy, torch
t = time.monotonic()
from il_robot.sim.tasks import make_task
from il_robot.sim.world import PushingWorld
world = PushingWorld(make_task("train", 0)); world.reset(0); image = world.render(); world.close()
print(f"python {sys.version.split()[0]}, mujoco {mujoco.__version__}, numpy {numpy.__version__}, torch "
      f"{torch.__version__}; a {image.shape} frame rendered ({time.monotonic() - t:.1f} s with the world)")
if sys.argv[1].startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit(f"--device {sys.argv[1]}: torch sees no GPU")
    print("GPU:", torch.cuda.get_device_name(0))
EOF
    stamp "environment checked"
    # The planner on the model's device, as training's planner episodes run it (a random model, a 1 s episode).
    # Should it fail, the run trains on the seed episodes alone rather than crash at its first collection.
    local collect_every=()
    "$PY" - "$DEVICE" "${SETTINGS[@]}" <<'EOF' || { collect_every=(collect.every=0); echo "WARNING: the planner failed \
on $DEVICE (above): training without planner episodes (collect.every=0)" >&2; }
import sys, time
import numpy as np
from il_robot.learning.planet import rssm_config
from il_robot.learning.planet.planner import plan_episode
from il_robot.learning.planet.rssm import PlaNet, TorchBackend
from il_robot.paths import config_file
from il_robot.sim.tasks import make_task
cfg = rssm_config.load_config(config_file("planet.yaml"), sys.argv[2:])
backend = TorchBackend(PlaNet(cfg.model).to(sys.argv[1]).eval())
t = time.monotonic()
arrays, meta = plan_episode(backend, backend.task_vector(np.zeros((64, 64, 3), np.uint8)), make_task("train", 0),
                            cfg.planner, cfg.data.action_bound, cfg.data.action_repeat, 0.3, 0, 1.0, {})
print(f"planner on {sys.argv[1]} ({cfg.planner}): a 1 s episode ({len(arrays['image'])} frames) in "
      f"{time.monotonic() - t:.1f} s, the first plans included")
EOF
    stamp "planner checked"

    # 1. Seed episodes: the val tasks (and train task 0) first, then train tasks until the deadline.
    timeout -k 10 "$(left "$SEED_END")" "$PY" -m il_robot.learning.planet.data --out "$DATA" --train-tasks 1 \
        --val-tasks "$VAL_TASKS" --per-task "$PER_TASK" --sources "$SOURCES" --duration "$DURATION" \
        --workers "$WORKERS" > /dev/null || { echo "collecting the val episodes failed (above)" >&2; return 4; }
    stamp "val episodes collected: $(ls "$DATA" | grep -c '^val-') val, $(ls "$DATA" | grep -c '^train-') train"
    timeout -k 10 "$(left "$SEED_END")" "$PY" -m il_robot.learning.planet.data --out "$DATA" \
        --train-tasks "$TRAIN_TASKS" --val-tasks "$VAL_TASKS" --per-task "$PER_TASK" --sources "$SOURCES" \
        --duration "$DURATION" --workers "$WORKERS" > "$WORK/seed.json"
    local rc=$? m
    m=$(complete_tasks)
    stamp "seed collection ended (rc $rc$([ $rc = 124 ] && echo ': cut at its deadline')):" \
          "$(ls "$DATA" | grep -c '^train-.*[0-9]\.npz$') train episodes, train tasks 0..$((m - 1)) complete"

    # 2. Encoder pretraining and RSSM training with planner episodes, cut at TRAIN_END (SIGTERM: saved).
    (while sleep 20; do                  # the rates as it goes (the progress bars are off in a log)
        f=$RUN/train_log.csv; [ -f "$f" ] || f=$RUN/pretrain_log.csv
        [ -f "$f" ] && echo "  [t=$(( $(date +%s) - START_EPOCH ))s] ${f##*/}: $(tail -1 "$f")"
    done) & local monitor=$!
    local sets=() kv
    for kv in "${SETTINGS[@]}" collect.train_tasks="$m" collect.val_tasks="$VAL_TASKS" collect.workers="$WORKERS" \
              collect.seed_sources="[$SOURCES]" collect.seed_episodes_per_task="$PER_TASK" \
              train.encoder_pretrain_steps="$PRETRAIN_STEPS" "${collect_every[@]}"; do
        sets+=(--set "$kv")
    done
    stamp "training: ${sets[*]} --steps $STEPS, until t=${TRAIN_END}s"
    timeout -k 30 "$(left "$TRAIN_END")" "$PY" -m il_robot.cli.main train planet --world-model rssm \
        --device "$DEVICE" --data "$DATA" --out "$RUN" --steps "$STEPS" --no-export --quiet "${sets[@]}"
    rc=$?
    kill "$monitor" 2>/dev/null; wait "$monitor" 2>/dev/null
    stamp "training ended (rc $rc$([ $rc = 124 ] || [ $rc = 130 ] && echo ': cut at its deadline'))"
    copy_outputs
    if [ ! -f "$RUN/checkpoints/last.pt" ]; then
        echo "no checkpoint: the deadline came before the first training step saved (pretraining too long?)" >&2
        return 5
    fi

    # 3. A finished run wrote its figures and summary: export it. A cut one: finish it at the step it reached.
    if [ -f "$RUN/summary.json" ]; then
        timeout -k 10 "$(left "$FINISH_END")" "$PY" -m il_robot.cli.main export planet \
            --checkpoint "$RUN/checkpoints/last.pt" --out "$RUN/onnx"
    else
        local step
        step=$("$PY" -c "import sys; from il_robot.learning.checkpoints import read_checkpoint; \
print(int(read_checkpoint(sys.argv[1])['step']))" "$RUN/checkpoints/last.pt") || return 6
        stamp "finishing the run at step $step (figures, summary, export)"
        timeout -k 10 "$(left "$FINISH_END")" "$PY" -m il_robot.cli.main train planet --world-model rssm \
            --device "$DEVICE" --data "$DATA" --out "$RUN" --resume --steps "$step" --quiet
    fi
    stamp "figures and export done (rc $?)"
    cat "$RUN/open_loop.csv" 2>/dev/null          # config.yaml: in extras.tgz
    copy_outputs

    # 4. Closed loop on the val tasks (the recipe's selection measure): the exported graphs, onnxruntime on CPU.
    if [ -f "$RUN/onnx/metadata.json" ]; then
        stamp "val-task planning: $VAL_EPISODES episodes on $WORKERS workers, until t=${VAL_END}s"
        timeout -k 10 "$(left "$VAL_END")" "$PY" -m il_robot.cli.main bench planet --model-dir "$RUN/onnx" \
            --tasks val --episodes "$VAL_EPISODES" --truth-episodes 0 --no-scripted --plans 1 --workers "$WORKERS" \
            --json "$OUT/val_planning.json"
        stamp "val-task planning ended (rc $?)"
    fi
    copy_outputs
    stamp "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
}

mkdir -p "$OUT"
START_EPOCH=$(date +%s)
export START_EPOCH
main 2>&1 | tee -a "$OUT/log.txt"     # -a: after whatever the call wrote there first
exit "${PIPESTATUS[0]}"
