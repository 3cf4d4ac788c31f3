#!/usr/bin/python3
"""Aggregate generation speed of medlab serve: S concurrent streams against one stream, same prompt length and
max_tokens, greedy (temperature 0), every generated token counted (end tokens included, none skipped).
Continuous batching should make 4 streams at least twice as fast in total as one.

Usage: scripts/bench_serve.py [--medlab build/medlab] [--model DIR] [--parallel 4] [--streams 1,4]
                              [--prompt-tokens 32] [--max-tokens 64] [--repeat 3] [--threads 2] [--ctx-size 1024]
Without --model it writes a small-text test model (random weights) under /tmp. Prints a markdown table.
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "server"))
from serve_support import start_server  # noqa: E402  (the tests' way of starting a server)

WORDS = ("The chest radiograph shows clear lungs without focal consolidation effusion or pneumothorax and the "
         "cardiomediastinal silhouette is within normal limits for age with no acute osseous abnormality seen").split()


def start(args):
    log = open(os.path.join(args.workdir, "bench_serve_server.log"), "w")
    command = [args.medlab, "serve", "--model", args.model, "--port", "0", "--parallel", str(args.parallel),
               "--threads", str(args.threads), "--ctx-size", str(args.ctx_size)]
    process, host, port = start_server(command, log)
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, host, port


def predict(host, port, question, max_tokens):
    conn = http.client.HTTPConnection(host, port, timeout=3600)
    conn.request("POST", "/api/predict", body=json.dumps({"question": question, "max_new_tokens": max_tokens,
                                                          "temperature": 0, "seed": 0}).encode(),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    if response.status != 200:
        sys.exit("predict: status %d: %s" % (response.status, body))
    return body


def question_of(words, index):
    # The same length for every stream, different text (nothing can be shared between them).
    rotated = WORDS[index % len(WORDS):] + WORDS[:index % len(WORDS)]
    return " ".join((rotated * (words // len(WORDS) + 1))[:words])


def run_streams(host, port, streams, words, max_tokens):
    results = [None] * streams
    def one(i):
        results[i] = predict(host, port, question_of(words, i), max_tokens)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, results


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--medlab", default=os.path.join(here, "..", "build", "medlab"))
    parser.add_argument("--model", help="model folder (default: a small-text test model written under --workdir)")
    parser.add_argument("--workdir", default="/tmp/medlab-bench-serve")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--streams", default="1,4", help="concurrent stream counts to compare, the first is the base")
    parser.add_argument("--prompt-tokens", type=int, default=32, help="about this many prompt tokens (template included)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each stream count; the median is reported")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx-size", type=int, default=1024, help="KV cache per slot (prompt + answer)")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if not args.model:
        args.model = os.path.join(args.workdir, "small-text")
        if not os.path.exists(os.path.join(args.model, "config.json")):
            subprocess.run([args.medlab, "make-test-model", "--preset", "small-text", "--seed", "1", "--out", args.model],
                           check=True, stdout=subprocess.DEVNULL)

    process, host, port = start(args)
    try:
        # Calibrate the question so that the templated prompt has about --prompt-tokens tokens.
        words = max(1, args.prompt_tokens - 10)
        warm = predict(host, port, question_of(words, 0), 1)
        words = max(1, words + args.prompt_tokens - warm["prompt_tokens"])
        warm = predict(host, port, question_of(words, 0), min(args.max_tokens, 4))
        load_before = os.getloadavg()
        rows = []
        for streams in [int(s) for s in args.streams.split(",")]:
            runs = []
            for _ in range(args.repeat):
                wall, results = run_streams(host, port, streams, words, args.max_tokens)
                generated = sum(r["n_tokens"] for r in results)
                runs.append((generated / wall, wall, generated, results))
            rate, wall, generated, results = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
            per_stream = statistics.mean(r["timings"]["tokens_per_s"] for r in results)
            prompt = statistics.mean(r["prompt_tokens"] for r in results)
            rows.append((streams, prompt, generated, wall, rate, per_stream))
        load_after = os.getloadavg()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)

    name = os.path.basename(os.path.normpath(args.model))
    print("medlab serve --model %s --parallel %d --threads %d; temperature 0, max_tokens %d, median of %d runs" %
          (name, args.parallel, args.threads, args.max_tokens, args.repeat))
    print("load average before %.2f, after %.2f (1 min; %d CPUs)\n" % (load_before[0], load_after[0], os.cpu_count()))
    print("| streams | prompt tokens | generated tokens | wall s | aggregate tokens/s | per-stream decode tokens/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for streams, prompt, generated, wall, rate, per_stream in rows:
        print("| %d | %.0f | %d | %.2f | %.2f | %.2f |" % (streams, prompt, generated, wall, rate, per_stream))
    base = rows[0][4]
    for streams, _, _, _, rate, _ in rows[1:]:
        print("\n%d streams / %d: %.2fx aggregate tokens/s" % (streams, rows[0][0], rate / base))


if __name__ == "__main__":
    main()
