// The tensor table of a GGUF file (name, shape, ggml type), read independently of medlab's reader, so
// a parity test can check what a converter really wrote.
import { closeSync, openSync, readSync } from 'node:fs';

// ggml's type codes (ggml.h, enum ggml_type) for the types a Gemma GGUF may hold.
const typeNames = { 0: 'f32', 1: 'f16', 2: 'q4_0', 3: 'q4_1', 6: 'q5_0', 7: 'q5_1', 8: 'q8_0', 10: 'q2_K',
                    11: 'q3_K', 12: 'q4_K', 13: 'q5_K', 14: 'q6_K', 30: 'bf16' };

// Metadata value sizes by GGUF value type; 8 (string) and 9 (array) are variable.
const scalarBytes = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export function ggufTensors(path) {
  // The header (metadata with the vocabulary, then the tensor table) sits before the data; 64 MB holds
  // it for any Gemma vocabulary.
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(64 << 20);
  const size = readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  let at = 0;
  const need = (n) => { if (at + n > size) throw new Error(`${path}: header runs past ${size} bytes`); };
  const u32 = () => { need(4); const v = buf.readUInt32LE(at); at += 4; return v; };
  const u64 = () => { need(8); const v = Number(buf.readBigUInt64LE(at)); at += 8; return v; };
  const str = () => { const n = u64(); need(n); const s = buf.toString('utf8', at, at + n); at += n; return s; };
  const skipValue = (type) => {
    if (type === 8) { const n = u64(); at += n; return; }
    if (type === 9) {
      const inner = u32(), n = u64();
      if (inner in scalarBytes) at += n * scalarBytes[inner];
      else for (let i = 0; i < n; i++) skipValue(inner);
      return;
    }
    if (!(type in scalarBytes)) throw new Error(`${path}: unknown metadata value type ${type}`);
    at += scalarBytes[type];
  };

  need(4);
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path}: not a GGUF file`);
  at = 4;
  const version = u32();
  if (version !== 3) throw new Error(`${path}: GGUF version ${version}, expected 3`);
  const nTensors = u64(), nKv = u64();
  for (let i = 0; i < nKv; i++) { str(); skipValue(u32()); }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const shape = Array.from({ length: u32() }, u64);
    const code = u32();
    u64();  // offset
    tensors.push({ name, shape, type: typeNames[code] ?? `ggml type ${code}` });
  }
  return tensors;
}
