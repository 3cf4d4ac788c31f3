#!/usr/bin/env node
// llama.cpp multimodal parity: converts a model with `medlab convert --to gguf --mmproj`, runs the same
// Gemma 3 chat prompts with images through llama.cpp's mtmd path (tests/parity/llama_reference) and
// `medlab run --image`, and checks that both
//   - give the same prompt token ids (an image's soft tokens counted as <image_soft_token>s),
//   - pick the same greedy token at every step,
//   - give the same top-k log-probabilities (|difference| <= tolerance);
// and that the images matter: prompts that differ only in their image must differ in log-probability.
//
//   node llama_vision_parity.mjs --medlab BIN --reference BIN (--preset tiny | --model DIR) --python PYTHON
//        [--workdir DIR] [--steps 16] [--top 5] [--tolerance 1e-3] [--threads 2] [--type f32]
// PYTHON must have Pillow. Ends with "N passed, M failed"; exits 1 if anything failed.
//
// The images are generated here, of many sizes (one of them the vision tower's own), with continuous
// tone: gradients, noise, antialiased shapes, photo-like shading and grain; RGB, grey, RGBA and 16-bit
// PNGs and a 4:2:0 JPEG. medlab reads each file and preprocesses it itself. llama.cpp is given what the
// reference (transformers' Gemma3ImageProcessor, i.e. Pillow) makes of the file: decoded, converted to
// RGB and resized to the tower's size with Pillow's bilinear filter, as a lossless PNG
// (pillow_model_input.py). llama.cpp's mtmd copies an image of exactly that size unchanged, so both
// sides' models see the reference's pixels; left to itself llama.cpp would decode JPEGs with stb_image
// (a different IDCT and chroma upsampling) and resize with its own bilinear filter, and the comparison
// would measure those instead of the models.
//
// What llama.cpp's vision path still rounds (ggml, CPU): ggml_conv_2d makes its im2col f16 for an f32
// kernel, so the normalised pixels and the patch-embedding weights are rounded to f16 (the tiny model's
// bf16 weights pass unchanged); and GELU goes through ggml's f16 lookup table. The tiny model's vision
// init keeps those roundings' effect on the log-probabilities well under the tolerance
// (src/formats/test_checkpoint.cpp).
//
// Prompt framing: transformers' Gemma3Processor replaces each <start_of_image> in the text with
// "\n\n<start_of_image>" + <image_soft_token> x mm_tokens_per_image + "<end_of_image>\n\n", which medlab
// does too; llama.cpp's mtmd frames an image as <start_of_image> ... <end_of_image> alone, so the text
// given to llama.cpp carries the two newlines on each side of its media marker.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32, deflateSync } from 'node:zlib';

import { compareSteps, fmt, medlabRun, promptDifference, run, tally } from './llama_common.mjs';

const { values: opt } = parseArgs({
  options: {
    medlab: { type: 'string' },
    reference: { type: 'string' },
    preset: { type: 'string' },
    model: { type: 'string' },
    python: { type: 'string' },
    workdir: { type: 'string', default: join(process.cwd(), 'parity-vision') },
    steps: { type: 'string', default: '16' },
    top: { type: 'string', default: '5' },
    tolerance: { type: 'string', default: '1e-3' },
    threads: { type: 'string', default: '2' },
    'n-ctx': { type: 'string', default: '512' },
    type: { type: 'string', default: 'f32' },
  },
});
if (!opt.medlab || !opt.reference || !(opt.preset || opt.model) || !opt.python) {
  console.error('usage: llama_vision_parity.mjs --medlab BIN --reference BIN (--preset NAME | --model DIR) ' +
                '--python PYTHON_WITH_PIL [--workdir DIR]');
  process.exit(2);
}
const steps = Number(opt.steps), top = Number(opt.top), tolerance = Number(opt.tolerance);
const kMarker = '<__media__>';  // mtmd_default_marker(); the reference reports its own, checked below
// Prompts that differ only in their image must differ by at least this much somewhere in their first
// step's top-k log-probabilities (or pick different tokens), or the test would not show images matter.
const kImageEffect = 50 * tolerance;

// --- images ---------------------------------------------------------------------------------------------

// A PNG of 8- or 16-bit samples: channels 1 (grey), 3 (RGB) or 4 (RGBA), rows unfiltered.
function png(width, height, channels, bits, samples) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = bits;
  header[9] = { 1: 0, 3: 2, 4: 6 }[channels];
  const bytes = bits / 8, stride = 1 + width * channels * bytes;
  const rows = Buffer.alloc(height * stride);
  for (let i = 0; i < samples.length; i++) {
    const at = Math.floor(i / (width * channels)) * stride + 1 + (i % (width * channels)) * bytes;
    if (bits === 16) rows.writeUInt16BE(samples[i], at);
    else rows[at] = samples[i];
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header),
                        chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

// Pictures as functions of (x, y) in [0, 1)^2 (and the pixel's column and row) returning channel values
// in [0, 255]; 16-bit images scale them by 257.
function render(width, height, channels, bits, f) {
  const max = bits === 16 ? 65535 : 255;
  const samples = new (bits === 16 ? Uint16Array : Uint8Array)(width * height * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const v = f((x + 0.5) / width, (y + 0.5) / height, x, y);
      for (let c = 0; c < channels; c++)
        samples[(y * width + x) * channels + c] = Math.max(0, Math.min(max, Math.round(v[c] * (max / 255))));
    }
  return samples;
}
function noiseSource(seed) {  // xorshift32, so the noise is the same on every machine
  let s = seed >>> 0 || 1;
  return () => ((s ^= s << 13, s ^= s >>> 17, s ^= s << 5) >>> 0) / 2 ** 32;
}
// 0 outside, 1 inside, a smooth ramp of width `soft` (in image units) across the edge.
const inside = (distance, soft = 0.01) => Math.max(0, Math.min(1, 0.5 - distance / soft));
const mix = (a, b, t) => a.map((x, i) => x + (b[i] - x) * t);
const pictures = {
  gradient: () => (u, v) => [255 * u, 255 * v, 128 + 100 * Math.sin(6 * u * v)],
  noise: (seed) => {
    const next = noiseSource(seed);
    return () => [255 * next(), 255 * next(), 255 * next()];
  },
  shapes: () => (u, v) => {  // a circle, a rectangle and a line on a shaded background, antialiased
    let c = [200 - 90 * v, 210 - 60 * v, 230 - 30 * u];
    c = mix(c, [220, 40, 30], inside(Math.hypot(u - 0.35, v - 0.4) - 0.22));
    c = mix(c, [40, 170, 60], inside(Math.max(Math.abs(u - 0.72) - 0.17, Math.abs(v - 0.7) - 0.15)));
    return mix(c, [20, 20, 40], inside(Math.abs(u - v) / Math.SQRT2 - 0.015));
  },
  photo: (seed) => {  // smooth shading, an edge and grain: what a camera might see
    const next = noiseSource(seed);
    return (u, v) => {
      const base = u + v < 1 ? [200 - 80 * v, 150 + 60 * u, 120] : [60 + 100 * u, 70, 90 + 120 * v];
      const grain = 24 * (next() - 0.5);
      return base.map((c) => c + grain);
    };
  },
  ribs: (seed) => {  // bright soft arcs in a dark, unevenly lit chest, with grain; grey
    const next = noiseSource(seed);
    return (u, v) => {
      const arc = Math.abs(Math.hypot((u - 0.5) * 1.4, v - 0.1) % 0.12 - 0.06);
      const bone = Math.exp(-((arc / 0.02) ** 2)) * (Math.abs(u - 0.5) > 0.06 && v > 0.15 && v < 0.85 ? 1 : 0.2);
      const g = 30 + 40 * (1 - Math.abs(u - 0.5)) + 150 * bone + 10 * (next() - 0.5);
      return [g, g * 0.97, g * 0.94];
    };
  },
  stripesWithAlpha: () => (u, v) => [128 + 120 * Math.sin(20 * u), 255 * v, 255 * (1 - u), 40 + 215 * u],
};

const imageDir = join(opt.workdir, 'images');
const pillowJobs = [];
// Writes one image and queues the reference's model input for it: { file, modelInput, width, height }.
function image(name, width, height, { channels = 3, bits = 8, jpeg = null }, picture) {
  const samples = render(width, height, channels, bits, picture);
  const modelInput = join(imageDir, `${name}.model-input.png`);
  if (!jpeg) {
    const file = join(imageDir, `${name}.png`);
    writeFileSync(file, png(width, height, channels, bits, samples));
    pillowJobs.push({ file, model_input: modelInput });
    return { file, modelInput, width, height };
  }
  const ppm = join(imageDir, `${name}.ppm`), file = join(imageDir, `${name}.jpg`);
  writeFileSync(ppm, Buffer.concat([Buffer.from(`P6\n${width} ${height}\n255\n`), Buffer.from(samples.buffer)]));
  pillowJobs.push({ file, model_input: modelInput, jpeg_from: ppm, ...jpeg });
  return { file, modelInput, width, height };
}

// --- model and cases ------------------------------------------------------------------------------------

mkdirSync(imageDir, { recursive: true });
let modelDir = opt.model && resolve(opt.model);
if (!modelDir) {
  modelDir = join(opt.workdir, 'model');
  run(opt.medlab, ['make-test-model', '--preset', opt.preset, '--seed', '1', '--out', modelDir, '--force']);
}
const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
const side = config.vision_config?.image_size;
if (!side) throw new Error(`${modelDir}/config.json has no vision_config.image_size: not a multimodal model`);
const gguf = join(opt.workdir, `model-${opt.type}.gguf`), mmproj = join(opt.workdir, `mmproj-${opt.type}.gguf`);
run(opt.medlab, ['convert', '--to', 'gguf', modelDir, gguf, '--type', opt.type, '--mmproj', mmproj]);

const gradient = image('gradient-37x91', 37, 91, {}, pictures.gradient());
const noise = image('noise-300x200', 300, 200, {}, pictures.noise(7));
const shapes = image('shapes-1000x1000', 1000, 1000, {}, pictures.shapes());
const native = image(`photo-${side}x${side}`, side, side, {}, pictures.photo(11));
const jpeg = image('photo-512x384', 512, 384, { jpeg: { quality: 90, subsampling: 2 } }, pictures.photo(3));
const rgb16 = image('ribs-rgb16-128x96', 128, 96, { bits: 16 }, pictures.ribs(5));
const grey = image('ribs-grey-200x300', 200, 300, { channels: 1 }, pictures.ribs(9));
const rgba = image('stripes-rgba-90x60', 90, 60, { channels: 4 }, pictures.stripesWithAlpha());
const pillowRequest = join(opt.workdir, 'pillow_request.json');
writeFileSync(pillowRequest, JSON.stringify({ size: side, images: pillowJobs }));
run(opt.python, [new URL('./pillow_model_input.py', import.meta.url).pathname, pillowRequest]);

// Chat prompts with <start_of_image> where each image goes, as medlab's --raw-prompt takes them. The
// prompts that share a question show that the image changes the answer.
const chat = (question) => `<bos><start_of_turn>user\n${question}<end_of_turn>\n<start_of_turn>model\n`;
const describe = '<start_of_image>Describe the image.';
const cases = [
  ['gradient', [gradient], describe],
  ['noise-zh', [noise], '这张图片里有什么？<start_of_image>'],
  ['shapes', [shapes], describe],
  ['photo-native', [native], 'Is there any abnormality in this scan?<start_of_image>'],
  ['photo-jpeg-zh', [jpeg], '<start_of_image>这是什么？'],
  ['ribs-rgb16', [rgb16], 'Findings:<start_of_image>Describe this chest X-ray.'],
  ['ribs-grey-zh', [grey], '<start_of_image>图中是什么？请简要描述。'],
  ['stripes-rgba', [rgba], describe],
  ['two-images', [shapes, jpeg], 'First image:<start_of_image>Second image:<start_of_image>Which one has a circle?'],
];

console.log(`llama.cpp vision parity: ${opt.preset ? `preset ${opt.preset}` : modelDir}, GGUF + mmproj ${opt.type}, ` +
            `${cases.length} prompts x ${steps} greedy steps, top-${top} log-probs, tolerance ${tolerance}; ` +
            `llama.cpp given Pillow's ${side}x${side} model input`);

const requestPath = join(opt.workdir, 'llama_request.json');
writeFileSync(requestPath, JSON.stringify({
  gguf, mmproj, n_ctx: Number(opt['n-ctx']), n_threads: Number(opt.threads), n_top: top,
  prompts: cases.map(([name, images, question]) => ({
    name, images: images.map((im) => im.modelInput), n_predict: steps,
    text: chat(question).replaceAll('<start_of_image>', `\n\n${kMarker}\n\n`),
  })),
}));
const reference = JSON.parse(run(opt.reference, [requestPath]));
writeFileSync(join(opt.workdir, 'llama_result.json'), JSON.stringify(reference, null, 1));
if (reference.media_marker !== kMarker)
  throw new Error(`llama.cpp's media marker is ${JSON.stringify(reference.media_marker)}, not ${kMarker}`);

// --- comparison -----------------------------------------------------------------------------------------

const { report, finish } = tally();

for (const [i, [name, images, question]] of cases.entries()) {
  const ref = reference.prompts[i];
  const imageArgs = images.flatMap((im) => ['--image', im.file]);
  const med = medlabRun(opt.medlab, { model: modelDir, text: chat(question), steps, top, threads: opt.threads,
                                      extra: ['--precision', 'exact', ...imageArgs] });
  const sizes = images.map((im) => `${im.width}x${im.height}`).join('+');
  const label = `${name.padEnd(14)} ${sizes.padEnd(19)} prompt ${String(ref.prompt_tokens.length).padStart(3)} tokens`;
  const difference = promptDifference(ref.prompt_tokens, med.prompt_tokens);
  const c = difference ? { problems: [difference], notes: [], matched: 0, maxDelta: NaN }
                       : compareSteps(ref, med, { steps, top, tolerance });
  // Anything but the tower's size would have llama.cpp resample, which is not what is compared.
  for (const im of ref.images)
    if (im.width !== side || im.height !== side) c.problems.push(`llama.cpp was given a ${im.width}x${im.height} image`);
  // Gemma 3's image tokens attend to each other both ways; mtmd says whether it decoded them so.
  if (!ref.non_causal) c.problems.push('llama.cpp decoded the image tokens causally');
  report(c.problems.length === 0, `${label}, ${c.matched}/${steps} steps match, max |Δlogprob| ${fmt(c.maxDelta)}`,
         [...c.problems, ...c.notes]);
}

// The images matter: llama.cpp's first step for each pair of prompts that differ only in their image.
function imageEffect(a, b) {
  const first = (p) => p.steps[0];
  if (first(a).id !== first(b).id) return Infinity;
  const other = new Map(first(b).top.map((e) => [e.id, e.logprob]));
  const cutoff = first(b).top[first(b).top.length - 1].logprob;
  return Math.max(...first(a).top.map((e) => Math.abs(e.logprob - (other.get(e.id) ?? cutoff))));
}
const sameQuestion = cases.flatMap(([, , q], i) => (q === describe ? [i] : []));
for (const [k, i] of sameQuestion.entries())
  for (const j of sameQuestion.slice(k + 1)) {
    const effect = imageEffect(reference.prompts[i], reference.prompts[j]);
    report(effect >= kImageEffect, `image effect ${cases[i][0]} vs ${cases[j][0]}: first-step top-${top} ` +
           `log-probs differ by ${Number.isFinite(effect) ? effect.toFixed(3) : 'another greedy token'} ` +
           `(at least ${kImageEffect} needed)`);
  }

finish();
