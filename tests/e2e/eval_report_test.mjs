// The `medlab eval` HTML report in a real browser: it writes hand-made references and batch rows (two
// categories, one answer carrying an HTML injection), runs medlab eval with --bootstrap, opens the report via
// file:// in Debian's chromium through playwright-core, checks the title, the notice, the tables, the bars and
// CI whiskers of the SVG charts, that the injection stayed text, and saves a screenshot.
//
//   node tests/e2e/eval_report_test.mjs --medlab build/medlab [--workdir DIR] [--chromium /usr/bin/chromium]
// The screenshot goes to $E2E_ARTIFACTS/eval-report.png (default build/e2e-artifacts/). Exit code 1 on any failure.
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {chromium} from 'playwright-core';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs, []));
const medlab = args.medlab;
const workdir = args.workdir || fs.mkdtempSync(path.join(os.tmpdir(), 'medlab-eval-e2e-'));
const chromiumPath = args.chromium || '/usr/bin/chromium';
const artifacts = process.env.E2E_ARTIFACTS || path.join(repo, 'build/e2e-artifacts');

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function step(message) { console.log(`[e2e] ${message}`); }

const injection = '<img src=x onerror="document.title=\'pwned\'">';
const cases = [
  ['cxr0', 'chest x-ray', 'small left pleural effusion without pneumothorax', 'small left pleural effusion'],
  ['cxr1', 'chest x-ray', 'mild cardiomegaly with no pulmonary edema', 'mild cardiomegaly with no pulmonary edema'],
  ['cxr2', 'chest x-ray', 'no acute cardiopulmonary process', 'no acute cardiopulmonary process'],
  ['cxr3', 'chest x-ray', 'right lower lobe consolidation', `${injection} consolidation in the right lower lobe`],
  ['ct0', 'ct', 'a small hypodense lesion in the liver', 'a lesion in the liver'],
  ['ct1', 'ct', 'no free fluid in the abdomen', 'free fluid in the pelvis'],
  ['ct2', 'ct', 'the kidneys are normal in size', 'the kidneys are normal in size'],
  ['ct3', 'ct', 'a fracture of the left tenth rib', 'rib fracture on the left'],
];

// Writes the inputs and runs medlab eval; returns the report's path.
function makeReport() {
  fs.mkdirSync(workdir, {recursive: true});
  const run = {engine: 'medlab', commit: 'e2e', isa: 'avx2', precision: 'fast', model_sha256: 'cd'.repeat(32), seed: 0,
               sampler: {temperature: 0, top_k: 0, top_p: 1, min_p: 0, repetition_penalty: 1}, max_new_tokens: 64, stop: []};
  const lines = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const refs = path.join(workdir, 'refs.jsonl'), preds = path.join(workdir, 'preds.jsonl');
  fs.writeFileSync(refs, lines(cases.map(([id, category, reference]) => ({id, references: [reference], category}))));
  fs.writeFileSync(preds, lines(cases.map(([id, , , answer]) => ({
    id: `${id}#1`, image_id: id, question: 'Describe the findings.', answer, error: null, seed: 0,
    model_sha256: run.model_sha256, run}))));
  const html = path.join(workdir, 'eval-report.html');
  const stdout = execFileSync(medlab, ['eval', '--predictions', preds, '--references', refs, '--by', 'category',
                                       '--bootstrap', '200', '--out-html', html], {encoding: 'utf8'});
  step(`medlab eval printed:\n${stdout.trimEnd()}`);
  return html;
}

async function run(page, html) {
  await page.goto(pathToFileURL(html).href);
  check(await page.title() === 'medlab eval report', `title is ${JSON.stringify(await page.title())}`);
  check((await page.locator('.notice').innerText()).includes('Research software, not for diagnosis'), 'no notice');
  check((await page.locator('table.manifest').innerText()).includes('cd'.repeat(32)), 'the manifest lacks model_sha256');

  const metricRows = await page.locator('table.metrics tr').count();
  check(metricRows === 9, `the metrics table has ${metricRows} rows, expected a header and 8 metrics`);
  const bleu4 = await page.locator('table.metrics tr', {hasText: 'BLEU-4'}).innerText();
  check(/\d+\.\d\d\s+\[\d+\.\d\d, \d+\.\d\d\]/.test(bleu4), `BLEU-4 row has no value and interval: ${bleu4}`);
  const groups = await page.locator('table.groups tr').allInnerTexts();
  check(groups.length === 3 && groups[1].startsWith('chest x-ray') && groups[2].startsWith('ct'),
        `group rows: ${JSON.stringify(groups)}`);
  check(await page.locator('table.findings tr').count() === 15, 'the findings table needs 14 rows');
  check(await page.locator('table.worst tr').count() === 9, 'the worst-items table needs the 8 items');

  // One chart per metric; each with a bar per group that has a value, and CI whiskers drawn.
  const charts = page.locator('.charts svg');
  check(await charts.count() === 8, `${await charts.count()} charts, expected 8`);
  for (let i = 0; i < 8; ++i) {
    const chart = charts.nth(i);
    const name = await chart.getAttribute('aria-label');
    const bars = await chart.locator('rect.bar').count();
    check(bars >= 1 && bars <= 2, `${name}: ${bars} bars`);
    const box = await chart.locator('rect.bar').first().boundingBox();
    check(box && box.width > 5, `${name}: its bar is not drawn (${JSON.stringify(box)})`);
  }
  check(await page.locator('svg[aria-label="ROUGE-L by category"] rect.bar').count() === 2, 'ROUGE-L chart needs 2 bars');
  check(await page.locator('svg[aria-label="ROUGE-L by category"] line.whisker').count() >= 3, 'ROUGE-L chart has no whiskers');

  // The injected markup is text on the page, not an element, and ran nothing.
  check(await page.locator('table.worst img').count() === 0, 'an <img> from an answer became an element');
  check((await page.locator('table.worst').innerText()).includes('<img src=x'), 'the injected text is not shown as text');
  check(await page.title() !== 'pwned', 'the injection ran');

  fs.mkdirSync(artifacts, {recursive: true});
  await page.screenshot({path: path.join(artifacts, 'eval-report.png'), fullPage: true});
}

async function main() {
  check(medlab, 'usage: eval_report_test.mjs --medlab BIN [--workdir DIR]');
  let browser = null;
  try {
    const html = makeReport();
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync'],
    });
    const page = await (await browser.newContext({viewport: {width: 1280, height: 900}})).newPage();
    page.setDefaultTimeout(20000);
    const requests = [];
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
    await run(page, html);
    check(requests.length === 0, `the report fetched ${requests.join(', ')}`);
    console.log(`[e2e] PASS; screenshot in ${path.join(artifacts, 'eval-report.png')}`);
  } catch (e) {
    console.error(`[e2e] FAIL: ${e.message}`);
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close();
  }
}

await main();
