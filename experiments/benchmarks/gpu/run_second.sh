python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site || exit 1
# The second GPU call (after run_on_gpu.sh): the placement thread's input stall, AlexNet
# variants (where its time goes), and AlexNet's first step from a warm compilation cache.
#   OUT=<empty dir> bash experiments/benchmarks/gpu/run_second.sh          # from the repo root
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxnets-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
OUT=${OUT:?set OUT}
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv | tee "$OUT/second.log"
echo "=== stall $(date +%T)" | tee -a "$OUT/second.log"
timeout 45 python3 -m jaxnets.experiments.benchmark --sections=stall --out= 2>&1 \
  | tee -a "$OUT/second.log"
echo "=== alexnet variants $(date +%T) (fills the compilation cache)" | tee -a "$OUT/second.log"
timeout 150 python3 experiments/benchmarks/gpu/alexnet_variants.py --batch=1024 \
  --dtype=bfloat16 2>&1 | tee -a "$OUT/second.log"
echo "=== alexnet benchmark, warm compilation cache $(date +%T)" | tee -a "$OUT/second.log"
timeout 90 python3 -m jaxnets.experiments.benchmark --sections=models --models=alexnet \
  --dtype=bfloat16 --batch_sizes=alexnet=1024 --torch=no --reps=3 --seconds=0.5 \
  --out="$OUT" --name=gpu_bfloat16_warm_cache 2>&1 | tee -a "$OUT/second.log"
echo "=== done $(date +%T)" | tee -a "$OUT/second.log"
