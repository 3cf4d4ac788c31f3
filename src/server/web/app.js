// medlab Vision Lab: the browser side of medlab serve. Plain JavaScript, no framework and no network
// access beyond the serving medlab (docs: api-contract in the project notes; /api/health, /api/render,
// /api/predict). The image is read here and sent as a data URI with every request; the server keeps nothing.
'use strict';

const $ = (id) => document.getElementById(id);

const state = {
  health: null,
  image: null,       // {name, dataUri, mime, isDicom, width, height, frames, modality, source, presets, fileWindows}
  window: '',        // '' = the server's default, a preset name, or "C,W"
  frame: 0,
  region: null,      // {x, y, width, height} in source pixels
  view: 'source',    // 'source' | 'model_input'
  history: [],
  selected: null,    // the history entry on display
  streaming: null,   // {controller, entry} while an answer streams
  render: null,      // {controller, seq} of the preview request in flight
  renderSeq: 0,
  drag: null,
};

// ---------- HTTP helpers ----------

function apiKey() { return sessionStorage.getItem('medlab-api-key') || ''; }

function headers() {
  const h = {'Content-Type': 'application/json'};
  const key = apiKey();
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}

// Turns a non-2xx answer into an Error carrying the contract's error.message (and the field at fault).
async function apiError(res) {
  let message = `HTTP ${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) {
      message = body.error.message + (body.error.param ? ` (field: ${body.error.param})` : '') + ` — HTTP ${res.status}`;
    }
  } catch (_) { /* not JSON: keep the status line */ }
  if (res.status === 401) message += '. Enter the server\'s API key under Settings.';
  if (res.status === 503) message += '. The server is busy; try again in a moment.';
  return new Error(message);
}

async function postJson(path, body, signal) {
  const res = await fetch(path, {method: 'POST', headers: headers(), body: JSON.stringify(body), signal});
  if (!res.ok) throw await apiError(res);
  return res.json();
}

function showError(message) {
  const el = $('error');
  el.textContent = message;
  el.hidden = !message;
}

// ---------- Model info ----------

async function refreshHealth() {
  const stateEl = $('server-state');
  try {
    const res = await fetch('/api/health', {cache: 'no-store'});
    if (!res.ok) throw await apiError(res);
    const h = await res.json();
    state.health = h;
    $('model-name').textContent = h.model;
    $('model-sha').textContent = (h.model_sha256 || '').slice(0, 12);
    $('model-sha').title = h.model_sha256 || '';
    $('model-engine').textContent = h.engine;
    stateEl.textContent = `${h.status} · ${h.active}/${h.parallel} busy · ${h.queue_depth} queued`;
    stateEl.classList.remove('bad');
    $('test-model-warning').hidden = !h.test_model;
    if (!h.vision) $('file-name').textContent = 'This model has no vision tower: questions with an image will be refused.';
  } catch (e) {
    stateEl.textContent = 'unreachable: ' + e.message;
    stateEl.classList.add('bad');
  }
}

// ---------- Image loading ----------

function startsWith(bytes, sig, at = 0) { return sig.every((b, i) => bytes[at + i] === b); }

async function loadFile(file) {
  showError('');
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  let mime = null;
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47])) mime = 'image/png';
  else if (startsWith(head, [0xff, 0xd8, 0xff])) mime = 'image/jpeg';
  else if (startsWith(head, [0x44, 0x49, 0x43, 0x4d], 128) || /\.dcm$/i.test(file.name)) mime = 'application/dicom';
  if (!mime) {
    showError(`${file.name} is not a PNG, JPEG or DICOM file (no PNG/JPEG signature, no "DICM" at byte 128, no .dcm name).`);
    return;
  }
  const dataUrl = await new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
  // The browser labels the data URI with its own guess (often octet-stream for .dcm); the server wants ours.
  const dataUri = `data:${mime};base64,` + dataUrl.slice(dataUrl.indexOf(',') + 1);
  state.image = {name: file.name, dataUri, mime, isDicom: mime === 'application/dicom', presets: null};
  state.window = '';
  state.frame = 0;
  state.region = null;
  $('file-name').textContent = `${file.name} (${(file.size / 1024).toFixed(1)} KiB, ${mime})`;
  $('image-tools').hidden = false;
  $('dicom-controls').hidden = !state.image.isDicom;
  $('window-select').replaceChildren();
  $('window-center').value = '';
  $('window-width').value = '';
  $('frame-input').value = '0';
  $('frame-row').hidden = true;
  setView('source');
  showRegion();
}

function clearImage() {
  if (state.render) state.render.controller.abort();
  state.image = null;
  state.region = null;
  $('image-tools').hidden = true;
  $('file-input').value = '';
  $('preview-img').removeAttribute('src');
  $('file-name').textContent = 'No image: the question is asked as text only.';
}

// ---------- Preview rendering ----------

function imageFields() {
  const img = state.image;
  const body = {image: img.dataUri};
  if (img.isDicom) {
    if (state.window) body.window = state.window;
    body.frame = state.frame;
  }
  return body;
}

let renderTimer = 0;
function scheduleRender() {
  clearTimeout(renderTimer);
  renderTimer = setTimeout(render, 120);
}

async function render() {
  if (!state.image) return;
  if (state.render) state.render.controller.abort();
  const seq = ++state.renderSeq;
  const controller = new AbortController();
  state.render = {controller, seq};
  const view = state.view;
  const body = {...imageFields(), view, format: 'json'};
  // The source view draws the region as an overlay; the model input shows the server's red outline.
  if (view === 'model_input' && state.region) body.region = state.region;
  $('preview-busy').hidden = false;
  try {
    const r = await postJson('/api/render', body, controller.signal);
    if (seq !== state.renderSeq) return;
    showError('');
    if (view === 'source') updateImageInfo(r);
    const img = $('preview-img');
    img.src = 'data:image/png;base64,' + r.png_base64;
    img.alt = view === 'source' ? `Preview of ${state.image.name}` : 'The 896×896 image the model is shown';
    $('preview').classList.toggle('model-view', view === 'model_input');
    $('preview-caption').textContent = view === 'source' ? sourceCaption()
      : `${r.width}×${r.height}: exactly what the model sees, after windowing, the red region outline and resizing.`;
    showRegion();
  } catch (e) {
    if (e.name === 'AbortError') return;
    showError('Could not render the image: ' + e.message);
    $('preview-caption').textContent = 'Rendering failed.';
  } finally {
    if (seq === state.renderSeq) { $('preview-busy').hidden = true; state.render = null; }
  }
}

function updateImageInfo(r) {
  const img = state.image;
  Object.assign(img, {width: r.width, height: r.height, frames: r.frames || 1, modality: r.modality || '',
                      source: r.source || ''});
  if (img.isDicom && !img.presets) {
    img.presets = r.presets || [];
    img.fileWindows = r.file_windows || [];
    fillWindowSelect();
  }
  $('frame-row').hidden = !(img.frames > 1);
  $('frame-input').max = String(img.frames - 1);
  $('frame-count').textContent = `of ${img.frames} (0–${img.frames - 1})`;
  $('file-windows').textContent = img.fileWindows && img.fileWindows.length
    ? 'Windows in the file: ' + img.fileWindows.map((w) => `C ${w.center} / W ${w.width}` +
                                                       (w.explanation ? ` (${w.explanation})` : '')).join('; ')
    : (img.isDicom ? 'The file names no window.' : '');
  for (const id of ['region-x', 'region-w']) $(id).max = String(img.width);
  for (const id of ['region-y', 'region-h']) $(id).max = String(img.height);
}

function sourceCaption() {
  const img = state.image;
  const parts = [img.modality, `${img.width}×${img.height}`, img.source];
  if (img.isDicom) {
    if (img.frames > 1) parts.push(`frame ${state.frame} (of 0–${img.frames - 1})`);
    parts.push('window: ' + (state.window || 'file (default)'));
  }
  return parts.filter(Boolean).join(' · ');
}

function fillWindowSelect() {
  const select = $('window-select');
  const options = [new Option('file (default)', '')];
  // The server lists its named presets; the whole-range and MedGemma modes are names `--window` takes too.
  const names = [...new Set([...state.image.presets, 'full', 'ct-rgb', 'cxr'])].filter((n) => n !== 'file');
  for (const p of names) options.push(new Option(p, p));
  for (const w of state.image.fileWindows) {
    options.push(new Option(`File: C ${w.center} / W ${w.width}` + (w.explanation ? ` ${w.explanation}` : ''),
                            `${w.center},${w.width}`));
  }
  select.replaceChildren(...options);
  select.value = state.window;
}

function setWindow(value) {
  state.window = value;
  const select = $('window-select');
  if (![...select.options].some((o) => o.value === value)) select.append(new Option(`Custom: ${value}`, value));
  select.value = value;
  const cw = /^(-?[\d.]+),(-?[\d.]+)$/.exec(value);
  $('window-center').value = cw ? cw[1] : '';
  $('window-width').value = cw ? cw[2] : '';
  scheduleRender();
}

function applyCustomWindow() {
  const c = $('window-center').value.trim(), w = $('window-width').value.trim();
  if (c === '' || w === '' || !(Number(w) > 0)) {
    showError('Window: give a centre and a width greater than 0.');
    return;
  }
  showError('');
  setWindow(`${Number(c)},${Number(w)}`);
}

function setView(view) {
  state.view = view;
  $('tab-source').setAttribute('aria-selected', String(view === 'source'));
  $('tab-model').setAttribute('aria-selected', String(view === 'model_input'));
  scheduleRender();
}

// ---------- Region of interest ----------

function showRegion() {
  const box = $('region-box');
  const r = state.region, img = state.image;
  const ids = ['region-x', 'region-y', 'region-w', 'region-h'];
  const values = r ? [r.x, r.y, r.width, r.height] : ['', '', '', ''];
  ids.forEach((id, i) => { if (document.activeElement !== $(id)) $(id).value = values[i]; });
  if (!r || !img || !img.width || state.view !== 'source') { box.hidden = true; return; }
  box.hidden = false;
  box.style.left = (100 * r.x / img.width) + '%';
  box.style.top = (100 * r.y / img.height) + '%';
  box.style.width = (100 * r.width / img.width) + '%';
  box.style.height = (100 * r.height / img.height) + '%';
}

function setRegion(region) {
  state.region = region;
  showRegion();
  if (state.view === 'model_input') scheduleRender();
}

// Maps a pointer position on the displayed preview to source-image pixels, clamped to the image.
function toSource(event) {
  const rect = $('preview-img').getBoundingClientRect();
  const img = state.image;
  const x = (event.clientX - rect.left) / rect.width * img.width;
  const y = (event.clientY - rect.top) / rect.height * img.height;
  return {x: Math.min(Math.max(x, 0), img.width), y: Math.min(Math.max(y, 0), img.height)};
}

function regionBetween(a, b) {
  const x0 = Math.floor(Math.min(a.x, b.x)), y0 = Math.floor(Math.min(a.y, b.y));
  const x1 = Math.ceil(Math.max(a.x, b.x)), y1 = Math.ceil(Math.max(a.y, b.y));
  return {x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0)};
}

function onPointerDown(event) {
  if (event.button !== 0 || !state.image || !state.image.width || state.view !== 'source') return;
  event.preventDefault();
  $('preview').setPointerCapture(event.pointerId);
  state.drag = {start: toSource(event), before: state.region};
}

function onPointerMove(event) {
  if (!state.drag) return;
  state.region = regionBetween(state.drag.start, toSource(event));
  showRegion();
}

function onPointerUp(event) {
  if (!state.drag) return;
  const end = toSource(event);
  const {start} = state.drag;
  state.drag = null;
  // A click (no real drag) leaves no region rather than a 1-pixel one.
  const tiny = Math.abs(end.x - start.x) < 2 && Math.abs(end.y - start.y) < 2;
  setRegion(tiny ? null : regionBetween(start, end));
}

function regionFromInputs() {
  const v = ['region-x', 'region-y', 'region-w', 'region-h'].map((id) => $(id).value.trim());
  if (v.every((s) => s === '')) { setRegion(null); return; }
  const [x, y, w, h] = v.map(Number);
  const img = state.image;
  if (v.some((s) => s === '') || [x, y, w, h].some((n) => !Number.isInteger(n)) || x < 0 || y < 0 || w < 1 || h < 1 ||
      (img.width && (x + w > img.width || y + h > img.height))) {
    showError(`Region: whole pixels inside the ${img.width}×${img.height} image, width and height at least 1.`);
    return;
  }
  showError('');
  setRegion({x, y, width: w, height: h});
}

// ---------- Asking ----------

function numberSetting(id, name, integer) {
  const raw = $(id).value.trim();
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`Settings: ${name} must be ${integer ? 'a whole number' : 'a number'}.`);
  }
  return n;
}

async function ask() {
  if (state.streaming) return;
  const question = $('question').value.trim();
  if (!question) { showError('Type a question first.'); $('question').focus(); return; }
  let settings;
  try {
    settings = {max_new_tokens: numberSetting('max-tokens', 'max new tokens', true),
                temperature: numberSetting('temperature', 'temperature', false),
                top_p: numberSetting('top-p', 'top-p', false), seed: numberSetting('seed', 'seed', true)};
  } catch (e) { showError(e.message); return; }
  showError('');
  const body = {question, stream: true, ...settings};
  const img = state.image;
  if (img) {
    Object.assign(body, imageFields());
    if (state.region) body.region = {...state.region};
  }
  const entry = {
    id: state.history.length + 1, asked_at: new Date().toISOString(), question, answer: '', status: 'streaming',
    streamed_pieces: 0, started: performance.now(), elapsed_ms: 0, result: null, error: null,
    request: {...settings, window: body.window ?? null, frame: body.frame ?? null, region: body.region ?? null},
    image: img ? {name: img.name, mime: img.mime, width: img.width, height: img.height, source: img.source,
                  modality: img.modality} : null,
  };
  state.history.push(entry);
  const controller = new AbortController();
  state.streaming = {controller, entry};
  select(entry);
  updateButtons();
  try {
    const res = await fetch('/api/predict', {method: 'POST', headers: headers(), body: JSON.stringify(body),
                                             signal: controller.signal});
    if (!res.ok) throw await apiError(res);
    if (!(res.headers.get('content-type') || '').includes('text/event-stream')) {
      finish(entry, await res.json());
    } else {
      await readEvents(res.body, (event, data) => onEvent(entry, event, data));
      if (entry.status === 'streaming') throw new Error('The answer stream ended before its "done" event.');
    }
  } catch (e) {
    if (e.name === 'AbortError') {
      entry.status = 'stopped';
    } else {
      entry.status = 'error';
      entry.error = e.message;
      showError(e.message);
    }
  } finally {
    entry.elapsed_ms = performance.now() - entry.started;
    state.streaming = null;
    updateButtons();
    renderHistory();
    if (state.selected === entry) showEntry(entry);
  }
}

// Reads a text/event-stream body and calls onEvent(name, parsed data) for each event.
async function readEvents(stream, onEvent) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true}).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(name, JSON.parse(data.join('\n')));
    }
  }
}

function onEvent(entry, event, data) {
  if (event === 'token') {
    entry.answer += data.text;
    entry.streamed_pieces += 1;
    entry.elapsed_ms = performance.now() - entry.started;
    if (state.selected === entry) showEntry(entry);
  } else if (event === 'done') {
    finish(entry, data);
  } else if (event === 'error') {
    const err = data.error || {};
    throw new Error((err.message || 'The server reported an error') + (err.param ? ` (field: ${err.param})` : ''));
  }
}

function finish(entry, result) {
  entry.result = result;
  entry.answer = result.answer;
  entry.status = 'done';
}

function stop() {
  if (state.streaming) state.streaming.controller.abort();
}

function updateButtons() {
  $('ask').disabled = !!state.streaming;
  $('stop').disabled = !state.streaming;
}

// ---------- Answer and history display ----------

function select(entry) {
  state.selected = entry;
  showEntry(entry);
  renderHistory();
}

const statusText = {
  streaming: (e) => `Streaming… ${e.streamed_pieces} tokens, ${(e.elapsed_ms / 1000).toFixed(1)} s`,
  done: (e) => `Done (${e.result.stop_reason})`,
  stopped: (e) => `Stopped by you after ${e.streamed_pieces} tokens`,
  error: () => 'Error',
};

function showEntry(entry) {
  const section = $('answer').closest('section');
  section.dataset.state = entry.status;
  $('status').textContent = statusText[entry.status](entry);
  $('answer-question').textContent = 'Q: ' + entry.question;
  const answer = $('answer');
  answer.textContent = entry.answer;
  answer.setAttribute('aria-busy', String(entry.status === 'streaming'));
  if (entry.status === 'stopped') {
    const mark = document.createElement('span');
    mark.className = 'stopped-mark';
    mark.textContent = ' [stopped]';
    answer.append(mark);
  }
  if (entry.status === 'error') {
    const mark = document.createElement('span');
    mark.className = 'error-mark';
    mark.textContent = (entry.answer ? '\n' : '') + 'Error: ' + entry.error;
    answer.append(mark);
  }
  showTimings(entry);
  $('export').disabled = entry.status === 'streaming';
}

function showTimings(entry) {
  const rows = [];
  const r = entry.result;
  if (r) {
    const t = r.timings || {};
    rows.push(['Tokens', `${r.n_tokens} generated, ${r.prompt_tokens} in the prompt`], ['Stop', r.stop_reason],
              ['Queue', ms(t.queue_ms)], ['Image', ms(t.image_ms)], ['Prefill', ms(t.prefill_ms)],
              ['Decode', ms(t.decode_ms)], ['Total', ms(t.total_ms)],
              ['Speed', t.tokens_per_s != null ? `${t.tokens_per_s.toFixed(1)} tokens/s` : '–'], ['Seed', r.seed]);
  } else {
    rows.push(['Tokens', `${entry.streamed_pieces} received`], ['Elapsed', ms(entry.elapsed_ms)]);
  }
  $('timings').replaceChildren(...rows.map(([k, v]) => {
    const div = document.createElement('div');
    const dt = document.createElement('dt'), dd = document.createElement('dd');
    dt.textContent = k;
    dd.textContent = String(v);
    div.append(dt, dd);
    return div;
  }));
}

function ms(v) { return v == null ? '–' : v < 1000 ? `${v.toFixed(1)} ms` : `${(v / 1000).toFixed(2)} s`; }

function renderHistory() {
  const list = $('history');
  $('history-empty').hidden = state.history.length > 0;
  list.replaceChildren(...state.history.slice().reverse().map((entry) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'history-item';
    if (entry === state.selected) button.setAttribute('aria-current', 'true');
    const q = document.createElement('span');
    q.className = 'history-q';
    q.textContent = `#${entry.id} ${entry.question}`;
    const meta = document.createElement('span');
    meta.className = `badge ${entry.status}`;
    meta.textContent = entry.status + (entry.image ? ' · image' : '') + (entry.request.region ? ' · region' : '');
    const a = document.createElement('span');
    a.className = 'history-a';
    a.textContent = entry.answer || (entry.error ? 'Error: ' + entry.error : '');
    button.append(q, meta, a);
    button.addEventListener('click', () => select(entry));
    li.append(button);
    return li;
  }));
}

function exportEntry() {
  const e = state.selected;
  if (!e) return;
  const h = state.health || {};
  const r = e.result || {};
  const record = {
    exported_at: new Date().toISOString(),
    research_use_only: r.research_use_only || h.research_use_only || 'Research software, not for diagnosis.',
    model: h.model, model_sha256: r.model_sha256 || h.model_sha256, engine: h.engine, test_model: h.test_model,
    asked_at: e.asked_at, question: e.question, answer: e.answer, status: e.status,
    stop_reason: e.status === 'stopped' ? 'stopped_by_user' : r.stop_reason ?? null, error: e.error,
    request: e.request, image: e.image, result: e.result,
  };
  const blob = new Blob([JSON.stringify(record, null, 2) + '\n'], {type: 'application/json'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `medlab-answer-${e.id}-${e.asked_at.replace(/[:.]/g, '-')}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---------- Wiring ----------

function init() {
  const fileInput = $('file-input');
  fileInput.addEventListener('change', () => { if (fileInput.files[0]) loadFile(fileInput.files[0]); });
  for (const zone of [$('drop-zone'), $('preview')]) {
    zone.addEventListener('dragover', (e) => { e.preventDefault(); $('drop-zone').classList.add('over'); });
    zone.addEventListener('dragleave', () => $('drop-zone').classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      $('drop-zone').classList.remove('over');
      if (e.dataTransfer.files[0]) loadFile(e.dataTransfer.files[0]);
    });
  }
  $('clear-image').addEventListener('click', clearImage);
  $('tab-source').addEventListener('click', () => setView('source'));
  $('tab-model').addEventListener('click', () => setView('model_input'));
  $('window-select').addEventListener('change', (e) => setWindow(e.target.value));
  $('window-apply').addEventListener('click', applyCustomWindow);
  for (const id of ['window-center', 'window-width']) {
    $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') applyCustomWindow(); });
  }
  $('frame-input').addEventListener('change', (e) => {
    const f = Number(e.target.value);
    const frames = state.image.frames || 1;
    if (!Number.isInteger(f) || f < 0 || f >= frames) { showError(`Frame: 0 to ${frames - 1}.`); return; }
    showError('');
    state.frame = f;
    scheduleRender();
  });

  const preview = $('preview');
  preview.addEventListener('pointerdown', onPointerDown);
  preview.addEventListener('pointermove', onPointerMove);
  preview.addEventListener('pointerup', onPointerUp);
  preview.addEventListener('pointercancel', () => { state.drag = null; });
  for (const id of ['region-x', 'region-y', 'region-w', 'region-h']) $(id).addEventListener('change', regionFromInputs);
  $('region-clear').addEventListener('click', () => { showError(''); setRegion(null); });

  const question = $('question');
  question.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ask(); }
  });
  for (const chip of document.querySelectorAll('.chip')) {
    chip.addEventListener('click', () => { question.value = chip.textContent; question.focus(); });
  }
  $('ask').addEventListener('click', ask);
  $('stop').addEventListener('click', stop);
  $('export').addEventListener('click', exportEntry);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (state.drag) {   // Esc during a drag puts the previous region back
      setRegion(state.drag.before);
      state.drag = null;
    } else {
      stop();
    }
  });

  const key = $('api-key');
  key.value = apiKey();
  key.addEventListener('change', () => {
    if (key.value) sessionStorage.setItem('medlab-api-key', key.value);
    else sessionStorage.removeItem('medlab-api-key');
  });

  refreshHealth();
  setInterval(refreshHealth, 10000);
}

init();
