// End-to-end test of the Vision Lab web UI: a tiny random-weight model behind `medlab serve`, driven through
// Debian's chromium by playwright-core (no browser download). It uploads a DICOM, changes the window, draws a
// region, streams an answer, stops a second one, provokes an API error, exports JSON and checks the notice.
//
//   node tests/e2e/vision_lab_test.mjs --medlab build/medlab [--workdir DIR] [--chromium /usr/bin/chromium]
// Screenshots go to $E2E_ARTIFACTS (default build/e2e-artifacts/). Exit code 1 with a message on any failure.
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs, []));
const medlab = args.medlab;
const workdir = args.workdir || fs.mkdtempSync(path.join(os.tmpdir(), 'medlab-e2e-'));
const chromiumPath = args.chromium || '/usr/bin/chromium';
const dicomFile = args.dicom || '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';
const artifacts = process.env.E2E_ARTIFACTS || path.join(repo, 'build/e2e-artifacts');

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function step(message) { console.log(`[e2e] ${message}`); }

// Starts medlab serve on a free port and resolves with its URL once it prints the listening line.
function startServer(modelDir) {
  const server = spawn(medlab, ['serve', '--model', modelDir, '--port', '0', '--parallel', '2'],
                       {stdio: ['ignore', 'pipe', 'pipe']});
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`medlab serve printed no listening line in 60 s; stderr:\n${stderr}`)), 60000);
    readline.createInterface({input: server.stdout}).on('line', (line) => {
      const m = /^medlab serve: listening on (http:\/\/\S+)$/.exec(line.trim());
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`medlab serve exited early (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    });
  });
  return {server, url, stderr: () => stderr};
}

async function stopServer(server) {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function health(base) {
  const res = await fetch(base + '/api/health');
  check(res.ok, `GET /api/health answered ${res.status}`);
  return res.json();
}

async function generatedTokens(base) {
  const res = await fetch(base + '/metrics');
  check(res.ok, `GET /metrics answered ${res.status}`);
  const m = /^medlab_generated_tokens_total(?:\{[^}]*\})? (\S+)$/m.exec(await res.text());
  check(m, '/metrics has no medlab_generated_tokens_total');
  return Number(m[1]);
}

// A digest of the preview's decoded pixels, so "the image changed" means the pixels changed, not only the URI.
const pixelDigest = (page) => page.evaluate(() => {
  const img = document.getElementById('preview-img');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, weighted = 0;
  for (let i = 0; i < data.length; i += 4) { sum += data[i]; weighted = (weighted * 31 + data[i]) % 1000000007; }
  return {width: canvas.width, height: canvas.height, sum, weighted};
});

const waitForRender = (page, previousSrc) => page.waitForFunction((prev) => {
  const img = document.getElementById('preview-img');
  return img.src.startsWith('data:image/png;base64,') && img.src !== prev && img.complete && img.naturalWidth > 0 &&
         document.getElementById('preview-busy').hidden;
}, previousSrc, {timeout: 20000});

const answerState = (page) => page.evaluate(() => ({
  state: document.querySelector('.answer').dataset.state,
  status: document.getElementById('status').textContent,
  text: document.getElementById('answer').textContent,
}));

async function run(base, page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/');

  step('research notice and model info');
  const notice = page.locator('#research-notice');
  check(await notice.isVisible(), 'the research-use notice is not visible');
  check((await notice.textContent()).includes('Research use only — not for diagnosis.'), 'the notice text is wrong');
  const h = await health(base);
  await page.waitForFunction((sha) => document.getElementById('model-sha').title === sha, h.model_sha256, {timeout: 10000});
  check(await page.locator('#test-model-warning').isVisible(), 'no test-model warning although /api/health says test_model');

  step('upload the DICOM');
  await page.setInputFiles('#file-input', dicomFile);
  await waitForRender(page, '');
  const first = await pixelDigest(page);
  check(first.width > 0 && first.height > 0, 'the preview has no pixels');
  const presets = await page.locator('#window-select option').evaluateAll((os) => os.map((o) => o.value));
  for (const name of ['lung', 'bone', 'mediastinum', 'full', 'ct-rgb', 'cxr']) check(presets.includes(name), `window preset ${name} missing from the select: ${presets}`);
  check(await page.locator('#dicom-controls').isVisible(), 'the DICOM window controls are hidden');

  step('switch the window preset');
  const srcBefore = await page.locator('#preview-img').getAttribute('src');
  await page.selectOption('#window-select', 'lung');
  await waitForRender(page, srcBefore);
  const lung = await pixelDigest(page);
  check(lung.width === first.width && lung.height === first.height, 'the window changed the preview size');
  check(lung.sum !== first.sum || lung.weighted !== first.weighted, 'the lung window left the preview pixels unchanged');
  check((await page.locator('#preview-caption').textContent()).includes('lung'), 'the caption does not name the window');
  await page.screenshot({path: path.join(artifacts, '1-preview-lung-window.png'), fullPage: true});

  step('custom centre/width');
  const srcLung = await page.locator('#preview-img').getAttribute('src');
  await page.fill('#window-center', '40');
  await page.fill('#window-width', '80');
  await page.press('#window-width', 'Enter');
  await waitForRender(page, srcLung);
  check(await page.locator('#window-select').inputValue() === '40,80', 'the custom window is not selected');

  step('draw a region');
  const box = await page.locator('#preview-img').boundingBox();
  await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.25);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.4, {steps: 5});
  await page.mouse.move(box.x + box.width * 0.75, box.y + box.height * 0.6, {steps: 5});
  await page.mouse.up();
  const region = await page.evaluate(() => ['region-x', 'region-y', 'region-w', 'region-h']
    .map((id) => Number(document.getElementById(id).value)));
  const expected = [0.25 * first.width, 0.25 * first.height, 0.5 * first.width, 0.35 * first.height];
  check(region.every((v, i) => Math.abs(v - expected[i]) <= 2),
        `region ${region} is not the dragged rectangle ${expected.map(Math.round)} in source pixels`);
  check(await page.locator('#region-box').isVisible(), 'the region overlay is not shown');
  check((await page.locator('#region-controls').textContent()).includes('outlined in red'), 'the UI does not say the region is outlined in red');

  step('model input view');
  const srcSource = await page.locator('#preview-img').getAttribute('src');
  await page.click('#tab-model');
  await waitForRender(page, srcSource);
  const modelInput = await pixelDigest(page);
  const side = h.image_size || 896;
  check(modelInput.width === side && modelInput.height === side,
        `model input is ${modelInput.width}x${modelInput.height}, not the model's ${side}x${side}`);
  check(!(await page.locator('#region-box').isVisible()), 'the overlay is drawn over the model input');
  await page.screenshot({path: path.join(artifacts, '2-model-input.png'), fullPage: true});
  const srcModel = await page.locator('#preview-img').getAttribute('src');
  await page.click('#tab-source');
  await waitForRender(page, srcModel);

  step('ask a question and watch it stream');
  await page.click('.settings summary');
  await page.fill('#max-tokens', '48');
  await page.getByRole('button', {name: 'Describe the findings.'}).click();
  check(await page.inputValue('#question') === 'Describe the findings.', 'the example chip did not fill the question');
  // Records the answer's length each time it changes, with the time, to see it grow while streaming.
  await page.evaluate(() => {
    window.__lengths = [];
    const answer = document.getElementById('answer');
    new MutationObserver(() => {
      if (document.querySelector('.answer').dataset.state === 'streaming') {
        window.__lengths.push([performance.now(), answer.textContent.length]);
      }
    }).observe(answer, {childList: true, characterData: true, subtree: true});
  });
  await page.press('#question', 'Enter');
  await page.waitForFunction(() => document.querySelector('.answer').dataset.state !== 'streaming', null, {timeout: 120000});
  const done = await answerState(page);
  check(done.state === 'done', `the answer ended as "${done.state}": ${done.status} ${done.text}`);
  check(done.text.length > 0, 'the finished answer is empty');
  const lengths = await page.evaluate(() => window.__lengths);
  const grew = lengths.filter(([, n], i) => n > 0 && (i === 0 || n > lengths[i - 1][1]));
  check(grew.length >= 3, `the answer did not stream in (lengths seen while streaming: ${JSON.stringify(lengths)})`);
  check(grew.at(-1)[0] > grew[0][0], 'all streamed pieces arrived at once');
  const timings = await page.locator('#timings').textContent();
  for (const word of ['Prefill', 'Decode', 'tokens/s', 'Queue']) check(timings.includes(word), `timings lack ${word}: ${timings}`);
  await page.screenshot({path: path.join(artifacts, '3-answer-streamed.png'), fullPage: true});
  step(`streamed ${grew.length} growing updates, answer of ${done.text.length} characters`);

  step('export the answer as JSON');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  check(exported.answer === done.text, 'the exported answer differs from the one shown');
  check(exported.model_sha256 === h.model_sha256, `exported model_sha256 ${exported.model_sha256} is not the server's`);
  check(exported.request.region && exported.request.region.width === region[2], 'the export lacks the region');
  check(exported.research_use_only, 'the export lacks the research-use line');

  step('start another answer and stop it');
  const generatedBefore = await generatedTokens(base);
  await page.fill('#max-tokens', '2048');
  await page.fill('#question', '请描述这张CT图像的主要发现。');
  await page.click('#ask');
  await page.waitForFunction(() => document.getElementById('answer').textContent.length > 0 ||
                                    document.querySelector('.answer').dataset.state !== 'streaming', null, {timeout: 60000});
  check((await answerState(page)).state === 'streaming', 'the second answer finished before it could be stopped');
  await page.click('#stop');
  await page.waitForFunction(() => document.querySelector('.answer').dataset.state !== 'streaming', null, {timeout: 10000});
  const stopped = await answerState(page);
  check(stopped.state === 'stopped' && stopped.status.includes('Stopped'), `the stopped answer reads "${stopped.status}"`);
  check(stopped.text.endsWith('[stopped]'), 'the stopped answer is not marked [stopped]');
  check(await page.locator('#history .badge.stopped').count() === 1, 'history does not list the stopped answer');
  await page.screenshot({path: path.join(artifacts, '4-stopped.png'), fullPage: true});
  // The server cancels on disconnect: it must go idle soon and still answer.
  let idle = null;
  for (let i = 0; i < 100 && !idle; i++) {
    const now = await health(base);
    if (now.active === 0 && now.queue_depth === 0) idle = now;
    else await new Promise((r) => setTimeout(r, 100));
  }
  check(idle && idle.status === 'ok', 'the server did not go idle within 10 s of the stop');
  const generated = await generatedTokens(base) - generatedBefore;
  check(generated < 2048, `the server generated all ${generated} tokens of the stopped answer (no cancel on disconnect)`);
  step(`the server stopped after ${generated} tokens`);

  step('an API error is shown');
  await page.fill('#max-tokens', '999999');
  await page.fill('#question', 'Is there a pneumothorax?');
  await page.click('#ask');
  await page.waitForFunction(() => !document.getElementById('error').hidden, null, {timeout: 20000});
  const errorText = await page.locator('#error').textContent();
  check(/max_new_tokens/.test(errorText), `the error does not name the field: ${errorText}`);
  check((await answerState(page)).state === 'error', 'the failed request is not marked as an error');

  step('history');
  check(await page.locator('#history li').count() === 3, 'history does not list the three questions');
  await page.click('#history li:last-child button');
  check((await answerState(page)).text === done.text, 'clicking the first history entry does not show its answer');

  check(await notice.isVisible(), 'the research-use notice disappeared');
  check(errors.length === 0, `the page threw: ${errors.join('; ')}`);
}

async function main() {
  check(medlab && fs.existsSync(medlab), 'usage: vision_lab_test.mjs --medlab PATH/TO/medlab [--workdir DIR]');
  check(fs.existsSync(chromiumPath), `${chromiumPath} not found (apt-get install chromium; scripts/setup.sh does)`);
  check(fs.existsSync(dicomFile), `${dicomFile} not found (apt-get install python3-pydicom)`);
  fs.mkdirSync(artifacts, {recursive: true});
  fs.mkdirSync(workdir, {recursive: true});
  const modelDir = path.join(workdir, 'tiny');
  fs.rmSync(modelDir, {recursive: true, force: true});
  execFileSync(medlab, ['make-test-model', '--preset', 'tiny', '--seed', '1', '--out', modelDir], {stdio: 'inherit'});

  const {server, url, stderr} = startServer(modelDir);
  let browser = null;
  try {
    const base = await url;
    step(`server at ${base}`);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({acceptDownloads: true, viewport: {width: 1280, height: 900}});
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    try {
      await run(base, page);
    } catch (e) {
      await page.screenshot({path: path.join(artifacts, 'failure.png'), fullPage: true}).catch(() => {});
      throw e;
    }
    const after = await health(base);
    check(after.status === 'ok', 'the server is not healthy at the end');
    console.log(`[e2e] PASS; screenshots in ${artifacts}`);
  } catch (e) {
    console.error(`[e2e] FAIL: ${e.message}`);
    if (stderr()) console.error(`[e2e] medlab serve stderr (last 2000 characters):\n${stderr().slice(-2000)}`);
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close();
    await stopServer(server);
  }
}

main().catch((e) => { console.error(`[e2e] FAIL: ${e.message}`); process.exitCode = 1; });
