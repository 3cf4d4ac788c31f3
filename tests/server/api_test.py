#!/usr/bin/python3
"""medlab serve over real HTTP: every endpoint of docs/API.md, its errors and limits, streaming,
cancellation, the queue limit and determinism, with the tiny random-weight test model.

Python 3 standard library only. Usage: api_test.py --medlab build/medlab --workdir DIR
"""
import argparse
import base64
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

from serve_support import JPEG_20x14, data_uri, png_bytes, read_events, start_server

PYDICOM_FILES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
RESEARCH = "Research software, not for diagnosis."


failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, flush=True)


# ---------------------------------------------------------------- images the test writes

def png_size(data):
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG signature")
    return struct.unpack(">II", data[16:24])


def dicom_bytes(width, height):
    """A Part 10 CT slice, explicit VR little endian, 16-bit signed, with a window: written by hand."""
    def element(group, elem, vr, value):
        if vr in ("OB", "OW", "UN", "SQ", "UT"):
            return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value
    def text(s):
        b = s.encode()
        return b + (b" " if len(b) % 2 else b"")
    def uid(s):
        b = s.encode()
        return b + (b"\0" if len(b) % 2 else b"")
    sop_class, sop_instance, syntax = "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.9.7433.1.1", "1.2.840.10008.1.2.1"
    meta = (element(0x0002, 0x0001, "OB", b"\0\1") + element(0x0002, 0x0002, "UI", uid(sop_class)) +
            element(0x0002, 0x0003, "UI", uid(sop_instance)) + element(0x0002, 0x0010, "UI", uid(syntax)))
    pixels = b"".join(struct.pack("<h", int(-1000 + 2000 * x / width + 300 * y / height))
                      for y in range(height) for x in range(width))
    dataset = (element(0x0008, 0x0016, "UI", uid(sop_class)) + element(0x0008, 0x0018, "UI", uid(sop_instance)) +
               element(0x0008, 0x0060, "CS", text("CT")) +
               element(0x0028, 0x0002, "US", struct.pack("<H", 1)) +
               element(0x0028, 0x0004, "CS", text("MONOCHROME2")) +
               element(0x0028, 0x0010, "US", struct.pack("<H", height)) +
               element(0x0028, 0x0011, "US", struct.pack("<H", width)) +
               element(0x0028, 0x0100, "US", struct.pack("<H", 16)) +
               element(0x0028, 0x0101, "US", struct.pack("<H", 16)) +
               element(0x0028, 0x0102, "US", struct.pack("<H", 15)) +
               element(0x0028, 0x0103, "US", struct.pack("<H", 1)) +
               element(0x0028, 0x1050, "DS", text("40")) + element(0x0028, 0x1051, "DS", text("400")) +
               element(0x0028, 0x1052, "DS", text("0")) + element(0x0028, 0x1053, "DS", text("1")) +
               element(0x7FE0, 0x0010, "OW", pixels))
    return (b"\0" * 128 + b"DICM" + element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta))) + meta + dataset)


# ---------------------------------------------------------------- the server and HTTP

class Server:
    def __init__(self, medlab, model, workdir, name, *extra):
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "w")
        self.process, self.host, self.port = start_server(
            [medlab, "serve", "--model", model, "--port", "0", "--threads", "2", *extra], self.log)
        self.key = None

    def connect(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, raw=None):
        headers = dict(headers or {})
        if self.key and "Authorization" not in headers:
            headers["Authorization"] = "Bearer " + self.key
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        conn = self.connect()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, dict((k.lower(), v) for k, v in response.getheaders()), payload

    def json(self, method, path, body=None, expect=200, **kw):
        status, headers, payload = self.request(method, path, body, **kw)
        check(status == expect, "%s %s: status %d, expected %d: %s" % (method, path, status, expect, payload[:300]))
        check(headers.get("content-type", "").startswith("application/json"), "%s %s: JSON content type" % (method, path))
        return json.loads(payload)

    def error(self, method, path, body, status, param=None, words="", **kw):
        out = self.json(method, path, body, expect=status, **kw)
        error = out.get("error", {})
        check(isinstance(error.get("message"), str) and words in error["message"],
              "%s %s -> %d: message %r should contain %r" % (method, path, status, error.get("message"), words))
        if param is not None:
            check(error.get("param") == param, "%s %s -> %d: param %r, expected %r" % (method, path, status, error.get("param"), param))
        return error

    def events(self, path, body, stop_after=None):
        """POSTs and reads a text/event-stream: a list of (event, data). stop_after(n_events) closes early."""
        conn = self.connect()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = "Bearer " + self.key
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        response = conn.getresponse()
        check(response.status == 200, "POST %s stream: status %d" % (path, response.status))
        check(response.getheader("Content-Type", "").startswith("text/event-stream"), "POST %s: event-stream" % path)
        events = read_events(response, stop_after)
        conn.close()
        return events

    def metric(self, name):
        status, _, payload = self.request("GET", "/metrics")
        check(status == 200, "GET /metrics")
        total = 0.0
        for line in payload.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = "killed"
        check(code == 0, "server stops cleanly on SIGTERM (exit %s)" % code)
        self.log.close()


# ---------------------------------------------------------------- the checks

def check_health(server):
    h = server.json("GET", "/api/health")
    for key in ("status", "model", "model_sha256", "engine", "uptime_s", "queue_depth", "active", "parallel", "vision",
                "test_model", "research_use_only"):
        check(key in h, "health has %s" % key)
    check(h["status"] == "ok" and h["engine"].startswith("medlab 0.1.0 (commit "), "health status and engine")
    check(re.fullmatch(r"[0-9a-f]{64}", h["model_sha256"]) is not None, "health model_sha256 is hex SHA-256")
    check(h["vision"] is True and h["test_model"] is True, "tiny model: vision, test model")
    check(h["parallel"] == 4, "health parallel")
    check(h["research_use_only"] == RESEARCH, "health research_use_only")
    return h


def check_answer(answer, health, image=None):
    for key in ("answer", "tokens", "n_tokens", "stop_reason", "timings", "seed", "model_sha256", "prompt_tokens"):
        check(key in answer, "predict answer has %s" % key)
    check(answer["n_tokens"] == len(answer["tokens"]), "n_tokens counts tokens")
    check(answer["model_sha256"] == health["model_sha256"], "answer model_sha256 matches health")
    check(answer["research_use_only"] == RESEARCH, "answer research_use_only")
    for key in ("queue_ms", "image_ms", "prefill_ms", "decode_ms", "total_ms", "tokens_per_s"):
        check(key in answer["timings"], "timings has %s" % key)
    if image:
        check(answer.get("image", {}).get("width") == image[0] and answer["image"]["height"] == image[1],
              "answer image size %s, expected %s" % (answer.get("image"), image))


def check_predict(server, health, images):
    base = {"question": "What does this show?", "max_new_tokens": 6, "seed": 3}
    plain = server.json("POST", "/api/predict", base)
    check_answer(plain, health)
    check("image" not in plain, "no image, no image field")
    png = server.json("POST", "/api/predict", dict(base, image=data_uri("image/png", images["png"])))
    check_answer(png, health, (40, 30))
    check(png["image"]["source"] == "png", "PNG source")
    check(png["prompt_tokens"] > plain["prompt_tokens"], "an image adds its soft tokens to the prompt")
    jpeg = server.json("POST", "/api/predict", dict(base, image=data_uri("image/jpeg", JPEG_20x14)))
    check_answer(jpeg, health, (20, 14))
    check(jpeg["image"]["source"] == "jpeg", "JPEG source")
    dcm = server.json("POST", "/api/predict", dict(base, image=data_uri("application/dicom", images["dicom"])))
    check_answer(dcm, health, (48, 32))
    check(dcm["image"]["source"].startswith("dicom") and "C40 W400" in dcm["image"]["source"], "the file's window by default")
    check(re.fullmatch(r"[0-9a-f]{64}", dcm["image"].get("dicom_pixel_sha256", "")) is not None, "DICOM pixel hash")
    lung = server.json("POST", "/api/predict", dict(base, image=data_uri("application/dicom", images["dicom"]), window="lung"))
    check("C-600 W1500" in lung["image"]["source"], "window lung: %s" % lung["image"]["source"])
    check(lung["image"]["dicom_pixel_sha256"] == dcm["image"]["dicom_pixel_sha256"], "windowing leaves the pixel hash")
    region = server.json("POST", "/api/predict", dict(base, image=data_uri("application/dicom", images["dicom"]),
                                                       region={"x": 4, "y": 4, "width": 20, "height": 10}))
    check(region["prompt_tokens"] > dcm["prompt_tokens"], "a region adds its note to the question")
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = os.path.join(PYDICOM_FILES, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                out = server.json("POST", "/api/predict", dict(base, image=data_uri("application/dicom", f.read()), window="40,400"))
            check_answer(out, health, (128, 128) if name == "CT_small.dcm" else (64, 64))
    return png


def check_stream(server, png_answer, images):
    body = {"question": "What does this show?", "max_new_tokens": 6, "seed": 3, "stream": True,
            "image": data_uri("image/png", images["png"])}
    events = server.events("/api/predict", body)
    names = [e[0] for e in events]
    check(names and names[-1] == "done" and set(names[:-1]) <= {"token"}, "stream: token events then done: %s" % names)
    text = "".join(json.loads(d)["text"] for n, d in events if n == "token")
    done = json.loads(events[-1][1]) if events else {}
    check(done.get("answer") == png_answer["answer"] and text == png_answer["answer"],
          "streamed answer %r equals the whole answer %r" % (text, png_answer["answer"]))
    check(done.get("tokens") == png_answer["tokens"], "stream: same tokens as without streaming")


def check_chat(server, health, images):
    messages = [{"role": "system", "content": "You are a radiologist."},
                {"role": "user", "content": [{"type": "text", "text": "Describe the image."},
                                             {"type": "image_url", "image_url": {"url": data_uri("image/png", images["png"])}}]}]
    body = {"model": health["model"], "messages": messages, "max_tokens": 6, "temperature": 0, "seed": 1}
    out = server.json("POST", "/v1/chat/completions", body)
    check(out.get("object") == "chat.completion" and out.get("id", "").startswith("chatcmpl-"), "chat completion object")
    choice = out["choices"][0]
    check(choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str), "chat message")
    check(choice["finish_reason"] in ("stop", "length") and choice["logprobs"] is None, "finish_reason, no logprobs")
    usage = out["usage"]
    check(usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], "usage adds up")
    check(out["system_fingerprint"].startswith("medlab-0.1.0-"), "system_fingerprint")
    check(out["medlab"]["model_sha256"] == health["model_sha256"] and out["medlab"]["research_use_only"] == RESEARCH,
          "medlab block")

    chunks = server.events("/v1/chat/completions", dict(body, stream=True))
    check(chunks and chunks[-1][1] == "[DONE]", "chat stream ends with [DONE]")
    parsed = [json.loads(d) for _, d in chunks[:-1]]
    check(all(p["object"] == "chat.completion.chunk" for p in parsed), "chat chunks")
    check(parsed and parsed[0]["choices"][0]["delta"].get("role") == "assistant", "first chunk carries the role")
    content = "".join(p["choices"][0]["delta"].get("content", "") for p in parsed)
    check(content == choice["message"]["content"], "streamed content %r equals %r" % (content, choice["message"]["content"]))
    check(parsed and parsed[-1]["choices"][0]["finish_reason"] == choice["finish_reason"], "last chunk's finish_reason")
    check(all(p["choices"][0]["finish_reason"] is None for p in parsed[:-1]), "earlier chunks have no finish_reason")

    lp = server.json("POST", "/v1/chat/completions", dict(body, logprobs=True, top_logprobs=3))
    entries = (lp["choices"][0]["logprobs"] or {}).get("content", [])
    check(len(entries) == lp["usage"]["completion_tokens"], "one logprob entry per token")
    for e in entries:
        check(e["logprob"] <= 0 and len(e["top_logprobs"]) == 3 and isinstance(e["bytes"], list), "logprob entry %s" % e)
        check(abs(e["top_logprobs"][0]["logprob"] - e["logprob"]) < 1e-5, "greedy: the chosen token is the most likely")

    # Stop strings: the answer ends before the first occurrence, and says "stop".
    long = server.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Say something."}],
                                                        "max_tokens": 12, "temperature": 0})
    text = long["choices"][0]["message"]["content"]
    if len(text) >= 12:
        stop = text[6:9]
        cut = server.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Say something."}],
                                                           "max_tokens": 12, "temperature": 0, "stop": [stop, "\x01never"]})
        check(cut["choices"][0]["message"]["content"] == text[:text.index(stop)], "stop string cuts the answer")
        check(cut["choices"][0]["finish_reason"] == "stop", "stop string: finish_reason stop")
    else:
        check(False, "the tiny model's answer is long enough to cut: %r" % text)

    models = server.json("GET", "/v1/models")
    check(models["object"] == "list" and models["data"][0]["id"] == health["model"] and models["data"][0]["owned_by"] == "medlab",
          "/v1/models")


def check_render(server, health, images):
    png = data_uri("image/png", images["png"])
    status, headers, body = server.request("POST", "/api/render", {"image": png})
    check(status == 200 and headers.get("content-type") == "image/png", "render: a PNG")
    check(png_size(body) == (40, 30), "render source keeps the size")
    status, _, body = server.request("POST", "/api/render", {"image": png, "view": "model_input",
                                                             "region": {"x": 2, "y": 2, "width": 10, "height": 8}})
    size = health.get("image_size") or png_size(body)[0]
    check(status == 200 and png_size(body) == (size, size), "render model_input is the model's %dx%d" % (size, size))
    dcm = server.json("POST", "/api/render", {"image": data_uri("application/dicom", images["dicom"]), "format": "json",
                                              "window": "lung"})
    check(dcm["width"] == 48 and dcm["height"] == 32 and dcm["frames"] == 1 and dcm["modality"] == "CT", "render json facts")
    check(png_size(base64.b64decode(dcm["png_base64"])) == (48, 32), "render json PNG")
    check("lung" in dcm["presets"] and dcm["file_windows"] == [{"center": 40.0, "width": 400.0, "explanation": ""}],
          "presets and the file's windows: %s" % dcm["file_windows"])
    check("C-600 W1500" in dcm["source"], "render json source names the window")


def check_errors(server, images):
    malformed = server.error("POST", "/api/predict", None, 400, None, "malformed JSON", raw=b"{not json")
    check(malformed.get("param", "absent") is None, "malformed JSON: param null")
    server.error("POST", "/api/predict", {"max_new_tokens": 3}, 400, "question", "question")
    server.error("POST", "/api/predict", {"question": "q", "image": "data:image/png;base64,%%%"}, 400, "image", "base64")
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("image/png", images["png"][:40] + b"\0" * 60)},
                 400, "image", "PNG")
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("image/png", b"hello there")}, 400, "image",
                 "not a PNG or JPEG")
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("application/dicom", b"\0" * 200)}, 400, "image")
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("image/png", images["png"]), "window": "sideways"},
                 400, "window", "window")
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("image/png", images["png"]),
                                          "region": {"x": 100, "y": 100, "width": 5, "height": 5}}, 400, "region", "outside")
    server.error("POST", "/api/predict", {"question": "q", "temperature": "warm"}, 400, "temperature")
    server.error("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.org/x.png"}}]}]}, 400,
        "messages[0].content[0].image_url.url", "data: URI")
    server.error("POST", "/api/render", {"image": "/etc/hosts"}, 400, "image", "data: URI")
    server.error("GET", "/api/nothing", None, 404)
    server.error("GET", "/api/predict", None, 405)
    status, headers, _ = server.request("GET", "/api/health")
    check(not any(k.startswith("access-control-") for k in headers), "no CORS headers without --cors-origin")


def check_web(server):
    for path, kind in (("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = server.request("GET", path, headers={"Authorization": ""})
        check(status == 200 and headers.get("content-type", "").startswith(kind) and body, "GET %s: %s" % (path, kind))


def check_metrics_move(server, before_requests, before_tokens):
    check(server.metric('medlab_requests_total{endpoint="/api/predict",code="200"}') > before_requests, "request counter moved")
    check(server.metric("medlab_generated_tokens_total") > before_tokens, "generated tokens counter moved")
    check(server.metric("medlab_request_duration_seconds_count") > 0, "duration histogram observed")
    check(server.metric("medlab_time_to_first_token_seconds_count") > 0, "first-token histogram observed")
    check(server.metric("medlab_errors_total") > 0, "errors counted")


def long_request(tokens, stream=False):
    # The tiny random model's greedy answer repeats one token and never meets an end token: it runs to the limit.
    return {"question": "Write a long report.", "max_new_tokens": tokens, "stream": stream}


def check_cancellation(server):
    before = server.metric("medlab_generated_tokens_total")
    events = server.events("/api/predict", long_request(2000, stream=True), stop_after=lambda n: n >= 2)
    check(len(events) == 2 and events[0][0] == "token", "stream started before closing")
    deadline = time.time() + 20
    while time.time() < deadline:
        h = server.json("GET", "/api/health")
        if h["active"] == 0 and h["queue_depth"] == 0:
            break
        time.sleep(0.1)
    check(h["active"] == 0 and h["queue_depth"] == 0, "closing the stream frees the slot: %s" % h)
    generated = server.metric("medlab_generated_tokens_total") - before
    check(generated < 2000, "the closed request stopped early (%d tokens of 2000)" % generated)
    after = server.json("POST", "/api/predict", {"question": "Still there?", "max_new_tokens": 4})
    check(after["n_tokens"] >= 1, "a request after the cancellation is answered")


def check_determinism(server):
    body = {"question": "Describe a chest film.", "max_new_tokens": 6, "temperature": 0.9, "top_p": 0.95, "seed": 42}
    alone = server.json("POST", "/api/predict", body)
    results = {}
    def run(name, request):
        results[name] = server.json("POST", "/api/predict", request)
    others = [threading.Thread(target=run, args=("other%d" % i, long_request(60 + 10 * i))) for i in range(3)]
    for t in others:
        t.start()
    time.sleep(0.2)
    run("busy", body)
    for t in others:
        t.join()
    check(results["busy"]["tokens"] == alone["tokens"], "same seed, same tokens alone and beside 3 others")
    check(results["busy"]["answer"] == alone["answer"], "same seed, same answer")
    different = server.json("POST", "/api/predict", dict(body, seed=43))
    check(different["tokens"] != alone["tokens"], "another seed samples other tokens")


def check_auth_and_limits(server, images):
    server.key = None
    server.error("POST", "/api/predict", {"question": "q"}, 401, None, "API key")
    server.error("POST", "/api/predict", {"question": "q"}, 401, headers={"Authorization": "Bearer wrong-key"})
    server.error("GET", "/metrics", None, 401)
    server.error("GET", "/v1/models", None, 401)
    server.json("GET", "/api/health")
    # A refused request's body must not be left on a keep-alive connection for the next request to trip on.
    conn = server.connect()
    for _ in range(2):
        conn.request("POST", "/api/predict", body=json.dumps({"question": "q" * 5000}).encode(),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        check(response.status == 401, "401 on a kept-alive connection, again: %d" % response.status)
    conn.request("GET", "/api/health")
    response = conn.getresponse()
    response.read()
    check(response.status == 200, "the same connection still serves after two 401s: %d" % response.status)
    conn.close()
    check_web(server)
    status, headers, _ = server.request("GET", "/api/health", headers={"Origin": "http://example.org"})
    check(headers.get("access-control-allow-origin") == "http://example.org", "CORS header with --cors-origin")
    status, headers, _ = server.request("OPTIONS", "/api/predict", headers={"Origin": "http://example.org"})
    check(status == 204 and "POST" in headers.get("access-control-allow-methods", "") and
          "Authorization" in headers.get("access-control-allow-headers", ""), "CORS preflight without a key")
    server.key = "sesame-1234"
    server.json("POST", "/api/predict", {"question": "q", "max_new_tokens": 2})
    server.json("GET", "/v1/models")
    big = {"question": "q", "image": data_uri("image/png", os.urandom(1100 * 1024))}
    server.error("POST", "/api/predict", big, 413, None, "--max-body-mb")
    form = json.dumps({"question": "q" * 9000}).encode()  # what curl -d sends, without a JSON content type
    server.error("POST", "/api/predict", None, 413, None, "application/json", raw=form,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    wide = png_bytes(200, 100, lambda x, y: (x, y, 0))  # 20000 pixels, over --max-pixels 10000
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("image/png", wide)}, 413, "image", "limit")
    server.error("POST", "/api/predict", {"question": "q", "image": data_uri("application/dicom", dicom_bytes(200, 100))},
                 413, "image", "limit")
    server.error("POST", "/api/predict", {"question": "Describe the film. " * 40}, 413, "question", "context")


def check_queue_full(server):
    statuses = []
    lock = threading.Lock()
    def run(seed):
        status, headers, body = server.request("POST", "/api/predict", long_request(60 + seed))
        with lock:
            statuses.append((status, headers.get("retry-after"), json.loads(body)))
    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    busy = [s for s in statuses if s[0] == 503]
    done = [s for s in statuses if s[0] == 200]
    check(len(busy) >= 1 and len(done) >= 2, "--parallel 1 --queue 1: some 503s, the others answered: %s" % [s[0] for s in statuses])
    for status, retry, body in busy:
        check(retry == "1" and body["error"]["type"] == "server_busy", "503 says server_busy and Retry-After: 1")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--medlab", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    model = os.path.join(args.workdir, "tiny")
    if not os.path.exists(os.path.join(model, "config.json")):
        subprocess.run([args.medlab, "make-test-model", "--preset", "tiny", "--seed", "1", "--out", model], check=True,
                       stdout=subprocess.DEVNULL)
    images = {"png": png_bytes(40, 30, lambda x, y: (x * 6, y * 8, 90)), "dicom": dicom_bytes(48, 32)}
    started = time.time()

    main_server = Server(args.medlab, model, args.workdir, "main", "--parallel", "4")
    try:
        health = check_health(main_server)
        check_web(main_server)
        png_answer = check_predict(main_server, health, images)
        check_stream(main_server, png_answer, images)
        check_chat(main_server, health, images)
        check_render(main_server, health, images)
        check_errors(main_server, images)
        check_metrics_move(main_server, 0, 0)
        check_cancellation(main_server)
        check_determinism(main_server)
    finally:
        main_server.stop()

    access_log = os.path.join(args.workdir, "access.log")
    if os.path.exists(access_log):
        os.remove(access_log)
    guarded = Server(args.medlab, model, args.workdir, "guarded", "--parallel", "1", "--api-key", "sesame-1234",
                     "--max-body-mb", "1", "--max-pixels", "10000", "--ctx-size", "64", "--cors-origin", "http://example.org",
                     "--access-log", access_log)
    try:
        check_auth_and_limits(guarded, images)
    finally:
        guarded.stop()
    with open(access_log) as f:
        lines = f.read().splitlines()
    check(len(lines) >= 10, "access log: a line per request")
    for line in lines:
        check(re.fullmatch(r"\S+Z (GET|POST|OPTIONS) /[\w/.-]* \d{3} [\d.]+ms \d+B", line) is not None, "access log line %r" % line)
        check("Describe" not in line and "sesame" not in line and "base64" not in line, "access log holds no request content")

    refused = subprocess.run([args.medlab, "serve", "--model", model, "--host", "0.0.0.0", "--port", "0"],
                             capture_output=True, text=True, timeout=60)
    check(refused.returncode == 1 and "--api-key" in refused.stderr, "a non-loopback host needs --api-key")

    small = Server(args.medlab, model, args.workdir, "small", "--parallel", "1", "--queue", "1")
    try:
        check_queue_full(small)
    finally:
        small.stop()

    print("api_test: %d failures, %.1f s" % (len(failures), time.time() - started))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
