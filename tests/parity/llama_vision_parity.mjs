#!/usr/bin/env node
// llama.cpp multimodal parity: converts a model with `medlab convert --to gguf --mmproj`, runs the same
// Gemma 3 chat prompts with images through llama.cpp's mtmd path (tests/parity/llama_reference) and
// `medlab run --image`, and checks that both
//   - give the same prompt token ids (an image's soft tokens counted as <image_soft_token>s),
//   - pick the same greedy token at every step,
//   - give the same top-k log-probabilities (|difference| <= tolerance).
//
//   node llama_vision_parity.mjs --medlab BIN --reference BIN (--preset tiny | --model DIR) [--workdir DIR]
//        [--steps 16] [--top 5] [--tolerance 1e-3] [--threads 2] [--type f32] [--python PYTHON_WITH_PIL]
// Ends with "N passed, M failed"; exits 1 if anything failed.
//
// The images are generated here: PNGs (RGB, grayscale, RGBA) of shapes, dithered gradients, noise and
// patterns, and JPEGs when --python names a Python with Pillow to encode them. What is compared must show
// the models, not the image pipelines, so the compared images
//   - have the vision tower's own size (64x64 for the tiny model), so neither side resamples them:
//     medlab resizes as transformers' Gemma3ImageProcessor does (Pillow's antialiased bilinear,
//     stretching to a square), llama.cpp with its own bilinear filter;
//   - use only the channel values 0 and 255, which normalise to exactly -1 and 1: llama.cpp's clip.cpp
//     embeds patches through an f16 im2col, so it rounds every other normalised pixel value to f16
//     (relative error up to 2.4e-4), which moves the tiny model's log-probabilities by up to ~7e-3.
//     The JPEG holds flat 8x8 blocks of black and white, which every decoder reproduces exactly.
// Continuous-tone images at 64x64 and images of other sizes are run too and only reported (INFO); the
// resized ones against both of medlab's fits, stretched (the reference) and letterboxed.
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
    workdir: { type: 'string', default: join(process.cwd(), 'parity-vision') },
    steps: { type: 'string', default: '16' },
    top: { type: 'string', default: '5' },
    tolerance: { type: 'string', default: '1e-3' },
    threads: { type: 'string', default: '2' },
    'n-ctx': { type: 'string', default: '512' },
    type: { type: 'string', default: 'f32' },
    python: { type: 'string' },
  },
});
if (!opt.medlab || !opt.reference || !(opt.preset || opt.model)) {
  console.error('usage: llama_vision_parity.mjs --medlab BIN --reference BIN (--preset NAME | --model DIR) [--workdir DIR]');
  process.exit(2);
}
const steps = Number(opt.steps), top = Number(opt.top), tolerance = Number(opt.tolerance);
const kMarker = '<__media__>';  // mtmd_default_marker(); the reference reports its own, checked below

// --- images ---------------------------------------------------------------------------------------------

// A PNG of 8-bit samples: channels 1 (gray), 3 (RGB) or 4 (RGBA), rows unfiltered.
function png(width, height, channels, pixels) {
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
  header[8] = 8;
  header[9] = { 1: 0, 3: 2, 4: 6 }[channels];
  const rows = Buffer.alloc(height * (1 + width * channels));
  for (let y = 0; y < height; y++)
    Buffer.from(pixels.buffer, y * width * channels, width * channels).copy(rows, y * (1 + width * channels) + 1);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header),
                        chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

// Pictures as functions of (x, y) in [0, 1)^2 returning channel values in [0, 255].
const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));
function render(width, height, channels, f) {
  const pixels = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const v = f((x + 0.5) / width, (y + 0.5) / height, x, y);
      for (let c = 0; c < channels; c++) pixels[(y * width + x) * channels + c] = clamp(v[c]);
    }
  return pixels;
}
function noiseSource(seed) {  // xorshift32, so the noise is the same on every machine
  let s = seed >>> 0 || 1;
  return () => ((s ^= s << 13, s ^= s >>> 17, s ^= s << 5) >>> 0) / 2 ** 32;
}
const on = (bit) => (bit ? 255 : 0);
const kBayer = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];
const pictures = {
  // Channel values 0 and 255 only (see the top of the file).
  shapes: () => (u, v) => {
    if ((u - 0.35) ** 2 + (v - 0.4) ** 2 < 0.05) return [255, 0, 0];
    if (u > 0.55 && u < 0.9 && v > 0.55 && v < 0.85) return [0, 255, 0];
    if (Math.abs(u - v) < 0.03) return [0, 0, 0];
    return [255, 255, 255];
  },
  ditheredGradient: () => (u, v, x, y) => [on(16 * u > kBayer[y % 4][x % 4]), on(16 * v > kBayer[y % 4][x % 4]), 0],
  binaryNoise: (seed = 7) => {
    const next = noiseSource(seed);
    return () => [on(next() < 0.5), on(next() < 0.5), on(next() < 0.5)];
  },
  checker: () => (u, v, x, y) => ((Math.floor(x / 8) + Math.floor(y / 8)) % 2 ? [255, 255, 0] : [255, 0, 255]),
  ribs: () => (u, v) => {  // one channel: bright arcs in a dark chest
    const arc = Math.abs(Math.hypot((u - 0.5) * 1.4, v - 0.1) % 0.12 - 0.06) < 0.02;
    return [on(arc && v > 0.15 && v < 0.85 && Math.abs(u - 0.5) > 0.06)];
  },
  stripesWithAlpha: () => (u, v, x) => [on(x % 6 < 3), 0, on(v > 0.5), 40 + 215 * u],
  blocks: () => (u, v, x, y) => {  // flat 8x8 blocks, so a JPEG holds them exactly
    const b = on(((x >> 3) * 5 + (y >> 3) * 3) % 7 < 3);
    return [b, b, b];
  },
  // Continuous tone: only reported.
  gradient: () => (u, v) => [255 * u, 255 * v, 128 + 100 * Math.sin(6 * u * v)],
  photo: (seed = 11) => {  // smooth shading, an edge and grain: what a camera JPEG might hold
    const next = noiseSource(seed);
    return (u, v) => {
      const base = u + v < 1 ? [200 - 80 * v, 150 + 60 * u, 120] : [60 + 100 * u, 70, 90 + 120 * v];
      const grain = 24 * (next() - 0.5);
      return base.map((c) => c + grain);
    };
  },
};

// Writes one image; JPEGs go through Pillow (a PPM in, quality and subsampling as given).
function writeImage(dir, name, width, height, channels, picture, jpeg) {
  const pixels = render(width, height, channels, picture);
  if (!jpeg) {
    const path = join(dir, `${name}.png`);
    writeFileSync(path, png(width, height, channels, pixels));
    return path;
  }
  const ppm = join(dir, `${name}.ppm`), path = join(dir, `${name}.jpg`);
  writeFileSync(ppm, Buffer.concat([Buffer.from(`P6\n${width} ${height}\n255\n`), Buffer.from(pixels.buffer)]));
  run(opt.python, ['-c', 'import sys\nfrom PIL import Image\n' +
                   'Image.open(sys.argv[1]).save(sys.argv[2], quality=int(sys.argv[3]), subsampling=int(sys.argv[4]))',
                   ppm, path, String(jpeg.quality), String(jpeg.subsampling)]);
  return path;
}

// --- model and cases ------------------------------------------------------------------------------------

mkdirSync(opt.workdir, { recursive: true });
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

const imageDir = join(opt.workdir, 'images');
mkdirSync(imageDir, { recursive: true });
const jpegOk = Boolean(opt.python);
const image = (name, w, h, channels, picture, jpeg) =>
  jpeg && !jpegOk ? null : writeImage(imageDir, name, w, h, channels, picture, jpeg);

// Chat prompts with <start_of_image> where each image goes, as medlab's --raw-prompt takes them.
const chat = (question) => `<bos><start_of_turn>user\n${question}<end_of_turn>\n<start_of_turn>model\n`;
const shapes = image('shapes', side, side, 3, pictures.shapes());
const dithered = image('dithered-gradient', side, side, 3, pictures.ditheredGradient());
const exact = [
  ['shapes-zh', [shapes], '这张图片里有哪些形状？<start_of_image>'],
  ['dithered-gradient', [dithered], '<start_of_image>Describe the colours in this image.'],
  ['noise', [image('noise', side, side, 3, pictures.binaryNoise())], 'Is there any abnormality in this scan?<start_of_image>'],
  ['checker-zh', [image('checker', side, side, 3, pictures.checker())], '<start_of_image>图中是什么图案？请简要描述。'],
  ['ribs-gray', [image('ribs-gray', side, side, 1, pictures.ribs())], 'Findings:<start_of_image>Describe this chest X-ray.'],
  ['stripes-rgba', [image('stripes-rgba', side, side, 4, pictures.stripesWithAlpha())], '<start_of_image>What is shown here?'],
  ['blocks-jpeg-zh', [image('blocks', side, side, 3, pictures.blocks(), { quality: 100, subsampling: 0 })],
   '<start_of_image>这是什么？'],
  ['two-images', [shapes, dithered], 'First image:<start_of_image>Second image:<start_of_image>Which one has a circle?'],
];
// Only reported: continuous tone at the tower's size, then sizes that need a resize.
const reported = [
  ['gradient-smooth', [image('gradient', side, side, 3, pictures.gradient())], '<start_of_image>Describe the image.'],
  ['photo-jpeg', [image('photo', side, side, 3, pictures.photo(), { quality: 92, subsampling: 0 })],
   '<start_of_image>这是什么？'],
  ['wide-200x120', [image('wide', 200, 120, 3, pictures.shapes())], '<start_of_image>Describe the image.'],
  ['tall-48x96', [image('tall', 48, 96, 3, pictures.ditheredGradient())], '<start_of_image>Describe the image.'],
  ['small-40x40', [image('small', 40, 40, 3, pictures.checker())], '<start_of_image>Describe the image.'],
  ['photo-640x480-jpeg', [image('photo-large', 640, 480, 3, pictures.photo(3), { quality: 85, subsampling: 2 })],
   '<start_of_image>这是什么？'],
];
const runnable = (cases) => cases.filter(([, images]) => images.every(Boolean));
const cases = [...runnable(exact), ...runnable(reported)];
const skipped = [...exact, ...reported].length - cases.length;

console.log(`llama.cpp vision parity: ${opt.preset ? `preset ${opt.preset}` : modelDir}, GGUF + mmproj ${opt.type}, ` +
            `${runnable(exact).length} prompts with ${side}x${side} images x ${steps} greedy steps, top-${top} ` +
            `log-probs, tolerance ${tolerance}` + (skipped ? `; ${skipped} JPEG cases skipped (no --python)` : ''));

const requestPath = join(opt.workdir, 'llama_request.json');
writeFileSync(requestPath, JSON.stringify({
  gguf, mmproj, n_ctx: Number(opt['n-ctx']), n_threads: Number(opt.threads), n_top: top,
  prompts: cases.map(([name, images, question]) => ({
    name, images, n_predict: steps, text: chat(question).replaceAll('<start_of_image>', `\n\n${kMarker}\n\n`),
  })),
}));
const reference = JSON.parse(run(opt.reference, [requestPath]));
writeFileSync(join(opt.workdir, 'llama_result.json'), JSON.stringify(reference, null, 1));
if (reference.media_marker !== kMarker)
  throw new Error(`llama.cpp's media marker is ${JSON.stringify(reference.media_marker)}, not ${kMarker}`);

// --- comparison -----------------------------------------------------------------------------------------

const { report, finish } = tally();

function compare(ref, med) {
  const difference = promptDifference(ref.prompt_tokens, med.prompt_tokens);
  if (difference) return { problems: [difference], notes: [], matched: 0, maxDelta: NaN };
  return compareSteps(ref, med, { steps, top, tolerance });
}
const summary = (c) => `${c.matched}/${steps} steps match, max |Δlogprob| ${fmt(c.maxDelta)}`;

for (const [i, [name, images, question]] of cases.entries()) {
  const ref = reference.prompts[i];
  const medlab = (extra = []) =>
    medlabRun(opt.medlab, { model: modelDir, text: chat(question), steps, top, threads: opt.threads,
                            extra: [...images.flatMap((path) => ['--image', path]), ...extra] });
  const sizes = ref.images.map((im) => `${im.width}x${im.height}`).join('+');
  const label = `${name.padEnd(19)} ${sizes.padEnd(11)} prompt ${String(ref.prompt_tokens.length).padStart(3)} tokens`;
  if (i < runnable(exact).length) {
    const c = compare(ref, medlab());
    // Gemma 3's image tokens attend to each other both ways; mtmd says whether it decoded them so.
    if (!ref.non_causal) c.problems.push('llama.cpp decoded the image tokens causally');
    report(c.problems.length === 0, `${label}, ${summary(c)}`, [...c.problems, ...c.notes]);
  } else if (ref.images.every((im) => im.width === side && im.height === side)) {
    console.log(`INFO ${label}, ${summary(compare(ref, medlab()))} (continuous tone: llama.cpp's f16 im2col)`);
  } else {
    const stretched = compare(ref, medlab()), letterboxed = compare(ref, medlab(['--letterbox']));
    console.log(`INFO ${label}, medlab stretched: ${summary(stretched)}; letterboxed: ${summary(letterboxed)}`);
  }
}

finish();
