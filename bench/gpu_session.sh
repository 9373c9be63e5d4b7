#!/usr/bin/env bash
# The device checks for a session lent a GPU machine (see docs/benchmarks.md), in one call:
#   the transformers backend's tests on CUDA (tiny LLaVA and, with torchvision there, tiny Qwen2-VL),
#   the GPU bench on a random model of Qwen2-VL-2B's size, mmad's transformers backend against a bare
#   batched `generate` loop on that model (issue #17's in-process ratio), and the engine's throughput bench
#   on 16 cores.
# The machine has torch, transformers and torchvision but not mmad's other dependencies: carry them as
# wheels in .whl/ (pydantic, pydantic_core, annotated-types, typing-inspection, openai, jiter, distro,
# sniffio, httpx2, httpcore2, truststore, idna, typing_extensions, transformers; cp312 manylinux).
set -u
OUT=${OUT:-/tmp/mmad-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src:$PWD
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision, transformers, openai, pydantic; print('torch', torch.__version__, 'tv', \
torchvision.__version__, 'transformers', transformers.__version__, 'openai', openai.__version__, \
'pydantic', pydantic.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"

echo "== tests on CUDA"
MMAD_TEST_DEVICE=cuda timeout 180 python3 -m pytest -q -p no:cacheprovider -W default -o addopts="" \
    tests/models/test_hf.py 2>&1 | tee "$OUT/test_hf.log" | tail -25

echo "== GPU bench: random Qwen2-VL-2B"
timeout 240 python3 bench/gpu_local_model.py --random qwen2-vl-2b --limit "${LIMIT:-160}" \
    --batch-sizes "${BATCHES:-1,8,32}" --json "$OUT/gpu_bench.json" 2>&1 | grep -v "it/s]" | tee "$OUT/gpu_bench.log" | tail -15

echo "== in-process ratio: mmad's transformers backend against bare generate, random Qwen2-VL-2B"
timeout 200 python3 bench/bench_hf_vs_generate.py --random qwen2-vl-2b --device cuda --batch-size 32 \
    --questions "${HF_QUESTIONS:-256}" --repeats 2 --json "$OUT/hf_vs_generate.json" 2>&1 | grep -v "it/s]" \
    | tee "$OUT/hf_vs_generate.log" | tail -40

echo "== engine throughput on $(nproc) cores"
timeout 100 python3 bench/bench_eval_throughput.py 2>&1 | tee "$OUT/throughput.log" | tail -5
