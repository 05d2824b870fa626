#!/usr/bin/env bash
# The GPU measurements of the GPT and OFA spaces, as one script for a lent CUDA machine (one H200 here).
#
#   bash benchmarks/gpu_checks.sh OUT_DIR [FASHION_MNIST_DIR]
#
# 1. GPT-S latency/energy tables for bf16 and fp32 at batch 1, 16, 64 and sequence 1,024, each validated against
#    30 random whole models (benchmarks/gpt_latency_tables.py);
# 2. `modnas device measure --space ofa --cuda` at batch 1 and 64 (10 references + 20 random subnets);
# 3. one short epoch of examples/ofa_oneshot_gpu.yaml on Fashion-MNIST (CIFAR-10 needs a download);
# 4. benchmarks/bench_ddp.py --device cuda on one process.
# Each step has its own time limit, so one slow step cannot starve the others; results land in OUT_DIR.
set -u
OUT_DIR=${1:?usage: gpu_checks.sh OUT_DIR [FASHION_MNIST_DIR]}
FMNIST=${2:-/usr/share/datasets/fashion-mnist}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv | tee "$OUT_DIR/card.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    | tee -a "$OUT_DIR/card.txt"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT_DIR/$name.log"
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
}

step gpt_tables 280 python3 benchmarks/gpt_latency_tables.py --space gpt-s \
    --settings cuda-b1-s1024-bf16 cuda-b16-s1024-bf16 cuda-b64-s1024-bf16 \
               cuda-b1-s1024-fp32 cuda-b16-s1024-fp32 cuda-b64-s1024-fp32 \
    --out "$OUT_DIR/gpt" --validate 30 --repeats 10 --model-repeats 5 --energy
for b in 1 64; do
    step "ofa_measure_b$b" 45 python3 -m modnas device measure --space ofa --name "h200_b$b" --cuda --batch-size "$b" \
        --extra 20 --repeats 20 --out "$OUT_DIR/ofa_h200_b$b.json" --no-register
done
step ofa_oneshot 110 python3 -m modnas search examples/ofa_oneshot_gpu.yaml --epochs 1 \
    --set oneshot.dataset=fashion-mnist --set "oneshot.data_dir=$FMNIST" --set oneshot.train_limit=6144 \
    --out "$OUT_DIR/ofa_oneshot"
step bench_ddp 60 python3 benchmarks/bench_ddp.py --device cuda --layouts 1x1
