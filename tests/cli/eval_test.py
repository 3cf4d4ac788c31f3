#!/usr/bin/env python3
"""medlab eval through the binary, on hand-written files: a dozen items in two categories (the chest answers
repeat their references word for word), bootstrap intervals, byte-identical reruns, a written baseline that
passes (exit 0) and an edited one that fails (exit 3), and bad input (exit 1, one error line naming the cause).
Prints one line per case and then "N passed, M failed".

    eval_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

RUN = {"engine": "medlab 0.1.0", "commit": "0123abcd", "isa": "avx2", "precision": "fast",
       "model_sha256": "ab" * 32, "seed": 0,
       "sampler": {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repetition_penalty": 1.0},
       "max_new_tokens": 128, "stop": []}
CHEST = ["small left pleural effusion without pneumothorax", "mild cardiomegaly with no pulmonary edema",
         "no acute cardiopulmonary process is seen", "right lower lobe consolidation concerning for pneumonia",
         "the endotracheal tube terminates above the carina", "moderate right pneumothorax with partial collapse"]
CT = [("a small hypodense lesion in the liver", "a lesion in the liver"),
      ("no free fluid in the abdomen", "free fluid in the pelvis"),
      ("the kidneys are normal in size", "normal kidneys with a small left pleural effusion"),
      ("a fracture of the left tenth rib", "rib fracture on the left"),
      ("there is a large hiatal hernia", "small hiatal hernia"),
      ("the spleen is enlarged", None)]  # None: the batch row has an error
ATTACK = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def write_lines(name, rows):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def batch_row(image_id, answer, error=None, run=RUN):
    return {"id": image_id + "#1", "image_id": image_id, "question": "Describe the findings.", "answer": answer,
            "error": error, "seed": run["seed"], "model_sha256": run["model_sha256"], "run": run}


references = [{"id": f"cxr{i}", "file": f"cxr{i}.png", "prompt": "Describe", "references": [text],
               "category": "chest x-ray"} for i, text in enumerate(CHEST)]
references += [{"id": f"ct{i}", "reference": ref, "category": "ct"} for i, (ref, _) in enumerate(CT)]
predictions = [batch_row(f"cxr{i}", text) for i, text in enumerate(CHEST)]
predictions += [batch_row(f"ct{i}", answer) if answer is not None else
                batch_row(f"ct{i}", None, "ct5.dcm: no pixel data") for i, (_, answer) in enumerate(CT)]
predictions[6]["answer"] = ATTACK + " " + predictions[6]["answer"]
refs = write_lines("refs.jsonl", references)
preds = write_lines("preds.jsonl", predictions)


def medlab(*argv):
    return subprocess.run([args.medlab, "eval", *argv], capture_output=True, text=True, timeout=120)


def read(path):
    with open(path, "rb") as f:
        return f.read()


passed = failed = 0


def case(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"FAIL {name}: {'; '.join(problems)}")
    else:
        passed += 1
        print(f"PASS {name}")


def out(name):
    return os.path.join(work, name)


full = ["--predictions", preds, "--references", refs, "--by", "category", "--bootstrap", "200"]

# The report: values, groups, intervals, the run manifest, the errored row, the stdout table.
result = medlab(*full, "--out-json", out("a.json"), "--out-html", out("report.html"))
problems = [] if result.returncode == 0 else [f"exit code {result.returncode}: {result.stderr.strip()}"]
report = json.loads(read(out("a.json"))) if not problems else {}
if report:
    items = {row["id"]: row for row in report["per_item"]}
    for i in range(6):
        row = items[f"cxr{i}#1"]
        if (row["BLEU-4"], row["ROUGE-L"], row["category"]) != (100.0, 100.0, "chest x-ray"):
            problems.append(f"identical answer cxr{i}: {row}")
    if items["ct5#1"]["BLEU-4"] != 0 or items["ct5#1"].get("error") != "ct5.dcm: no pixel data":
        problems.append(f"errored row: {items['ct5#1']}")
    if report["errored"] != [{"id": "ct5#1", "error": "ct5.dcm: no pixel data"}]:
        problems.append(f"errored list {report['errored']}")
    groups = {g["name"]: g for g in report["groups"]}
    if sorted(groups) != ["chest x-ray", "ct"] or groups["chest x-ray"]["items"] != 6:
        problems.append(f"groups {list(groups)}")
    else:
        chest = groups["chest x-ray"]["metrics"]
        if chest["BLEU-4"]["value"] != 100.0 or chest["ROUGE-L"]["ci"] != [100.0, 100.0]:
            problems.append(f"chest group {chest['BLEU-4']} {chest['ROUGE-L']}")
        if not groups["ct"]["metrics"]["ROUGE-L"]["value"] < 60:
            problems.append(f"ct ROUGE-L {groups['ct']['metrics']['ROUGE-L']}")
    for name, metric in report["metrics"].items():
        v, ci = metric["value"], metric["ci"]
        if v is None or ci is None or not ci[0] <= v <= ci[1] or round(v, 2) != v:
            problems.append(f"{name}: {metric}")
    f1 = {f["finding"]: f for f in report["findings"]}
    if f1["Pleural Effusion"]["fp"] != 1 or f1["No Finding"]["fn"] != 1 or f1["Fracture"]["f1"] != 100.0 or \
            f1["Edema"]["f1"] is not None or not report["metrics"]["Finding macro F1"]["value"] < 100:
        problems.append(f"findings {report['findings']}")
    if report["run"] != RUN or report["run_disagreements"] != []:
        problems.append(f"run manifest {report['run']} / {report['run_disagreements']}")
    if report["bootstrap"] != {"resamples": 200, "seed": 0}:
        problems.append(f"bootstrap {report['bootstrap']}")
    if report["worst_items"][0]["id"] != "ct5#1" or len(report["worst_items"]) != 10:
        problems.append(f"worst items {[w['id'] for w in report['worst_items']]}")
    lines = result.stdout.splitlines()
    bleu4 = [line for line in lines if line.startswith("BLEU-4: ")]
    if len(bleu4) != 1 or not re.fullmatch(r"BLEU-4: \d+\.\d\d ± \d+\.\d\d \(95% CI \d+\.\d\d to \d+\.\d\d\)", bleu4[0]):
        problems.append(f"stdout BLEU-4 line {bleu4}")
    if "ct5#1" not in result.stderr:
        problems.append(f"stderr does not name the errored row: {result.stderr!r}")
case("report", problems)
if not problems:
    for line in result.stdout.splitlines():
        print(f"    {line}")

# The same inputs and seed: the same bytes; another seed moves the intervals only.
result = medlab(*full, "--out-json", out("b.json"))
problems = []
if result.returncode != 0 or read(out("a.json")) != read(out("b.json")):
    problems.append("a rerun's JSON differs")
result = medlab(*full, "--bootstrap-seed", "5", "--out-json", out("c.json"))
other = json.loads(read(out("c.json")))
if other == report or [m["value"] for m in other["metrics"].values()] != [m["value"] for m in report["metrics"].values()]:
    problems.append("another seed should change the intervals and nothing else")
case("byte-identical rerun", problems)

# The HTML escapes answers and holds what the browser test looks for.
html = read(out("report.html")).decode()
problems = []
for bad in ("<script", "<img", "http://", "https://"):
    if bad in html:
        problems.append(f"{bad!r} in the HTML")
for good in ("&lt;script&gt;", "Research software, not for diagnosis", "<svg", "class=\"bar\"", RUN["model_sha256"]):
    if good not in html:
        problems.append(f"no {good!r} in the HTML")
case("html escaped and self-contained", problems)

# A baseline written from this run passes; one moved outside the band fails with exit code 3.
result = medlab(*full, "--write-baseline", out("baseline.json"))
baseline = json.loads(read(out("baseline.json"))) if result.returncode == 0 else None
problems = [] if baseline else [f"--write-baseline: {result.stderr.strip()}"]
if baseline:
    if baseline["metrics"]["BLEU-4"]["value"] != report["metrics"]["BLEU-4"]["value"]:
        problems.append(f"baseline BLEU-4 {baseline['metrics']['BLEU-4']}")
    result = medlab(*full, "--baseline", out("baseline.json"), "--out-json", out("pass.json"))
    if result.returncode != 0 or json.loads(read(out("pass.json")))["baseline"]["result"] != "PASS":
        problems.append(f"own baseline: exit {result.returncode}: {result.stderr.strip()}")
    if not re.search(r"^BLEU-4: .* PASS \(baseline", result.stdout, re.M):
        problems.append(f"no PASS line: {result.stdout!r}")
case("baseline pass", problems)
if baseline:
    baseline["metrics"]["BLEU-4"] = {"value": report["metrics"]["BLEU-4"]["value"] + 1.0, "tolerance": 0.5}
    with open(out("moved.json"), "w") as f:
        json.dump(baseline, f)
    result = medlab(*full, "--baseline", out("moved.json"), "--out-json", out("fail.json"))
    problems = []
    if result.returncode != 3:
        problems.append(f"exit code {result.returncode}, expected 3")
    checks = json.loads(read(out("fail.json")))["baseline"]
    if checks["result"] != "FAIL" or checks["metrics"]["BLEU-4"]["result"] != "FAIL" or \
            checks["metrics"]["ROUGE-L"]["result"] != "PASS":
        problems.append(f"baseline checks {checks}")
    if "outside the baseline band: BLEU-4" not in result.stderr or not re.search(r"^BLEU-4: .* FAIL", result.stdout, re.M):
        problems.append(f"FAIL not reported: {result.stdout!r} {result.stderr!r}")
    case("baseline fail: exit 3", problems)

# Rows that disagree on their run manifest: scored, with a warning and the fields named.
other_run = dict(RUN, seed=7)
mixed = write_lines("mixed.jsonl", predictions[:11] + [batch_row("ct5", "the spleen is big", run=other_run)])
result = medlab("--predictions", mixed, "--references", refs, "--out-json", out("mixed.json"))
problems = [] if result.returncode == 0 else [f"exit code {result.returncode}: {result.stderr.strip()}"]
if not problems:
    disagreements = json.loads(read(out("mixed.json")))["run_disagreements"]
    if disagreements != [{"field": "seed", "values": [0, 7]}] or 'run field "seed"' not in result.stderr:
        problems.append(f"disagreements {disagreements}; stderr {result.stderr!r}")
case("run manifests disagree", problems)

# --allow-missing scores what matches and lists the rest.
partial = write_lines("partial.jsonl", predictions[:10] + [batch_row("xray99", "something")])
result = medlab("--predictions", partial, "--references", refs, "--allow-missing", "--out-json", out("partial.json"))
problems = [] if result.returncode == 0 else [f"exit code {result.returncode}: {result.stderr.strip()}"]
if not problems:
    p = json.loads(read(out("partial.json")))
    if p["items"] != 10 or p["unmatched_predictions"] != ["xray99#1"] or p["unmatched_references"] != ["ct4", "ct5"]:
        problems.append(f"{p['items']} {p['unmatched_predictions']} {p['unmatched_references']}")
    if "xray99#1" not in result.stderr or "ct4, ct5" not in result.stderr:
        problems.append(f"stderr {result.stderr!r}")
case("allow-missing", problems)

# Bad input: exit code 1 and one error line naming the cause.
empty = write_lines("empty.jsonl", [])
malformed = write_lines("malformed.jsonl", predictions[:3] + ['{"id": "cxr3#1", "answer": "no'] + predictions[4:])
not_object = write_lines("list.jsonl", [references[0], [1, 2]])
no_answer = write_lines("no_answer.jsonl", [{"id": "cxr0#1", "image_id": "cxr0"}])
twice = write_lines("twice.jsonl", predictions + [predictions[0]])
not_json = out("not_json.json")
with open(not_json, "w") as f:
    f.write("{\"metrics\": ")
unknown = out("unknown.json")
with open(unknown, "w") as f:
    json.dump({"metrics": {"METEOR": {"value": 20, "tolerance": 1}}}, f)
base = ["--predictions", preds, "--references", refs]
bad_cases = [
    ("mismatched ids", ["--predictions", partial, "--references", refs],
     ["1 prediction id(s) with no reference: xray99#1", "2 reference id(s) with no prediction: ct4, ct5"]),
    ("empty predictions", ["--predictions", empty, "--references", refs], ["empty.jsonl: empty"]),
    ("empty references", ["--predictions", preds, "--references", empty], ["empty.jsonl: empty"]),
    ("malformed line", ["--predictions", malformed, "--references", refs], ["malformed.jsonl:4: not a JSON line"]),
    ("not an object", ["--predictions", preds, "--references", not_object], ["list.jsonl:2: expected a JSON object"]),
    ("no answer", ["--predictions", no_answer, "--references", refs], ["no_answer.jsonl:1: no \"answer\""]),
    ("id twice", ["--predictions", twice, "--references", refs], ["twice.jsonl:13: id \"cxr0#1\" already on line 1"]),
    ("missing file", ["--predictions", out("nowhere.jsonl"), "--references", refs], ["nowhere.jsonl: cannot be read"]),
    ("--by unknown field", base + ["--by", "modality"], ["--by modality: no reference"]),
    ("baseline not JSON", base + ["--baseline", not_json], ["not_json.json: not JSON"]),
    ("baseline unknown metric", base + ["--baseline", unknown], ["unknown.json: metric \"METEOR\""]),
    ("write-baseline without intervals", base + ["--write-baseline", out("x.json")], ["needs --bootstrap"]),
]
for name, argv, expected in bad_cases:
    result = medlab(*argv)
    errors = [line for line in result.stderr.splitlines() if line.startswith("medlab: error:")]
    problems = []
    if result.returncode != 1:
        problems.append(f"exit code {result.returncode}, expected 1")
    if len(errors) != 1 or any(e not in errors[0] for e in expected):
        problems.append(f"error does not say {expected}: {result.stderr.strip()!r}")
    case(f"bad input: {name}", problems)
    if not problems:
        print(f"    {errors[0]}")

# Bad input writes no report, even one the inputs would allow.
result = medlab(*base, "--write-baseline", out("y.json"), "--out-json", out("y_report.json"))
case("bad input leaves no report", [] if result.returncode == 1 and not os.path.exists(out("y_report.json"))
     else [f"exit code {result.returncode}; report written: {os.path.exists(out('y_report.json'))}"])

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
