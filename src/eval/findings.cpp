// Finding labels and F1 (see findings.h). The phrase and cue lists are this project's own compact rule
// set, modelled on what the CheXpert labeler and NegBio recognise but matched on words within a clause
// instead of on a dependency parse; docs/EVALUATION.md lists them and where they differ.
#include "eval/findings.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>
#include <vector>

#include "core/error.h"

namespace medlab {
namespace {

// ---- Words and clauses ----

struct Word {
  std::string text;          // lowercase letters, digits and apostrophes; "1.5" keeps its point
  bool after_comma = false;  // a comma or colon came before it: qualifiers before a mention stop there
};
using Clause = std::vector<Word>;

bool is_copula(std::string_view word) { return word == "is" || word == "are" || word == "was" || word == "were"; }

// Words that start a new clause, so a cue before them does not reach past them.
bool ends_clause(std::string_view word) {
  return word == "but" || word == "however" || word == "although" || word == "though" || word == "whereas" ||
         word == "except";
}

// Sentences end at . ! ? ; and clauses also at the words above and before "there is/are/was/were"
// ("no effusion and there is mild edema" states two things).
std::vector<Clause> split_clauses(std::string_view report) {
  std::vector<Clause> clauses(1);
  std::string word;
  bool comma = false;
  auto end_clause = [&] {
    if (!clauses.back().empty()) clauses.emplace_back();
    comma = false;
  };
  auto end_word = [&] {
    if (word.empty()) return;
    if (ends_clause(word)) {
      end_clause();
    } else {
      if (is_copula(word) && !clauses.back().empty() && clauses.back().back().text == "there") {
        Word there = std::move(clauses.back().back());
        clauses.back().pop_back();
        end_clause();
        clauses.back().push_back(std::move(there));
      }
      clauses.back().push_back({word, comma});
      comma = false;
    }
    word.clear();
  };
  for (size_t i = 0; i < report.size(); ++i) {
    const auto c = static_cast<unsigned char>(report[i]);
    const bool decimal_point = c == '.' && !word.empty() && std::isdigit(static_cast<unsigned char>(word.back())) &&
                               i + 1 < report.size() && std::isdigit(static_cast<unsigned char>(report[i + 1]));
    if (std::isalnum(c) || decimal_point || (c == '\'' && !word.empty())) {
      word += static_cast<char>(std::tolower(c));
      continue;
    }
    end_word();
    if (c == '.' || c == '!' || c == '?' || c == ';') end_clause();
    if (c == ',' || c == ':') comma = true;
  }
  end_word();
  if (clauses.back().empty()) clauses.pop_back();
  return clauses;
}

// ---- Phrases ----

// Words to match in sequence; a trailing '*' lets the last word match any word it begins
// ("atelecta*": atelectasis, atelectatic).
struct Phrase {
  std::vector<std::string> words;
  bool prefix = false;
};

Phrase make_phrase(std::string_view text) {
  Phrase phrase;
  if (text.ends_with('*')) {
    phrase.prefix = true;
    text.remove_suffix(1);
  }
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find(' ', start), text.size());
    phrase.words.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return phrase;
}

std::vector<Phrase> make_phrases(std::initializer_list<std::string_view> texts) {
  std::vector<Phrase> phrases;
  for (std::string_view text : texts) phrases.push_back(make_phrase(text));
  return phrases;
}

// Number of words `phrase` matches at clause[at], or 0.
size_t match(const Phrase& phrase, const Clause& clause, size_t at) {
  const size_t n = phrase.words.size();
  if (at + n > clause.size()) return 0;
  for (size_t k = 0; k < n; ++k) {
    const std::string& word = clause[at + k].text;
    const bool last = k + 1 == n;
    if (phrase.prefix && last ? !word.starts_with(phrase.words[k]) : word != phrase.words[k]) return 0;
  }
  return n;
}

std::string words_text(const Clause& clause, size_t begin, size_t end) {
  std::string text;
  for (size_t i = begin; i < end; ++i) text += (i > begin ? " " : "") + clause[i].text;
  return text;
}

// ---- Cues: negation and uncertainty around a mention ----

// A cue reaches a mention when at most `reach` words lie between them; negations reach further so
// that "no consolidation, effusion, pneumothorax or edema" negates the whole list.
constexpr size_t kBeforeReach = 6, kNegationReach = 8, kAfterReach = 3, kNearReach = 2;

struct Cue {
  Phrase phrase;
  size_t reach;
};

struct CueClass {
  Mention effect;
  std::vector<Cue> before, after;
};

void add_cues(std::vector<Cue>& cues, size_t reach, std::initializer_list<std::string_view> texts) {
  for (std::string_view text : texts) cues.push_back({make_phrase(text), reach});
}

// Tried in this order, the first class with a cue in reach wins: hedges that contain a negation word
// come first, so "cannot exclude" or "no new" is not read as a negation.
std::vector<CueClass> make_cue_classes() {
  CueClass hedged_negations{Mention::Uncertain, {}, {}};
  add_cues(hedged_negations.before, kBeforeReach,
           {"cannot exclude", "can not exclude", "can't exclude", "cannot rule out", "can not rule out",
            "can't rule out", "no evidence to rule out", "no new"});
  add_cues(hedged_negations.after, kAfterReach,
           {"cannot be excluded", "can not be excluded", "can't be excluded", "not be excluded", "not excluded",
            "cannot be ruled out", "can not be ruled out", "not be ruled out", "not ruled out"});

  CueClass negations{Mention::Negative, {}, {}};
  add_cues(negations.before, kNegationReach,
           {"no", "not", "without", "free of", "negative for", "absence of", "absent", "resolution of", "resolved",
            "removal of", "removed", "rather than", "nor", "neither", "never", "clear of", "clearing of"});
  add_cues(negations.after, kAfterReach,
           {"not", "no longer", "resolved", "cleared", "removed", "absent", "gone", "none", "normal", "unremarkable",
            "within normal limits"});

  CueClass hedges{Mention::Uncertain, {}, {}};
  add_cues(hedges.before, kBeforeReach,
           {"may", "might", "could", "possible", "possibly", "probable", "probably", "likely", "questionable",
            "question of", "suspected", "suspect", "suspicious for", "suspicion of", "suspicion for", "concern for",
            "concerning for", "worrisome for", "suggestive of", "suggests", "suggesting", "suggest", "rule out",
            "differential", "presumed", "presumably", "equivocal", "indeterminate", "borderline", "maybe", "perhaps"});
  add_cues(hedges.before, kNearReach, {"versus", "vs", "or"});
  add_cues(hedges.after, kAfterReach,
           {"is likely", "are likely", "is less likely", "is possible", "is suspected", "are suspected", "suspected",
            "is questioned", "is favored"});
  add_cues(hedges.after, kNearReach, {"versus", "vs", "or", "may be", "might be", "could be"});
  return {hedged_negations, negations, hedges};
}

const std::vector<CueClass>& cue_classes() {
  static const std::vector<CueClass> classes = make_cue_classes();
  return classes;
}

// A cue's scope also ends at "and" followed by a determiner ("no pneumothorax and the tube is in place")
// and, for cues before the mention, at a copula ("no effusion is seen ... pneumonia").
bool scope_broken(const Clause& clause, size_t from, size_t to, bool copula_breaks) {
  for (size_t i = from; i < to; ++i) {
    const std::string& word = clause[i].text;
    if (copula_breaks && is_copula(word)) return true;
    if (word == "and" && i + 1 < to) {
      const std::string& next = clause[i + 1].text;
      if (next == "the" || next == "a" || next == "an") return true;
    }
  }
  return false;
}

struct Label {
  Mention mention = Mention::Positive;
  std::string cue;
};

// The label cues give the words clause[begin, end): the nearest cue of the first class that has one in
// reach (and within `cap` words), or Positive.
Label label_by_cues(const Clause& clause, size_t begin, size_t end,
                    size_t cap = std::numeric_limits<size_t>::max()) {
  for (const CueClass& cue_class : cue_classes()) {
    std::optional<size_t> best_gap;
    std::string best_cue;
    auto consider = [&](size_t gap, size_t reach, size_t at, size_t length) {
      if (gap > std::min(reach, cap) || (best_gap && gap >= *best_gap)) return;
      best_gap = gap;
      best_cue = words_text(clause, at, at + length);
    };
    for (const Cue& cue : cue_class.before)
      for (size_t at = 0; at < begin; ++at)
        if (size_t n = match(cue.phrase, clause, at);
            n && at + n <= begin && !scope_broken(clause, at + n, begin, true))
          consider(begin - (at + n), cue.reach, at, n);
    for (const Cue& cue : cue_class.after)
      for (size_t at = end; at < clause.size(); ++at)
        if (size_t n = match(cue.phrase, clause, at); n && !scope_broken(clause, end, at, false))
          consider(at - end, cue.reach, at, n);
    if (best_gap) return {cue_class.effect, best_cue};
  }
  return {};
}

// ---- Anatomy described by a qualifier ("heart size is enlarged", "normal cardiomediastinal silhouette") ----

struct Qualifiers {
  std::vector<Phrase> negative, uncertain, positive;
};

// How far a qualifier may start from its anatomy, in words, and how far a cue on it may reach.
constexpr size_t kQualifierAfter = 5, kQualifierBefore = 4, kQualifierCueReach = 3;

const Qualifiers& size_qualifiers() {
  static const Qualifiers qualifiers{
      make_phrases({"normal", "unremarkable", "within normal limits", "upper limits of normal",
                    "upper limit of normal"}),
      // CheXpert reads a stable or unchanged silhouette as uncertain: the earlier study may have been abnormal.
      make_phrases({"stable", "unchanged", "similar", "borderline", "no change", "no significant change", "not changed",
                    "without change"}),
      make_phrases({"enlarged", "enlargement", "enlarging", "large", "widened", "widening", "wide", "increased",
                    "prominent", "prominence"}),
  };
  return qualifiers;
}

const Qualifiers& lung_qualifiers() {
  static const Qualifiers qualifiers{make_phrases({"clear"}), {}, {}};
  return qualifiers;
}

// The first qualifier after the anatomy (nearest first), else the nearest before it in the same
// comma-delimited stretch; a positive qualifier is itself checked for cues ("the heart is not enlarged").
std::optional<Label> label_by_qualifier(const Clause& clause, size_t begin, size_t end, const Qualifiers& qualifiers) {
  auto qualifier_at = [&](size_t at, size_t limit) -> std::optional<Label> {
    const std::pair<const std::vector<Phrase>*, Mention> kinds[] = {
        {&qualifiers.negative, Mention::Negative},
        {&qualifiers.uncertain, Mention::Uncertain},
        {&qualifiers.positive, Mention::Positive},
    };
    for (const auto& [phrases, mention] : kinds)
      for (const Phrase& phrase : *phrases)
        if (size_t n = match(phrase, clause, at); n && at + n <= limit) {
          if (mention == Mention::Positive) {
            Label cued = label_by_cues(clause, at, at + n, kQualifierCueReach);
            if (cued.mention != Mention::Positive) return cued;
          }
          return Label{mention, words_text(clause, at, at + n)};
        }
    return std::nullopt;
  };
  for (size_t at = end; at < clause.size() && at - end <= kQualifierAfter; ++at)
    if (auto label = qualifier_at(at, clause.size())) return label;
  for (size_t at = begin; at-- > 0 && begin - at <= kQualifierBefore;) {
    if (clause[at + 1].after_comma) break;
    if (auto label = qualifier_at(at, begin)) return label;
  }
  return std::nullopt;
}

// ---- The lexicon ----

struct FindingRules {
  std::vector<Phrase> mentions;    // labelled by the cues around them
  std::vector<Phrase> hedged;      // mentions that are at most uncertain ("vascular congestion")
  std::vector<Phrase> unmentions;  // a mention inside one of these does not count ("pericardial effusion")
  std::vector<Phrase> anatomy;     // labelled by a qualifier, as label_by_qualifier reads it
  const Qualifiers* qualifiers = nullptr;
};

struct Lexicon {
  std::array<FindingRules, kFindingCount> findings;  // No Finding's entry stays empty: it is derived
  FindingRules other;                                // abnormalities outside the 14 that rule out No Finding
  std::vector<Phrase> normal_statements;             // quoted as the evidence for No Finding
};

Lexicon make_lexicon() {
  Lexicon lexicon;
  auto rules = [&](Finding finding) -> FindingRules& { return lexicon.findings[static_cast<size_t>(finding)]; };

  FindingRules& mediastinum = rules(Finding::EnlargedCardiomediastinum);
  mediastinum.mentions =
      make_phrases({"mediastinal widening", "mediastinal enlargement", "cardiomediastinal enlargement"});
  mediastinum.anatomy = make_phrases({"cardiomediastinal silhouette*", "cardiomediastinal contour*",
                                      "cardiomediastinum", "mediastinum", "mediastinal silhouette*",
                                      "mediastinal contour*", "mediastinal configuration", "pericardial silhouette"});
  mediastinum.qualifiers = &size_qualifiers();

  FindingRules& heart = rules(Finding::Cardiomegaly);
  heart.mentions = make_phrases({"cardiomegaly", "cardiac enlargement"});
  heart.anatomy = make_phrases({"heart", "heart size", "heart shadow", "heart silhouette", "cardiac silhouette*",
                                "cardiac size", "cardiac contour*", "cardiac shadow", "cardiac and mediastinal"});
  heart.qualifiers = &size_qualifiers();

  FindingRules& lesion = rules(Finding::LungLesion);
  lesion.mentions = make_phrases({"mass", "masses", "nodul*", "lump", "cavitary lesion*", "carcinoma", "neoplasm*",
                                  "tumor*", "tumour*", "malignancy"});
  lesion.unmentions = make_phrases({"calcified nodul*", "mass effect"});

  FindingRules& opacity = rules(Finding::LungOpacity);
  opacity.mentions = make_phrases({"opaci*", "airspace disease", "air space disease", "infiltrat*", "increased density",
                                   "increased densities", "interstitial marking*", "interstitial pattern", "reticul*",
                                   "scar", "scarring", "peribronchial thickening", "peribronchial cuffing", "haziness",
                                   "hazy", "ground glass", "groundglass"});
  opacity.unmentions = make_phrases({"pleural scar*", "pleuroparenchymal scar*", "pleuro parenchymal scar*"});
  opacity.anatomy = make_phrases({"lungs", "lung fields"});
  opacity.qualifiers = &lung_qualifiers();

  FindingRules& edema = rules(Finding::Edema);
  edema.mentions = make_phrases({"edema", "oedema", "heart failure", "chf"});
  edema.hedged = make_phrases(
      {"vascular congestion", "pulmonary congestion", "indistinct*", "vascular prominence", "cephalization"});

  rules(Finding::Consolidation).mentions = make_phrases({"consolidat*"});
  rules(Finding::Pneumonia).mentions =
      make_phrases({"pneumonia*", "bronchopneumonia", "infection", "infectious process", "infectious"});
  rules(Finding::Atelectasis).mentions = make_phrases({"atelecta*", "collaps*"});
  rules(Finding::Pneumothorax).mentions = make_phrases({"pneumothora*"});

  FindingRules& effusion = rules(Finding::PleuralEffusion);
  effusion.mentions = make_phrases({"effusion*", "pleural fluid"});
  effusion.unmentions = make_phrases({"pericardial effusion*"});

  rules(Finding::PleuralOther).mentions =
      make_phrases({"pleural thickening", "pleural scar*", "pleural plaque*", "pleural fibrosis", "fibrothorax",
                    "pleuroparenchymal scar*", "pleuro parenchymal scar*"});
  rules(Finding::Fracture).mentions = make_phrases({"fracture*"});

  FindingRules& devices = rules(Finding::SupportDevices);
  devices.mentions = make_phrases(
      {"tube", "tubes", "catheter*", "picc", "central line", "venous line", "jugular line", "subclavian line",
       "ij line", "swan ganz", "lines", "pacemaker*", "pacer", "icd", "aicd", "defibrillator*", "device*", "hardware",
       "stent*", "prosthetic valve", "valve replacement", "port", "mediport", "portacath", "port a cath", "drain",
       "drains", "cannula", "coil*", "sternotomy wire*", "sternal wire*", "tracheostomy"});
  devices.unmentions = make_phrases({"septal lines", "kerley lines", "kerley b lines"});

  lexicon.other.mentions = make_phrases(
      {"emphysema*", "hyperinflat*", "hyperexpan*", "scoliosis", "kyphosis", "granuloma*", "calcifi*", "hernia*",
       "pneumomediastinum", "pneumoperitoneum", "atheroscler*", "osteopenia", "metasta*", "degenerat*", "deformit*",
       "hematoma*", "hemorrhage", "contusion*", "bronchiectasis", "fibrosis", "copd", "volume loss", "elevation",
       "elevated hemidiaphragm", "blunting", "pericardial effusion*", "aspiration", "bronchitis", "asthma"});

  lexicon.normal_statements = make_phrases(
      {"no acute cardiopulmonary*", "no acute intrathoracic*", "no acute disease", "no acute process",
       "no acute abnormalit*", "no acute finding*", "no active disease", "normal chest*", "unremarkable chest*"});
  return lexicon;
}

const Lexicon& lexicon() {
  static const Lexicon lexicon = make_lexicon();
  return lexicon;
}

// ---- Labelling ----

int strength(Mention mention) {
  switch (mention) {
    case Mention::Absent: return 0;
    case Mention::Negative: return 1;
    case Mention::Uncertain: return 2;
    case Mention::Positive: return 3;
  }
  return 0;
}

// Several mentions of a finding: positive over uncertain over negative, the first of equals kept.
void combine(FindingLabel& label, Mention mention, std::string phrase, std::string cue) {
  if (strength(mention) <= strength(label.mention)) return;
  label = {mention, std::move(phrase), std::move(cue)};
}

// The longest mention or anatomy phrase of `rules` at clause[at]: {words, is_anatomy, is_hedged}.
struct Match {
  size_t length = 0;
  bool anatomy = false, hedged = false;
};

Match longest_match(const FindingRules& rules, const Clause& clause, size_t at) {
  Match best;
  auto try_phrases = [&](const std::vector<Phrase>& phrases, bool anatomy, bool hedged) {
    for (const Phrase& phrase : phrases)
      if (size_t n = match(phrase, clause, at); n > best.length) best = {n, anatomy, hedged};
  };
  try_phrases(rules.mentions, false, false);
  try_phrases(rules.hedged, false, true);
  try_phrases(rules.anatomy, true, false);
  return best;
}

void label_clause(const Clause& clause, const FindingRules& rules, FindingLabel& label) {
  std::vector<bool> unmentioned(clause.size(), false);
  for (size_t at = 0; at < clause.size(); ++at)
    for (const Phrase& phrase : rules.unmentions)
      for (size_t k = 0, n = match(phrase, clause, at); k < n; ++k) unmentioned[at + k] = true;

  for (size_t at = 0; at < clause.size();) {
    const Match found = longest_match(rules, clause, at);
    if (found.length == 0) {
      ++at;
      continue;
    }
    const size_t end = at + found.length;
    if (std::find(unmentioned.begin() + at, unmentioned.begin() + end, true) == unmentioned.begin() + end) {
      std::optional<Label> result;
      if (found.anatomy) {
        result = label_by_qualifier(clause, at, end, *rules.qualifiers);
      } else {
        result = label_by_cues(clause, at, end);
        if (found.hedged && result->mention == Mention::Positive)
          result = Label{Mention::Uncertain, words_text(clause, at, end)};
      }
      if (result) combine(label, result->mention, words_text(clause, at, end), result->cue);
    }
    at = end;
  }
}

bool counts_as_finding(Mention mention) { return mention == Mention::Positive || mention == Mention::Uncertain; }

// ---- Scoring ----

bool counts_positive(Mention mention, UncertainPolicy policy) {
  return mention == Mention::Positive || (mention == Mention::Uncertain && policy == UncertainPolicy::AsPositive);
}

double ratio_or_zero(int64_t numerator, int64_t denominator) {
  return denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
}

}  // namespace

std::string_view finding_name(Finding finding) {
  switch (finding) {
    case Finding::NoFinding: return "No Finding";
    case Finding::EnlargedCardiomediastinum: return "Enlarged Cardiomediastinum";
    case Finding::Cardiomegaly: return "Cardiomegaly";
    case Finding::LungLesion: return "Lung Lesion";
    case Finding::LungOpacity: return "Lung Opacity";
    case Finding::Edema: return "Edema";
    case Finding::Consolidation: return "Consolidation";
    case Finding::Pneumonia: return "Pneumonia";
    case Finding::Atelectasis: return "Atelectasis";
    case Finding::Pneumothorax: return "Pneumothorax";
    case Finding::PleuralEffusion: return "Pleural Effusion";
    case Finding::PleuralOther: return "Pleural Other";
    case Finding::Fracture: return "Fracture";
    case Finding::SupportDevices: return "Support Devices";
  }
  fail("finding_name: no finding numbered ", static_cast<int>(finding));
}

std::string_view mention_name(Mention mention) {
  switch (mention) {
    case Mention::Absent: return "absent";
    case Mention::Positive: return "positive";
    case Mention::Negative: return "negative";
    case Mention::Uncertain: return "uncertain";
  }
  fail("mention_name: no mention numbered ", static_cast<int>(mention));
}

FindingLabels label_report(std::string_view report) {
  const Lexicon& rules = lexicon();
  FindingLabels labels;
  FindingLabel other;
  std::string normal_statement;
  for (const Clause& clause : split_clauses(report)) {
    for (size_t f = 1; f < kFindingCount; ++f) label_clause(clause, rules.findings[f], labels.labels[f]);
    label_clause(clause, rules.other, other);
    for (size_t at = 0; at < clause.size() && normal_statement.empty(); ++at)
      for (const Phrase& phrase : rules.normal_statements)
        if (size_t n = match(phrase, clause, at)) {
          normal_statement = words_text(clause, at, at + n);
          break;
        }
  }
  bool any_finding = counts_as_finding(other.mention);
  for (size_t f = 1; f < kFindingCount; ++f)
    if (static_cast<Finding>(f) != Finding::SupportDevices) any_finding |= counts_as_finding(labels.labels[f].mention);
  if (!any_finding) labels[Finding::NoFinding] = {Mention::Positive, normal_statement, ""};
  return labels;
}

FindingScores finding_f1(std::span<const FindingLabels> predictions, std::span<const FindingLabels> references,
                         UncertainPolicy policy) {
  if (predictions.size() != references.size())
    fail("finding_f1: ", predictions.size(), " predicted reports but ", references.size(), " reference reports");
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  FindingScores scores;
  int64_t tp = 0, fp = 0, fn = 0;
  double f1_sum = 0;
  for (size_t f = 0; f < kFindingCount; ++f) {
    FindingScore& score = scores.per_finding[f];
    for (size_t i = 0; i < predictions.size(); ++i) {
      const bool predicted = counts_positive(predictions[i].labels[f].mention, policy);
      const bool actual = counts_positive(references[i].labels[f].mention, policy);
      score.true_positives += predicted && actual;
      score.false_positives += predicted && !actual;
      score.false_negatives += !predicted && actual;
    }
    score.support = score.true_positives + score.false_negatives;
    score.scored = score.true_positives + score.false_positives + score.false_negatives > 0;
    if (score.scored) {
      score.precision = ratio_or_zero(score.true_positives, score.true_positives + score.false_positives);
      score.recall = ratio_or_zero(score.true_positives, score.support);
      score.f1 = ratio_or_zero(2 * score.true_positives,
                               2 * score.true_positives + score.false_positives + score.false_negatives);
      f1_sum += score.f1;
      ++scores.scored_findings;
    } else {
      score.precision = score.recall = score.f1 = kNaN;
    }
    tp += score.true_positives;
    fp += score.false_positives;
    fn += score.false_negatives;
  }
  scores.macro_f1 = scores.scored_findings ? f1_sum / static_cast<double>(scores.scored_findings) : kNaN;
  if (tp + fp + fn > 0) {
    scores.micro_precision = ratio_or_zero(tp, tp + fp);
    scores.micro_recall = ratio_or_zero(tp, tp + fn);
    scores.micro_f1 = ratio_or_zero(2 * tp, 2 * tp + fp + fn);
  } else {
    scores.micro_precision = scores.micro_recall = scores.micro_f1 = kNaN;
  }
  return scores;
}

}  // namespace medlab
