#!/bin/bash
# medlab batch as a Slurm job array: 8 tasks, task i answering --shard i/8 into its own file on shared
# storage. Every task runs with --resume, so a task that is preempted, requeued or resubmitted continues
# where it stopped; the same command line serves the first attempt and every retry. See docs/BATCH.md.
# Research software, not for diagnosis.
#
# Submit the array, then a merge that waits for all of it:
#   mkdir -p /shared/medlab/run1/logs
#   array=$(sbatch --parsable docs/slurm/batch-array.sh)
#   sbatch --dependency=afterok:${array} --job-name=medlab-merge --cpus-per-task=1 --mem=4G \
#          --output=/shared/medlab/run1/logs/merge.log \
#          --wrap 'cd /shared/medlab/run1 && /shared/medlab/bin/medlab merge shard-*.jsonl --out results.jsonl'
# A failed task leaves the merge pending (DependencyNeverSatisfied): cancel it, rerun the task alone
# (sbatch --array=3 docs/slurm/batch-array.sh), then submit the merge again.
#
# 16 CPUs and 20 GB per task: MedGemma 4B's 8.6 GB of bf16 weights (memory-mapped) plus about 4.6 GB of f32
# KV cache for --parallel 4 x --ctx-size 4096.
#SBATCH --job-name=medlab-batch
#SBATCH --array=0-7
#SBATCH --cpus-per-task=16
#SBATCH --mem=20G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=/shared/medlab/run1/logs/shard-%a.log
set -euo pipefail
SHARDS=8                     # the array's size: --array=0-7
RUN=/shared/medlab/run1      # manifest.jsonl, questions.txt, and the shard-*.jsonl files

# --isa pins one kernel set, so that nodes with and without AVX-512 give the same answers.
exec /shared/medlab/bin/medlab batch \
  --model /shared/models/medgemma-4b-it \
  --manifest "${RUN}/manifest.jsonl" --questions "${RUN}/questions.txt" \
  --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}" --resume \
  --out "${RUN}/shard-${SLURM_ARRAY_TASK_ID}.jsonl" \
  --seed 0 --max-new-tokens 256 --isa avx2 \
  --threads "${SLURM_CPUS_PER_TASK}" --parallel 4
