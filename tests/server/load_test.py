#!/usr/bin/python3
"""medlab serve under load: N concurrent clients for D seconds mixing good requests (predict with PNG, JPEG and
DICOM images, chat completions streamed and not) with bad ones (oversized bodies, malformed JSON, corrupt
images, wrong field types) and mid-stream disconnects, against the tiny random-weight test model.

Checks: the server stays up; every good request gets 200 and a non-empty answer, and the same request (question,
image, seed, sampling) gets the same tokens every time, however busy the server is; every bad one gets a 4xx with a
JSON error body; a 503 always carries Retry-After; afterwards /api/health shows nothing queued or active and the
server's resident memory is back within a margin of its level after warm-up.

Python 3 standard library only.
Usage: load_test.py --medlab build/medlab --workdir DIR [--clients 32] [--duration 60] [--quick]
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

from serve_support import JPEG_20x14, data_uri, png_bytes, read_events, start_server

CT_SMALL = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"



class Violations:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, what):
        with self.lock:
            self.items.append(what)
            if len(self.items) <= 20:
                print("VIOLATION:", what, flush=True)


violations = Violations()


# ---------------------------------------------------------------- the server process

class Server:
    def __init__(self, medlab, model, workdir, extra):
        self.log_path = os.path.join(workdir, "server.log")
        self.log = open(self.log_path, "w")
        self.process, self.host, self.port = start_server(
            [medlab, "serve", "--model", model, "--port", "0", *extra], self.log)
        # Anything else the server prints must not fill the pipe and block it.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def alive(self):
        return self.process.poll() is None

    def rss_mb(self):
        with open("/proc/%d/status" % self.process.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def connect(self, timeout=300):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get_json(self, path):
        conn = self.connect(30)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, json.loads(body)

    def metric(self, name):
        conn = self.connect(30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + " ") or line.startswith(name + "{"))

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return "killed"
        finally:
            self.log.close()


# ---------------------------------------------------------------- the requests

class Outcome:
    """What one request came back with: status, headers, parsed JSON (or None), answer text and tokens."""
    def __init__(self, status, headers=None, body=None):
        self.status, self.headers, self.body = status, headers or {}, body
        self.answer, self.tokens, self.note = None, None, ""


def post(server, path, raw, stream=False, disconnect=False):
    conn = server.connect()
    try:
        conn.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        headers = dict((k.lower(), v) for k, v in response.getheaders())
        if response.status == 200 and stream and headers.get("content-type", "").startswith("text/event-stream"):
            events = read_events(response, (lambda n: n >= 1) if disconnect else None)
            out = Outcome(200, headers)
            out.events = events
            return out
        payload = response.read()
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        return Outcome(response.status, headers, body)
    finally:
        conn.close()


def post_oversized(server, path, size):
    """A body over --max-body-mb. The server may answer 413 and close before the body is sent: reads what it said."""
    body = b'{"question": "q", "image": "data:image/png;base64,' + b"A" * size + b'"}'
    sock = socket.create_connection((server.host, server.port), timeout=60)
    reply = b""
    try:
        sock.sendall(("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n" % (path, server.host, len(body))).encode())
        try:
            for start in range(0, len(body), 65536):
                sock.sendall(body[start:start + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                reply += piece
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        sock.close()
    if not reply:
        out = Outcome(0)
        out.note = "connection closed with no response"
        return out
    head, _, payload = reply.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict((l.split(":", 1)[0].strip().lower(), l.split(":", 1)[1].strip()) for l in lines[1:] if ":" in l)
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    return Outcome(status, headers, parsed)


class Workload:
    """The request kinds: good ones carry a determinism key; bad ones the 4xx they must get."""

    def __init__(self, max_body_mb):
        png = png_bytes(40, 30, lambda x, y: (x * 6, y * 8, 90))
        with open(CT_SMALL, "rb") as f:
            dicom = f.read()
        self.images = {"png": data_uri("image/png", png), "jpeg": data_uri("image/jpeg", JPEG_20x14),
                       "dicom": data_uri("application/dicom", dicom)}
        self.corrupt = [data_uri("image/png", png[:60] + b"\0" * 80), data_uri("image/jpeg", JPEG_20x14[:200]),
                        data_uri("application/dicom", b"\0" * 300), data_uri("image/png", b"not an image at all")]
        self.oversize = int(max_body_mb * 1024 * 1024 * 1.2)
        self.questions = ["What does this image show?", "Is there a pneumothorax?", "Describe the findings."]
        # (kind, weight)
        self.kinds = [("predict_png", 3), ("predict_png_stream", 2), ("predict_jpeg", 2), ("predict_dicom", 2),
                      ("predict_text", 1), ("chat", 2), ("chat_stream", 2), ("chat_image", 1),
                      ("oversized", 1), ("malformed_json", 1), ("corrupt_image", 1), ("wrong_type", 1),
                      ("disconnect", 1)]
        self.good = {"predict_png", "predict_png_stream", "predict_jpeg", "predict_dicom", "predict_text", "chat",
                     "chat_stream", "chat_image"}

    def pick(self, rng):
        return rng.choices([k for k, _ in self.kinds], weights=[w for _, w in self.kinds])[0]

    def predict_body(self, rng, image):
        seed = rng.randrange(3)
        body = {"question": rng.choice(self.questions), "max_new_tokens": 16, "seed": seed}
        # Half greedy, half sampled: sampling with a seed must repeat too.
        if rng.random() < 0.5:
            body.update(temperature=0.8, top_p=0.95)
        if image:
            body["image"] = self.images[image]
        if image == "dicom":
            body["window"] = "lung"
        key = ("predict", image, body["question"], seed, body.get("temperature", 0))
        return body, key

    def chat_body(self, rng, image):
        seed = rng.randrange(3)
        question = rng.choice(self.questions)
        content = question if not image else [{"type": "text", "text": question},
                                              {"type": "image_url", "image_url": {"url": self.images["png"]}}]
        body = {"messages": [{"role": "user", "content": content}], "max_tokens": 16, "temperature": 0, "seed": seed}
        return body, ("chat", image, question, seed)

    def run(self, server, kind, rng):
        """Sends one request of this kind: (Outcome, determinism key or None, expected 4xx or None)."""
        if kind.startswith("predict"):
            image = {"predict_png": "png", "predict_png_stream": "png", "predict_jpeg": "jpeg",
                     "predict_dicom": "dicom", "predict_text": None}[kind]
            body, key = self.predict_body(rng, image)
            stream = kind.endswith("_stream")
            if stream:
                body["stream"] = True
            out = post(server, "/api/predict", json.dumps(body).encode(), stream=stream)
            if out.status == 200:
                read_predict(out, stream)
            return out, key, None
        if kind in ("chat", "chat_stream", "chat_image"):
            body, key = self.chat_body(rng, "png" if kind == "chat_image" else None)
            stream = kind == "chat_stream"
            if stream:
                body["stream"] = True
            out = post(server, "/v1/chat/completions", json.dumps(body).encode(), stream=stream)
            if out.status == 200:
                read_chat(out, stream)
            return out, key, None
        if kind == "oversized":
            return post_oversized(server, rng.choice(["/api/predict", "/v1/chat/completions"]), self.oversize), None, 413
        if kind == "malformed_json":
            raw = rng.choice([b'{"question": "q", ', b"{not json", b'["question"]', b"", b'{"question": "q"}}'])
            return post(server, rng.choice(["/api/predict", "/v1/chat/completions"]), raw), None, 400
        if kind == "corrupt_image":
            body = {"question": "What is this?", "image": rng.choice(self.corrupt), "max_new_tokens": 4}
            return post(server, "/api/predict", json.dumps(body).encode()), None, 400
        if kind == "wrong_type":
            raw = rng.choice([{"question": "q", "temperature": "warm"}, {"question": 7}, {"max_new_tokens": 3},
                              {"question": "q", "seed": "one"}])
            return post(server, "/api/predict", json.dumps(raw).encode()), None, 400
        if kind == "disconnect":
            body = {"question": "Write a long report.", "max_new_tokens": 400, "temperature": 2.0,
                    "seed": rng.randrange(1000), "stream": True}
            out = post(server, "/api/predict", json.dumps(body).encode(), stream=True, disconnect=True)
            if out.status == 200 and not out.events:
                out.note = "stream closed before its first event"
            return out, None, None
        raise ValueError(kind)


def read_predict(out, stream):
    if stream:
        events = out.events
        names = [e[0] for e in events]
        if not names or names[-1] != "done" or not set(names[:-1]) <= {"token"}:
            out.note = "stream events %s" % names[-5:]
            return
        done = json.loads(events[-1][1])
        text = "".join(json.loads(d)["text"] for n, d in events if n == "token")
        if text != done.get("answer"):
            out.note = "streamed text %r differs from the done answer %r" % (text, done.get("answer"))
        out.body = done
    if not isinstance(out.body, dict):
        out.note = out.note or "200 without a JSON body"
        return
    out.answer, out.tokens = out.body.get("answer"), out.body.get("tokens")
    if out.body.get("research_use_only") != "Research software, not for diagnosis.":
        out.note = "no research_use_only"


def read_chat(out, stream):
    if stream:
        events = out.events
        if not events or events[-1][1] != "[DONE]":
            out.note = "chat stream does not end with [DONE]"
            return
        chunks = [json.loads(d) for _, d in events[:-1]]
        out.answer = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        out.tokens = (out.answer, chunks[-1]["choices"][0]["finish_reason"] if chunks else None)
        return
    if not isinstance(out.body, dict) or "choices" not in out.body:
        out.note = "200 without a completion"
        return
    choice = out.body["choices"][0]
    out.answer = choice["message"]["content"]
    out.tokens = (out.answer, choice["finish_reason"])


# ---------------------------------------------------------------- the run

class Record:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}        # (kind, status) -> n
        self.latency = {}       # kind -> [seconds] of answered good requests
        self.answers = {}       # determinism key -> (tokens, answer)
        self.errors = 0

    def judge(self, kind, out, key, expect, seconds, good):
        with self.lock:
            self.counts[(kind, out.status)] = self.counts.get((kind, out.status), 0) + 1
        if out.status == 503:
            if out.headers.get("retry-after") != "1":
                violations.add("%s: 503 without Retry-After: 1 (headers %s)" % (kind, out.headers))
            return
        if expect is not None:
            if out.status != expect or not (isinstance(out.body, dict) and isinstance(out.body.get("error"), dict)
                                            and isinstance(out.body["error"].get("message"), str)):
                violations.add("%s: expected %d with a JSON error, got %d %s %s" %
                               (kind, expect, out.status, str(out.body)[:200], out.note))
            return
        if kind == "disconnect":
            if out.status != 200 or out.note:
                violations.add("disconnect: status %d %s" % (out.status, out.note))
            return
        if out.status != 200 or out.note or not out.answer:
            violations.add("%s: status %d, answer %r %s %s" % (kind, out.status, out.answer, out.note, str(out.body)[:200]))
            return
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)
            if not good:
                return
            seen = self.answers.setdefault(key, (out.tokens, out.answer, kind))
        if seen[0] != out.tokens:
            violations.add("determinism: %s %s gave %r, earlier (%s) %r" % (kind, key, out.answer, seen[2], seen[1]))


def client(server, workload, record, rng, deadline, rounds=None, first=0):
    done = 0
    while (rounds is None and time.time() < deadline) or (rounds is not None and done < rounds):
        kind = workload.pick(rng) if rounds is None else workload.kinds[(first + done) % len(workload.kinds)][0]
        started = time.time()
        try:
            out, key, expect = workload.run(server, kind, rng)
        except (OSError, http.client.HTTPException) as e:
            out, key, expect = Outcome(-1), None, None
            out.note = "%s: %s" % (type(e).__name__, e)
            violations.add("%s: connection error %s" % (kind, out.note))
            with record.lock:
                record.counts[(kind, -1)] = record.counts.get((kind, -1), 0) + 1
            if not server.alive():
                return
        else:
            record.judge(kind, out, key, expect, time.time() - started, kind in workload.good)
        done += 1


def run_clients(server, workload, record, n, seconds=None, rounds=None, seed=0):
    deadline = time.time() + (seconds or 0)
    threads = [threading.Thread(target=client, args=(server, workload, record, random.Random(seed * 1000 + i),
                                                     deadline, rounds, i * (rounds or 0))) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def wait_idle(server, timeout=60):
    deadline = time.time() + timeout
    health = {}
    while time.time() < deadline:
        _, health = server.get_json("/api/health")
        if health.get("queue_depth") == 0 and health.get("active") == 0:
            return health
        time.sleep(0.2)
    return health


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))] if values else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--medlab", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--model", help="model folder (default: a tiny test model made in --workdir)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--quick", action="store_true", help="8 clients for 15 s (for ctest)")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--queue", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-body-mb", type=int, default=1, help="the server's limit; oversized bodies are 1.2x this")
    parser.add_argument("--rss-margin-mb", type=float, default=30, help="allowed growth over the warm-up RSS ...")
    parser.add_argument("--rss-margin-pct", type=float, default=10, help="... or this percentage of it, the larger")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration = 8, 15
    os.makedirs(args.workdir, exist_ok=True)
    model = args.model or os.path.join(args.workdir, "tiny")
    if not args.model and not os.path.exists(os.path.join(model, "config.json")):
        subprocess.run([args.medlab, "make-test-model", "--preset", "tiny", "--seed", "1", "--out", model], check=True,
                       stdout=subprocess.DEVNULL)
    workload = Workload(args.max_body_mb)
    server = Server(args.medlab, model, args.workdir,
                    ["--parallel", str(args.parallel), "--queue", str(args.queue), "--threads", str(args.threads),
                     "--max-body-mb", str(args.max_body_mb)])
    record = Record()
    try:
        # Warm-up: every kind at least once, all clients at once, so that allocator arenas, KV caches and the
        # image cache are at their working size before the baseline is taken.
        rounds = max(2, -(-len(workload.kinds) // args.clients))
        for t in run_clients(server, workload, record, args.clients, rounds=rounds, seed=1):
            t.join()
        wait_idle(server)
        time.sleep(1)
        baseline = server.rss_mb()
        generated_warmup = server.metric("medlab_generated_tokens_total")
        warmup_requests = sum(record.counts.values())

        peak = [baseline]
        stop_sampling = threading.Event()
        def sample():
            while not stop_sampling.wait(0.25) and server.alive():
                peak[0] = max(peak[0], server.rss_mb())
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.time()
        for t in run_clients(server, workload, record, args.clients, seconds=args.duration, seed=2):
            t.join()
        elapsed = time.time() - started
        stop_sampling.set()
        sampler.join()

        if not server.alive():
            violations.add("the server exited during the run (code %s)" % server.process.returncode)
            health, end, generated = {}, float("nan"), float("nan")
        else:
            health = wait_idle(server)
            if health.get("queue_depth") != 0 or health.get("active") != 0:
                violations.add("after the run: queue_depth %s, active %s" % (health.get("queue_depth"), health.get("active")))
            generated = server.metric("medlab_generated_tokens_total") - generated_warmup
            time.sleep(1)
            end = server.rss_mb()
            limit = baseline + max(args.rss_margin_mb, baseline * args.rss_margin_pct / 100)
            # Under AddressSanitizer freed memory waits in quarantine, so RSS cannot show a leak (LSan does).
            if end > limit and "ASAN_OPTIONS" not in os.environ:
                violations.add("RSS %.1f MB after the run, over the limit %.1f MB (baseline %.1f)" % (end, limit, baseline))
    finally:
        code = server.stop() if server.alive() else server.process.returncode
    if code != 0:
        violations.add("server exit code %s after SIGTERM" % code)

    total = sum(record.counts.values())
    print("\nload_test: %d clients, %.0f s of load (+ warm-up of %d requests), --parallel %d, --queue %d, model %s" %
          (args.clients, elapsed, warmup_requests, args.parallel, args.queue, os.path.basename(model.rstrip("/"))))
    print("%-20s %8s  %-28s %9s %9s" % ("kind", "requests", "statuses", "p50 s", "p95 s"))
    for kind, _ in workload.kinds:
        statuses = sorted((s, n) for (k, s), n in record.counts.items() if k == kind)
        lat = record.latency.get(kind, [])
        print("%-20s %8d  %-28s %9.2f %9.2f" % (kind, sum(n for _, n in statuses),
                                                 " ".join("%s:%d" % (s, n) for s, n in statuses),
                                                 percentile(lat, 50), percentile(lat, 95)))
    good = [s for k, v in record.latency.items() for s in v]
    print("all: %d requests (warm-up included; %.1f/s during the load), good answered p50 %.2f s p95 %.2f s; "
          "%d distinct determinism keys" % (total, (total - warmup_requests) / elapsed, percentile(good, 50), percentile(good, 95), len(record.answers)))
    print("generated tokens during the load (medlab_generated_tokens_total): %.0f, %.1f/s" %
          (generated, generated / elapsed))
    print("RSS: baseline %.1f MB (after warm-up), peak %.1f MB, end %.1f MB (allowed: +max(%.0f MB, %.0f%%))" %
          (baseline, peak[0], end, args.rss_margin_mb, args.rss_margin_pct))
    print("health after: queue_depth %s, active %s; server exit code %s" % (health.get("queue_depth"), health.get("active"), code))
    print("load_test: %d violations" % len(violations.items))
    sys.exit(1 if violations.items else 0)


if __name__ == "__main__":
    main()
