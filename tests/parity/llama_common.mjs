// What the llama.cpp parity drivers (llama_parity.mjs, llama_vision_parity.mjs) share: running the
// binaries, comparing one prompt's greedy steps, and the PASS/FAIL tally that ends in "N passed, M failed".
import { execFileSync } from 'node:child_process';

export function run(bin, args) {
  try {
    return execFileSync(bin, args, { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`${bin} ${args.slice(0, 3).join(' ')} ... failed (exit ${e.status}):\n${e.stderr || e.message}`);
  }
}

// `medlab run` with greedy decoding and log-probabilities; `extra` adds options (--image, ...).
export function medlabRun(medlab, { model, text, steps, top, threads, extra = [] }) {
  const out = run(medlab, ['run', '--model', model, '--raw-prompt', '--prompt', text, ...extra,
                           '--max-new-tokens', String(steps), '--temperature', '0', '--ignore-eos',
                           '--json', '--logprobs', String(top), '--threads', String(threads)]);
  return JSON.parse(out.trim().split('\n').pop());
}

const show = (s) => JSON.stringify(s);
export const fmt = (x) => (Number.isNaN(x) ? '-' : x.toExponential(1));

// The first difference between the two prompts' token ids, or null.
export function promptDifference(refTokens, medTokens) {
  if (refTokens.join(',') === medTokens.join(',')) return null;
  const at = refTokens.findIndex((id, k) => id !== medTokens[k]);
  const k = at < 0 ? refTokens.length : at;
  return `prompt tokens differ at ${k} (llama.cpp ${refTokens.length}, medlab ${medTokens.length} tokens): ` +
         `llama.cpp [${refTokens.slice(k, k + 5)}], medlab [${medTokens.slice(k, k + 5)}]`;
}

// Compares step by step while both sides continue the same sequence. Entries are matched by token id:
// both sides use the tokenizer's ids (the GGUF keeps them), while pieces are ambiguous (a lone byte
// token decodes to part of a character; "\n" and <0x0A> are different ids with the same text). A token
// in one top-k but not the other is a mismatch unless it sits at the cut-off within the tolerance.
// ties: false makes a differing pick a mismatch even when it is a near-tie.
export function compareSteps(ref, med, { steps, top, tolerance, ties = true }) {
  const problems = [], notes = [];
  let matched = 0, maxDelta = 0;
  for (let i = 0; i < steps; i++) {
    const r = ref.steps[i], m = med.logprobs?.[i];
    if (!m) { problems.push(`step ${i}: medlab gave no log-probs`); break; }
    if (r.id !== m.id) {
      // A near-tie may fall either way within the tolerance; the sequences part there, so stop comparing.
      const medlabOnRef = m.top.find((e) => e.id === r.id)?.logprob ?? -Infinity;
      const refOnMedlab = r.top.find((e) => e.id === m.id)?.logprob ?? -Infinity;
      const tie = ties && m.logprob - medlabOnRef <= tolerance && r.logprob - refOnMedlab <= tolerance;
      const what = `step ${i}: llama.cpp picks ${r.id} ${show(r.token)}, medlab ${m.id} ${show(m.piece)}`;
      if (tie) notes.push(`${what}: a near-tie, so the sequences part here; later steps not compared`);
      else problems.push(what);
      break;
    }
    matched++;
    const sides = [[r.top, m.top, 'medlab'], [m.top, r.top, 'llama.cpp']];
    for (const [mine, theirs, other] of sides) {
      const theirById = new Map(theirs.map((e) => [e.id, e.logprob]));
      const cutoff = theirs[theirs.length - 1].logprob;
      for (const e of mine) {
        if (theirById.has(e.id)) {
          maxDelta = Math.max(maxDelta, Math.abs(e.logprob - theirById.get(e.id)));
        } else if (e.logprob > cutoff + tolerance) {
          problems.push(`step ${i}: token ${e.id} (log-prob ${e.logprob.toFixed(5)}) missing from ${other}'s top-${top}`);
        }
      }
    }
  }
  if (maxDelta > tolerance) problems.push(`max |Δlogprob| ${fmt(maxDelta)} exceeds ${tolerance}`);
  return { problems, notes, matched, maxDelta: matched ? maxDelta : NaN };
}

export function tally() {
  let passed = 0, failed = 0;
  return {
    report(ok, line, problems = []) {
      ok ? passed++ : failed++;
      console.log(`${ok ? 'PASS' : 'FAIL'} ${line}`);
      for (const p of problems.slice(0, 5)) console.log(`     ${p}`);
    },
    finish() {
      console.log(`${passed} passed, ${failed} failed`);
      process.exit(failed ? 1 : 0);
    },
  };
}
