// Writes tests/parity/tokenizer_corpus.jsonl: the strings medlab's tokenizer must encode exactly as
// the reference does. Deterministic (seeded PRNG): rerunning gives the same file.
//   node tests/parity/tokenizer_make_corpus.mjs
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// mulberry32: small, seedable, good enough for picking words.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(20250301);
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const pick = (list) => list[int(0, list.length - 1)];
const cp = (n) => String.fromCodePoint(n);

const corpus = [];
const add = (s) => corpus.push(s);

// --- English clinical text from templates -------------------------------------------------------
const en = {
  modality: ["Chest radiograph", "CT of the abdomen and pelvis", "MRI brain without contrast", "PA and lateral chest X-ray",
    "Non-contrast head CT", "Ultrasound of the right upper quadrant", "CT pulmonary angiogram", "Mammogram",
    "Portable AP chest film", "MRI lumbar spine", "Dermoscopy image", "Fundus photograph", "H&E-stained slide"],
  finding: ["a 2.3 cm spiculated nodule", "no focal consolidation", "mild cardiomegaly", "small bilateral pleural effusions",
    "a displaced fracture of the left distal radius", "diffuse ground-glass opacities", "an enhancing ring lesion",
    "cholelithiasis without cholecystitis", "a hypodense hepatic lesion measuring 14 mm", "no pneumothorax",
    "degenerative disc disease at L4-L5", "a well-circumscribed mass", "patchy airspace disease", "atelectasis",
    "an irregular pigmented lesion with blue-white veil", "microaneurysms and dot-blot hemorrhages",
    "a 4 mm non-obstructing renal calculus", "pneumoperitoneum", "interstitial edema", "an old healed rib fracture"],
  location: ["in the right upper lobe", "at the left lung base", "in segment VII of the liver", "in the right frontal lobe",
    "along the lateral chest wall", "within the gallbladder", "in the lingula", "at the costophrenic angles",
    "in the upper outer quadrant", "at the level of T12", "in the posterior fossa", "near the hilum"],
  impression: ["Findings are suspicious for malignancy; recommend tissue sampling.", "No acute cardiopulmonary process.",
    "Likely benign; follow-up imaging in 6 months is suggested.", "Consistent with community-acquired pneumonia.",
    "Clinical correlation is recommended.", "Interval improvement compared with the prior study.",
    "Cannot exclude pulmonary embolism.", "Stable appearance since 03/14/2023.", "BI-RADS 4: suspicious abnormality.",
    "Findings represent moderate nonproliferative diabetic retinopathy."],
  question: ["What is the most likely diagnosis?", "Is there evidence of pneumothorax?", "Describe the findings in this image.",
    "Which imaging study should be ordered next?", "What are the differential diagnoses for this lesion?",
    "Does the patient need urgent surgical consultation?", "How would you stage this tumor (TNM)?",
    "Can you summarize the report in plain language for the patient?"],
  patient: ["A 67-year-old man", "A 34-year-old woman", "An 8-year-old boy", "A 52-year-old female smoker",
    "A 79-year-old patient with COPD", "A 45-year-old man with type 2 diabetes", "A 29-year-old pregnant woman (G2P1)"],
  complaint: ["presents with a 3-day history of productive cough and fever of 38.9 °C", "reports progressive dyspnea on exertion",
    "complains of right upper quadrant pain after fatty meals", "was found unresponsive at home",
    "has had intermittent hematuria for two weeks", "notes a changing mole on the back", "reports blurred vision"],
  drug: ["amoxicillin 500 mg PO TID", "metformin 1,000 mg BID", "heparin 5000 units SC q8h", "atorvastatin 40 mg nightly",
    "furosemide 20 mg IV once", "insulin glargine 12 U at bedtime", "ceftriaxone 1 g IV daily", "albuterol 2 puffs PRN"],
};
const englishSentence = () => {
  switch (int(0, 5)) {
    case 0: return `${pick(en.modality)} shows ${pick(en.finding)} ${pick(en.location)}.`;
    case 1: return `FINDINGS: ${pick(en.finding)} ${pick(en.location)}. IMPRESSION: ${pick(en.impression)}`;
    case 2: return `${pick(en.patient)} ${pick(en.complaint)}. ${pick(en.question)}`;
    case 3: return `Plan: start ${pick(en.drug)}; repeat ${pick(en.modality).toLowerCase()} in ${int(2, 12)} weeks.`;
    case 4: return `${pick(en.question)} ${pick(en.modality)}: ${pick(en.finding)}.`;
    default: return `Vitals: BP ${int(90, 180)}/${int(50, 110)} mmHg, HR ${int(45, 140)} bpm, SpO2 ${int(85, 100)}%, T ${int(360, 404) / 10} °C.`;
  }
};
for (let i = 0; i < 600; ++i) add(englishSentence());
for (let i = 0; i < 120; ++i) {
  const n = int(2, 6);
  add(Array.from({ length: n }, englishSentence).join(pick([" ", "\n", "\n\n", "  ", "\r\n"])));
}

// --- Chinese clinical text ----------------------------------------------------------------------
const zh = {
  exam: ["胸部X线片", "腹部CT平扫", "头颅MRI", "胸部CT增强", "肝胆超声", "乳腺钼靶", "腰椎MRI", "心脏彩超"],
  finding: ["右肺上叶见一约2.3 cm结节影", "双肺纹理增多", "未见明显实变", "心影稍增大", "双侧少量胸腔积液",
    "肝右叶见低密度灶", "胆囊内见多发结石", "左侧桡骨远端骨折", "脑室系统未见扩张", "L4/5椎间盘突出"],
  impression: ["考虑肺炎，建议抗感染治疗后复查。", "未见急性心肺病变。", "恶性待排，建议穿刺活检。", "请结合临床。",
    "较前片明显好转。", "考虑良性病变，建议6个月后随访。"],
  question: ["最可能的诊断是什么？", "是否存在气胸？", "请描述这张图像的表现。", "下一步应做什么检查？", "鉴别诊断有哪些？"],
  patient: ["患者男，67岁", "患者女，34岁", "患儿，8岁", "患者女，52岁，吸烟史30年"],
  complaint: ["咳嗽、咳痰3天，发热38.9℃", "活动后气促进行性加重", "右上腹痛伴恶心", "无痛性血尿2周", "视物模糊1月"],
};
const chineseSentence = () => {
  switch (int(0, 3)) {
    case 0: return `${pick(zh.exam)}示：${pick(zh.finding)}。`;
    case 1: return `检查所见：${pick(zh.finding)}，${pick(zh.finding)}。诊断意见：${pick(zh.impression)}`;
    case 2: return `${pick(zh.patient)}，${pick(zh.complaint)}。${pick(zh.question)}`;
    default: return `${pick(zh.question)}（${pick(zh.exam)}：${pick(zh.finding)}）`;
  }
};
for (let i = 0; i < 300; ++i) add(chineseSentence());
for (let i = 0; i < 60; ++i) add(`${englishSentence()} ${chineseSentence()} ${englishSentence()}`);

// --- Hand-written cases -------------------------------------------------------------------------
[
  "", " ", "  ", "\n", "\t", "\r\n", "Hello world", "hello", " hello", "hello ", "  hello  ", "HELLO WORLD",
  "The patient is a 45-year-old male.", "No acute intracranial hemorrhage, mass effect, or midline shift.",
  "Impression:\n1. Right lower lobe pneumonia.\n2. Small right pleural effusion.\n",
  "患者主诉胸痛三天。", "影像学表现：双肺散在磨玻璃影，以外带为主。", "CT值约45 HU，增强后强化至120 HU。",
  "Nodule measures 12 x 9 x 8 mm (previously 10 x 8 x 7 mm).", "Volume: 35 cm³; density −850 HU; Δ = +2.5 mm",
  "eGFR < 30 mL/min/1.73 m²", "Na⁺ 138 mmol/L, K⁺ 4.1 mmol/L, Cl⁻ 101 mmol/L", "T2-hyperintense, T1-hypointense",
  "α-fetoprotein ↑, β-hCG negative, γ-GT 85 U/L", "±2σ", "∑ᵢ xᵢ² ≤ ∫₀^∞ e^{-x} dx", "x ≠ y ⇒ f(x) ≠ f(y)",
  "Patient's temperature: 39°C (102.2°F)", "O₂ sat 88% on RA → 95% on 2 L NC", "1/2 tab q.d. p.r.n.",
  "https://example.org/report?id=123&view=full", "email: radiology@hospital.example", "C:\\Users\\scan\\image.dcm",
  "```python\nprint('hello')\n```", "| Finding | Size |\n|---|---|\n| nodule | 5 mm |", "# Heading\n\n- item\n- item",
  "<table><tr><td>WBC</td><td>12.3</td></tr></table>", "<b>bold</b> and <i>italic</i>", "<h1>Report</h1>",
  "<start_of_turn>user\nWhat is this?<end_of_turn>\n<start_of_turn>model\n", "<bos>", "<eos>", "<pad>", "<unk>",
  "<mask>", "[multimodal]", "<start_of_image>", "<end_of_image>", "<image_soft_token>", "<unused0>", "<unused12>",
  "<unused6241>", "<unused6242>", "<start_of_tur", "start_of_turn>", "<<start_of_turn>>", "<bos><bos>", "<eos >",
  "< bos>", "<BOS>", "text<end_of_turn>more", "<start_of_image><image_soft_token><image_soft_token><end_of_image>",
  "▁", "▁▁", "▁hello", "hello▁world", " ▁ ", "<0x41>", "<0xZZ>", "�", "\u0000", "\u0000\u0001\u0002", "\u007f",
  "\u00a0nbsp\u00a0", "zero\u200bwidth", "\ufeffBOM", "soft\u00adhyphen", "line\u2028sep", "para\u2029sep",
  "e\u0301", "é", "ñ", "n\u0303", "Z\u0351\u0352\u0353\u0354\u0355", "a\u0300\u0301\u0302\u0303\u0304", "ﬁ ligature", "Ａ full-width",
  "𠀀𠀁𠀂", "𪚥", "\ue000\ue001\uf8ff", "\u{f0000}\u{10fffd}", "\ufffe\uffff", "\u{1d400}\u{1d401}", "ℌ𝔢𝔩𝔩𝔬",
  "👍", "👍🏽", "👨‍👩‍👧‍👦", "🧑🏿‍⚕️", "👩‍⚕️ doctor", "🏳️‍🌈", "🇺🇸🇨🇳", "1️⃣", "❤️", "☺︎", "🫀🫁🦴🦷🧠",
  "مرحبا بالعالم", "الأشعة السينية للصدر طبيعية.", "Привет, мир!", "Рентгенограмма органов грудной клетки без патологии.",
  "こんにちは世界", "胸部X線写真に異常なし。", "カタカナ ひらがな 漢字", "안녕하세요 세계", "흉부 X선 검사에서 이상 소견 없음.",
  "Γειά σου Κόσμε", "ακτινογραφία θώρακος", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
  "Ünïcödé tëxt wïth dïäcrïtïcs", "ÆØÅ æøå", "Straße", "İstanbul ıi", "ǅǈǋ", "ﷺ", "ༀ", "𓀀𓀁", "ꙮ",
].forEach(add);

// --- Numbers and units --------------------------------------------------------------------------
const units = ["mm", "cm", "cm³", "mL", "L", "mg", "mg/dL", "mmol/L", "HU", "mmHg", "bpm", "°C", "%", "U/L", "μg", "µm",
  "kg/m²", "Gy", "mSv", "MHz", "T", "ms", "s", "min", "h", "IU/mL", "×10⁹/L", "g/dL", "mEq/L"];
for (let i = 0; i < 220; ++i) {
  const value = pick([
    () => String(int(0, 9)), () => String(int(10, 999)), () => String(int(1000, 999999)),
    () => (random() * 100).toFixed(int(1, 3)), () => int(1, 99) + "," + String(int(0, 999)).padStart(3, "0"),
    () => "-" + int(1, 1000), () => "−" + int(1, 1000), () => int(1, 9) + "e-" + int(1, 9), () => "0." + int(0, 99999),
    () => int(1, 20) + " x " + int(1, 20) + " x " + int(1, 20), () => int(1, 12) + "/" + int(1, 28) + "/" + int(1990, 2030),
  ])();
  add(pick(["", "measures ", "≈", "~", "size: ", "(", "Δ "]) + value + pick([" ", "", "\u00a0", "  "]) + pick(units) +
      pick(["", ".", ")", ",", ";"]));
}
for (let i = 0; i < 40; ++i) add(Array.from({ length: int(5, 40) }, () => int(0, 9)).join(""));

// --- Whitespace ---------------------------------------------------------------------------------
const spaces = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\v", "\f"];
for (let i = 0; i < 200; ++i) {
  const n = int(1, 6);
  let s = "";
  for (let k = 0; k < n; ++k) {
    s += Array.from({ length: int(0, 4) }, () => pick(spaces)).join("");
    if (random() < 0.7) s += pick(["word", "lesion", "CT", "肺", "x", "12", "—", "<td>", ":"]);
  }
  add(s);
}
for (let n = 1; n <= 40; n += int(1, 3)) {
  add(" ".repeat(n)); add("\n".repeat(n)); add("\t".repeat(n)); add("a" + " ".repeat(n) + "b"); add("\r\n".repeat(n));
  add("▁".repeat(n));
}

// --- Special-token strings inside text ----------------------------------------------------------
const specials = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<image_soft_token>",
  "<start_of_image>", "<end_of_image>", "<unused12>", "<unused99>", "[multimodal]", "<table>", "</td>", "<sup>",
  "<start_of_tur", "<end_of_turn", "start_of_turn>", "<unused", "<unused99999>", "<", ">", "</", "<0x0A>", "\n", "\t\t"];
for (let i = 0; i < 180; ++i) {
  const n = int(1, 5);
  let s = "";
  for (let k = 0; k < n; ++k) {
    s += pick(["", " ", "\n"]) + (random() < 0.5 ? pick(specials) : englishSentence().slice(0, int(1, 30)));
  }
  add(s);
}

// --- Emoji --------------------------------------------------------------------------------------
const emoji = ["😀", "🩺", "💊", "🏥", "🩻", "🧬", "🦠", "❤️", "👍", "👋", "🤝", "🙏", "🧑‍⚕️", "👩‍🔬", "👨‍👩‍👧"];
const tones = ["", "🏻", "🏼", "🏽", "🏾", "🏿"];
for (let i = 0; i < 100; ++i) {
  let s = "";
  for (let k = int(1, 6); k > 0; --k) {
    const base = pick(["👍", "👋", "🙏", "🧑", "👩", "👨", "✋"]);
    s += random() < 0.5 ? pick(emoji) : base + pick(tones) + (random() < 0.3 ? "\u200d⚕️" : "");
    if (random() < 0.3) s += pick([" ", "ok", "。", "\n"]);
  }
  add(s);
}

// --- Scripts and symbols, random mixtures -------------------------------------------------------
const ranges = {
  latin: [0x20, 0x7e], latin1: [0xa0, 0xff], greek: [0x391, 0x3c9], cyrillic: [0x410, 0x44f], hebrew: [0x5d0, 0x5ea],
  arabic: [0x621, 0x64a], devanagari: [0x905, 0x939], thai: [0xe01, 0xe2e], hangul: [0xac00, 0xd7a3],
  hiragana: [0x3041, 0x3096], katakana: [0x30a1, 0x30fa], cjk: [0x4e00, 0x9fff], cjkExtB: [0x20000, 0x2a6df],
  math: [0x2200, 0x22ff], arrows: [0x2190, 0x21ff], box: [0x2500, 0x257f], combining: [0x300, 0x36f],
  privateUse: [0xe000, 0xf8ff], supPrivateUse: [0xf0000, 0xf00ff], mathAlnum: [0x1d400, 0x1d7ff],
  emoji: [0x1f300, 0x1f6ff], specials: [0xfff0, 0xfffd], control: [0x0, 0x1f], c1: [0x80, 0x9f],
};
const rangeNames = Object.keys(ranges);
const randomChar = (name) => cp(int(...ranges[name]));
for (const name of rangeNames) {
  for (let i = 0; i < 10; ++i) add(Array.from({ length: int(1, 20) }, () => randomChar(name)).join(""));
}
for (let i = 0; i < 250; ++i) {
  const names = Array.from({ length: int(1, 4) }, () => pick(rangeNames));
  add(Array.from({ length: int(1, 40) }, () => (random() < 0.15 ? " " : randomChar(pick(names)))).join(""));
}

// --- Single characters --------------------------------------------------------------------------
for (let c = 0x20; c < 0x7f; ++c) add(cp(c));
for (const c of [0x0, 0x9, 0xa, 0xd, 0x1b, 0x7f, 0x85, 0xa0, 0xad, 0x2581, 0x200d, 0xfe0f, 0x3000, 0xfeff, 0xfffd,
  0x10ffff, 0x1f600, 0x20000, 0xe000, 0x4e2d, 0xac00])
  add(cp(c));

// --- Long strings (a few KB) --------------------------------------------------------------------
for (let i = 0; i < 16; ++i) {
  let s = "";
  const target = int(2000, 6000);
  while (s.length < target) s += (i % 3 === 1 ? chineseSentence() : englishSentence()) + pick([" ", " ", "\n", "\n\n"]);
  add(s);
}
add("a".repeat(5000));
add("ab".repeat(2000));
add(" ".repeat(3000));
add("the ".repeat(1000));
add("肺".repeat(2000));
add("\n".repeat(100) + "x" + "\t".repeat(100));

writeFileSync(join(here, "tokenizer_corpus.jsonl"), corpus.map((text) => JSON.stringify({ text })).join("\n") + "\n");
console.log(`wrote ${corpus.length} strings to tokenizer_corpus.jsonl`);
