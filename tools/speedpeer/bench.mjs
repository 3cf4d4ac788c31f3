// The speed peer: llama.cpp's prebuilt CPU build (through node-llama-cpp) measured the way `medlab bench`
// measures medlab, on a GGUF file: the same fixed prompt, the same thread count, greedy decoding that
// ignores stop tokens. Benchmarks only; no test depends on it.
//
//   node tools/speedpeer/bench.mjs --model FILE.gguf [--threads 2] [-p 256] [-n 32] [--repeat 1] [--json]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const { values: args } = parseArgs({
  options: {
    model: { type: "string", short: "m" },
    threads: { type: "string", short: "t", default: "2" },
    "prompt-tokens": { type: "string", short: "p", default: "256" },
    generate: { type: "string", short: "n", default: "32" },
    repeat: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
if (!args.model) {
  console.error("usage: bench.mjs --model FILE.gguf [--threads N] [-p 256,512] [-n 32] [--repeat R] [--json]");
  process.exit(1);
}
const threads = Number(args.threads);
const promptSizes = args["prompt-tokens"].split(",").map(Number);
const generate = Number(args.generate);
const repeat = Number(args.repeat);

// Peak resident set (VmHWM) of this process, Node.js itself included (about 50 MB).
function peakRssBytes() {
  const line = readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith("VmHWM:"));
  return Number(line.split(/\s+/)[1]) * 1024;
}
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

// The CPU variant ggml loads, and when llama.cpp's own model loading starts, are only seen in its log.
const logLines = [];
const start = performance.now();
const llama = await getLlama({
  gpu: false,
  build: "never", // the prebuilt binaries from @node-llama-cpp/linux-x64; never compile or download
  maxThreads: threads,
  logLevel: LlamaLogLevel.debug,
  logger: (level, message) => logLines.push({ at: performance.now(), message }),
});
const backendMs = performance.now() - start;

// Before llama.cpp loads the file, node-llama-cpp parses its metadata in JavaScript and simulates its memory
// use (seconds for Gemma 3's 262k-token vocabulary). llama.cpp's own load is timed from its model loader's
// first log line, written once the GGUF header is read, to the model being ready.
const loadStart = performance.now();
const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
const loadEnd = performance.now();
const loaderStart = logLines.find((l) => l.at >= loadStart && l.message.startsWith("llama_model_loader: loaded meta data"));
if (!loaderStart) throw new Error("no 'llama_model_loader: loaded meta data' line in llama.cpp's log");
const loadMs = loadEnd - loaderStart.at;

// medlab bench's prompt: <bos>, then the same sentence over and over, cut to exactly n tokens.
const sentence = model.tokenize(
  " The chest radiograph shows clear lungs without focal consolidation, effusion or pneumothorax.", false);
function fixedPrompt(n) {
  const tokens = [model.tokens.bos];
  while (tokens.length < n) tokens.push(...sentence);
  return tokens.slice(0, n);
}

const longest = Math.max(...promptSizes);
const context = await model.createContext({
  contextSize: Math.max(longest, promptSizes[0] + generate) + 8,
  batchSize: 512,
  threads: { ideal: threads, min: threads },
});
const sequence = context.getSequence();

const promptMs = [];
for (const n of promptSizes) {
  const prompt = fixedPrompt(n);
  const runs = [];
  for (let r = 0; r < repeat; ++r) {
    await sequence.clearHistory();
    const t = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt);
    runs.push(performance.now() - t);
  }
  promptMs.push(median(runs));
}

// Decoding: the first prompt size less its last token is processed first; then every step is one token
// through the model and a greedy pick (the prompt's last token, then each token generated).
const decodeRuns = [];
for (let r = 0; r < repeat; ++r) {
  const prompt = fixedPrompt(promptSizes[0]);
  await sequence.clearHistory();
  await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
  let steps = 0;
  const t = performance.now();
  for await (const token of sequence.evaluate(prompt.slice(-1), { temperature: 0, yieldEogToken: true })) {
    if (++steps >= generate) break;
  }
  decodeRuns.push(performance.now() - t);
}
const decodeMs = median(decodeRuns);

const cpuVariant = logLines.map((l) => l.message.match(/libggml-cpu-([\w-]+)\.so/)?.[1]).find((v) => v);
const result = {
  peer: "llama.cpp (node-llama-cpp prebuilt)",
  node_llama_cpp: JSON.parse(readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url))).version,
  llama_cpp_release: llama.llamaCppRelease.release,
  build: llama.buildType,
  cpu_variant: cpuVariant ?? "unknown",
  system_info: llama.systemInfo,
  model: args.model,
  threads,
  flash_attention: context.flashAttention,
  backend_ms: backendMs,
  load_ms: loadMs,
  load_through_node_llama_cpp_ms: loadEnd - loadStart,
  model_bytes: model.size,
  prompt: promptSizes.map((n, i) => ({ tokens: n, ms: promptMs[i], tokens_per_s: (1000 * n) / promptMs[i] })),
  decode: { tokens: generate, after_prompt_tokens: promptSizes[0], ms: decodeMs, tokens_per_s: (1000 * generate) / decodeMs },
  peak_rss_bytes: peakRssBytes(),
};
await context.dispose();
await model.dispose();

if (args.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`llama.cpp ${result.build}, CPU variant ${result.cpu_variant}, ${threads} threads | ${args.model}`);
  console.log(`load ${loadMs.toFixed(0)} ms by llama.cpp (${result.load_through_node_llama_cpp_ms.toFixed(0)} ms through node-llama-cpp)`);
  for (const p of result.prompt) console.log(`prompt, ${p.tokens} tokens: ${p.tokens_per_s.toFixed(2)} tok/s (${p.ms.toFixed(0)} ms)`);
  console.log(`decode, ${generate} steps after ${promptSizes[0]} tokens: ${result.decode.tokens_per_s.toFixed(2)} tok/s`);
  console.log(`peak RSS ${(result.peak_rss_bytes / 1e9).toFixed(2)} GB`);
}
