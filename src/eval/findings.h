// Finding-level evaluation of chest X-ray reports: a small rule-based labeller for the 14 CheXpert
// observations (mentioned or not, and if so positive, negated or hedged), and precision, recall and F1
// of the labels of predicted reports against those of reference reports, per finding, macro and micro.
// The rules, the uncertainty policy, the 0/0 conventions and the known limits: docs/EVALUATION.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace medlab {

// CheXpert's 14 observations, in the order of its label files.
enum class Finding : uint8_t {
  NoFinding,
  EnlargedCardiomediastinum,
  Cardiomegaly,
  LungLesion,
  LungOpacity,
  Edema,
  Consolidation,
  Pneumonia,
  Atelectasis,
  Pneumothorax,
  PleuralEffusion,
  PleuralOther,
  Fracture,
  SupportDevices,
};
inline constexpr size_t kFindingCount = 14;

std::string_view finding_name(Finding finding);  // as CheXpert writes it: "Pleural Effusion"

enum class Mention : uint8_t {
  Absent,     // not mentioned
  Positive,   // "small left effusion"
  Negative,   // mentioned as absent: "no pneumothorax", "pneumothorax has resolved"
  Uncertain,  // hedged: "cannot exclude", "possible", "atelectasis versus pneumonia"
};

std::string_view mention_name(Mention mention);  // "absent", "positive", "negative", "uncertain"

// A finding's label and the words that decided it, so a disagreement can be read, not only counted.
struct FindingLabel {
  Mention mention = Mention::Absent;
  std::string phrase;  // the mention as matched ("pleural effusion"); for No Finding, the normal statement if any
  std::string cue;     // the cue or qualifier that set the label ("no", "cannot exclude", "enlarged"), or empty
};

struct FindingLabels {
  std::array<FindingLabel, kFindingCount> labels;

  FindingLabel& operator[](Finding finding) { return labels[static_cast<size_t>(finding)]; }
  const FindingLabel& operator[](Finding finding) const { return labels[static_cast<size_t>(finding)]; }
};

// Labels one report (any case, any length; every sentence counts, not only the impression).
// Several mentions of one finding combine as CheXpert does: positive over uncertain over negative.
// No Finding is positive when no other finding but Support Devices is positive or uncertain (nor any
// other abnormality the rules know, such as emphysema), and absent otherwise.
FindingLabels label_report(std::string_view report);

// What an uncertain label counts as when scoring; the same policy applies to predictions and references.
enum class UncertainPolicy {
  AsPositive,  // the default, as in most report-generation papers
  AsNegative,
};

// Counts over reports for one finding; a report counts as positive for it when its label is Positive,
// or Uncertain under UncertainPolicy::AsPositive.
struct FindingScore {
  int64_t true_positives = 0, false_positives = 0, false_negatives = 0;
  int64_t support = 0;  // positive references: true_positives + false_negatives
  // False when neither a prediction nor a reference is positive: F1 is 0/0 there, so precision,
  // recall and F1 are NaN and the finding is left out of the macro average.
  bool scored = false;
  double precision = 0;  // 0 when nothing is predicted positive but some reference is
  double recall = 0;     // 0 when no reference is positive but some prediction is
  double f1 = 0;         // 2 TP / (2 TP + FP + FN)
};

struct FindingScores {
  std::array<FindingScore, kFindingCount> per_finding;
  size_t scored_findings = 0;
  double macro_f1 = 0;  // mean F1 over the scored findings; NaN when none is scored
  // From the counts summed over all 14 findings; NaN when every count is zero.
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;

  const FindingScore& operator[](Finding finding) const { return per_finding[static_cast<size_t>(finding)]; }
};

// predictions[i] is scored against references[i]; throws Error when the counts differ.
FindingScores finding_f1(std::span<const FindingLabels> predictions, std::span<const FindingLabels> references,
                         UncertainPolicy policy = UncertainPolicy::AsPositive);

}  // namespace medlab
