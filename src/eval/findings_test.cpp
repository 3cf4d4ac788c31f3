#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <utility>
#include <vector>

#include "core/error.h"
#include "eval/findings.h"

namespace medlab {
namespace {

using enum Finding;
constexpr Mention P = Mention::Positive, N = Mention::Negative, U = Mention::Uncertain;

// A written sentence or report and every label it should get; findings not listed must be absent.
struct Case {
  const char* report;
  std::vector<std::pair<Finding, Mention>> expected;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      // The sentences the issue names.
      {"No pneumothorax.", {{Pneumothorax, N}, {NoFinding, P}}},
      {"Cannot exclude small effusion.", {{PleuralEffusion, U}}},
      {"heart size is enlarged", {{Cardiomegaly, P}}},
      {"The heart is normal in size.", {{Cardiomegaly, N}, {NoFinding, P}}},
      {"No acute cardiopulmonary process.", {{NoFinding, P}}},
      {"Endotracheal tube in place.", {{SupportDevices, P}, {NoFinding, P}}},
      {"Left rib fracture.", {{Fracture, P}}},
      {"No displaced fracture.", {{Fracture, N}, {NoFinding, P}}},
      {"Mild pulmonary edema.", {{Edema, P}}},
      {"Atelectasis versus pneumonia.", {{Atelectasis, U}, {Pneumonia, U}}},
      {"Pneumothorax has resolved.", {{Pneumothorax, N}, {NoFinding, P}}},
      {"Lungs are clear.", {{LungOpacity, N}, {NoFinding, P}}},
      // CheXpert's rule: a stable silhouette may be a stably enlarged one.
      {"Stable cardiomediastinal silhouette.", {{EnlargedCardiomediastinum, U}}},
      {"Pacemaker leads terminate in the right atrium and right ventricle.", {{SupportDevices, P}, {NoFinding, P}}},
      {"No pneumothorax but there is a small left pleural effusion.", {{Pneumothorax, N}, {PleuralEffusion, P}}},
      {"No pneumothorax, however small left pleural effusion.", {{Pneumothorax, N}, {PleuralEffusion, P}}},
      {"No focal consolidation, pleural effusion, pneumothorax, or pulmonary edema.",
       {{Consolidation, N}, {PleuralEffusion, N}, {Pneumothorax, N}, {Edema, N}, {NoFinding, P}}},
      {"No pneumothorax is seen and a small right effusion is present.", {{Pneumothorax, N}, {PleuralEffusion, P}}},
      {"No evidence of pulmonary edema, but there is mild cardiomegaly.", {{Edema, N}, {Cardiomegaly, P}}},
      // Negation across a list, and its scope ending at "and the" and at a new "there is".
      {"No focal consolidation, pleural effusion, or pneumothorax.",
       {{Consolidation, N}, {PleuralEffusion, N}, {Pneumothorax, N}, {NoFinding, P}}},
      {"There is no pneumothorax and the endotracheal tube is in place.",
       {{Pneumothorax, N}, {SupportDevices, P}, {NoFinding, P}}},
      {"No effusion and there is mild edema.", {{PleuralEffusion, N}, {Edema, P}}},
      {"Small left effusion; no pneumothorax.", {{PleuralEffusion, P}, {Pneumothorax, N}}},
      {"Emphysema. No pneumothorax.", {{Pneumothorax, N}}},
      // Negation cues.
      {"Pneumothorax is not seen.", {{Pneumothorax, N}, {NoFinding, P}}},
      {"No evidence of pneumonia.", {{Pneumonia, N}, {NoFinding, P}}},
      {"The lungs are free of consolidation.", {{Consolidation, N}, {NoFinding, P}}},
      {"Negative for pneumothorax.", {{Pneumothorax, N}, {NoFinding, P}}},
      {"Interval resolution of the right lower lobe consolidation.", {{Consolidation, N}, {NoFinding, P}}},
      {"The endotracheal tube has been removed.", {{SupportDevices, N}, {NoFinding, P}}},
      {"Lines/tubes: none.", {{SupportDevices, N}, {NoFinding, P}}},
      {"IMPRESSION: NO PNEUMOTHORAX.", {{Pneumothorax, N}, {NoFinding, P}}},
      {"No residual 1.2 cm nodule.", {{LungLesion, N}, {NoFinding, P}}},
      // Uncertainty cues, including those that contain a negation word.
      {"Pleural effusion is not excluded.", {{PleuralEffusion, U}}},
      {"Pneumonia cannot be ruled out.", {{Pneumonia, U}}},
      {"No new consolidation.", {{Consolidation, U}}},
      {"Findings may represent pneumonia.", {{Pneumonia, U}}},
      {"Possible left lower lobe pneumonia.", {{Pneumonia, U}}},
      {"Questionable left lower lobe opacity.", {{LungOpacity, U}}},
      {"Right lower lobe opacity, likely atelectasis.", {{LungOpacity, P}, {Atelectasis, U}}},
      {"Opacity suggestive of pneumonia.", {{LungOpacity, P}, {Pneumonia, U}}},
      {"Consolidation in the left lower lobe, concerning for pneumonia.", {{Consolidation, P}, {Pneumonia, U}}},
      {"Effusion or atelectasis at the left base.", {{PleuralEffusion, U}, {Atelectasis, U}}},
      {"Mild pulmonary vascular congestion.", {{Edema, U}}},
      {"Effusion may be present.", {{PleuralEffusion, U}}},
      {"Left lower lobe opacity may reflect atelectasis or pneumonia.",
       {{LungOpacity, P}, {Atelectasis, U}, {Pneumonia, U}}},
      // Heart and mediastinum, read through the word that describes them.
      {"The heart is not enlarged.", {{Cardiomegaly, N}, {NoFinding, P}}},
      {"Borderline heart size.", {{Cardiomegaly, U}}},
      {"Enlarged cardiac silhouette.", {{Cardiomegaly, P}}},
      {"The heart is mildly enlarged.", {{Cardiomegaly, P}}},
      {"Heart size is at the upper limits of normal.", {{Cardiomegaly, N}, {NoFinding, P}}},
      {"The heart may be enlarged.", {{Cardiomegaly, U}}},
      {"No cardiomegaly.", {{Cardiomegaly, N}, {NoFinding, P}}},
      {"The mediastinum is widened.", {{EnlargedCardiomediastinum, P}}},
      {"Mediastinal contours are within normal limits.", {{EnlargedCardiomediastinum, N}, {NoFinding, P}}},
      {"The cardiac and mediastinal contours are stable.", {{Cardiomegaly, U}, {EnlargedCardiomediastinum, U}}},
      {"Heart size normal, lungs clear.", {{Cardiomegaly, N}, {LungOpacity, N}, {NoFinding, P}}},
      // Mentions of each remaining finding, and words that look like mentions but are not.
      {"Pulmonary nodule in the right upper lobe.", {{LungLesion, P}}},
      {"Diffuse airspace disease.", {{LungOpacity, P}}},
      {"Bibasilar atelectasis.", {{Atelectasis, P}}},
      {"Left basilar collapse.", {{Atelectasis, P}}},
      {"There is a right pneumothorax.", {{Pneumothorax, P}}},
      {"Right pleural thickening.", {{PleuralOther, P}}},
      {"Healed left rib fractures.", {{Fracture, P}}},
      {"Nondisplaced right rib fracture.", {{Fracture, P}}},
      {"Right-sided PICC line with tip in the SVC.", {{SupportDevices, P}, {NoFinding, P}}},
      {"Right internal jugular line terminates in the SVC.", {{SupportDevices, P}, {NoFinding, P}}},
      {"Small pericardial effusion.", {}},
      {"Calcified granuloma in the left lung.", {}},
      {"Mild degenerative changes of the thoracic spine.", {}},
      // Multi-sentence reports with mixed findings.
      {"Heart size is normal. Lungs are clear. No pleural effusion or pneumothorax.",
       {{Cardiomegaly, N}, {LungOpacity, N}, {PleuralEffusion, N}, {Pneumothorax, N}, {NoFinding, P}}},
      {"Moderate cardiomegaly with mild interstitial edema. Small bilateral pleural effusions.",
       {{Cardiomegaly, P}, {Edema, P}, {PleuralEffusion, P}}},
      {"No acute cardiopulmonary process. Mild cardiomegaly.", {{Cardiomegaly, P}}},
      {"Nasogastric tube tip is in the stomach. Heart size is normal.",
       {{SupportDevices, P}, {Cardiomegaly, N}, {NoFinding, P}}},
      {"FINDINGS: Endotracheal tube terminates 4 cm above the carina. Nasogastric tube courses below the "
       "diaphragm. The heart is mildly enlarged. There is mild pulmonary edema with small bilateral pleural "
       "effusions. No pneumothorax.\nIMPRESSION: Mild pulmonary edema, possibly with superimposed pneumonia "
       "at the right base.",
       {{SupportDevices, P}, {Cardiomegaly, P}, {Edema, P}, {PleuralEffusion, P}, {Pneumothorax, N}, {Pneumonia, U}}},
  };
  return all;
}

std::string describe(const FindingLabels& labels) {
  std::string text;
  for (size_t f = 0; f < kFindingCount; ++f) {
    const FindingLabel& label = labels.labels[f];
    if (label.mention == Mention::Absent) continue;
    text += std::string(finding_name(static_cast<Finding>(f))) + ": " + std::string(mention_name(label.mention)) +
            " (\"" + label.phrase + "\", cue \"" + label.cue + "\"); ";
  }
  return text;
}

TEST(FindingLabels, WrittenSentencesGetTheirExpectedLabels) {
  EXPECT_GE(cases().size(), 40u);
  for (const Case& c : cases()) {
    const FindingLabels labels = label_report(c.report);
    for (size_t f = 0; f < kFindingCount; ++f) {
      const auto finding = static_cast<Finding>(f);
      Mention expected = Mention::Absent;
      for (const auto& [listed, mention] : c.expected)
        if (listed == finding) expected = mention;
      EXPECT_EQ(mention_name(labels[finding].mention), mention_name(expected))
          << finding_name(finding) << " in \"" << c.report << "\"; got " << describe(labels);
    }
  }
}

TEST(FindingLabels, KeepTheWordsThatDecidedThem) {
  const FindingLabels effusion = label_report("Cannot exclude small effusion.");
  EXPECT_EQ(effusion[PleuralEffusion].phrase, "effusion");
  EXPECT_EQ(effusion[PleuralEffusion].cue, "cannot exclude");
  const FindingLabels heart = label_report("Heart size is enlarged.");
  EXPECT_EQ(heart[Cardiomegaly].phrase, "heart size");
  EXPECT_EQ(heart[Cardiomegaly].cue, "enlarged");
  const FindingLabels normal = label_report("No acute cardiopulmonary process.");
  EXPECT_EQ(normal[NoFinding].phrase, "no acute cardiopulmonary");
  EXPECT_TRUE(label_report("")[NoFinding].phrase.empty());
}

TEST(FindingLabels, PositiveMentionsOutrankUncertainOnesAndUncertainOutrankNegative) {
  EXPECT_EQ(label_report("No effusion on the right. Small left effusion.")[PleuralEffusion].mention, P);
  EXPECT_EQ(label_report("No pneumonia. Possible pneumonia at the left base.")[Pneumonia].mention, U);
  EXPECT_EQ(label_report("Possible pneumonia. Pneumonia at the left base.")[Pneumonia].mention, P);
}

TEST(FindingLabels, SupportDevicesAloneLeaveNoFindingPositiveButUncertainFindingsDoNot) {
  EXPECT_EQ(label_report("Chest tube in place. No pneumothorax.")[NoFinding].mention, P);
  EXPECT_EQ(label_report("Chest tube in place. Possible small pneumothorax.")[NoFinding].mention, Mention::Absent);
  EXPECT_EQ(label_report("")[NoFinding].mention, P);  // nothing abnormal is said
}

FindingLabels labels(std::initializer_list<std::pair<Finding, Mention>> entries) {
  FindingLabels result;
  for (const auto& [finding, mention] : entries) result[finding].mention = mention;
  return result;
}

// Four report pairs; counts worked by hand below.
//   0: predicted Cardiomegaly P, Effusion U          reference Cardiomegaly P, Effusion P
//   1: predicted Cardiomegaly P                      reference Effusion P, Edema U
//   2: predicted No Finding P                        reference No Finding P
//   3: predicted Edema P, Effusion N                 reference Edema P, Effusion U
struct Pairs {
  std::vector<FindingLabels> predicted = {
      labels({{Cardiomegaly, P}, {PleuralEffusion, U}}),
      labels({{Cardiomegaly, P}}),
      labels({{NoFinding, P}}),
      labels({{Edema, P}, {PleuralEffusion, N}}),
  };
  std::vector<FindingLabels> reference = {
      labels({{Cardiomegaly, P}, {PleuralEffusion, P}}),
      labels({{PleuralEffusion, P}, {Edema, U}}),
      labels({{NoFinding, P}}),
      labels({{Edema, P}, {PleuralEffusion, U}}),
  };
};

void expect_counts(const FindingScore& score, int64_t tp, int64_t fp, int64_t fn) {
  EXPECT_EQ(score.true_positives, tp);
  EXPECT_EQ(score.false_positives, fp);
  EXPECT_EQ(score.false_negatives, fn);
  EXPECT_EQ(score.support, tp + fn);
  EXPECT_TRUE(score.scored);
}

TEST(FindingF1, UncertainAsPositiveByHand) {
  const Pairs pairs;
  const FindingScores s = finding_f1(pairs.predicted, pairs.reference);  // AsPositive is the default
  // Cardiomegaly: TP report 0, FP report 1.
  expect_counts(s[Cardiomegaly], 1, 1, 0);
  EXPECT_DOUBLE_EQ(s[Cardiomegaly].precision, 0.5);
  EXPECT_DOUBLE_EQ(s[Cardiomegaly].recall, 1.0);
  EXPECT_DOUBLE_EQ(s[Cardiomegaly].f1, 2.0 / 3.0);
  // Effusion: TP report 0 (U counts), FN reports 1 and 3 (reference U counts, predicted N does not).
  expect_counts(s[PleuralEffusion], 1, 0, 2);
  EXPECT_DOUBLE_EQ(s[PleuralEffusion].precision, 1.0);
  EXPECT_DOUBLE_EQ(s[PleuralEffusion].recall, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s[PleuralEffusion].f1, 0.5);
  // Edema: TP report 3, FN report 1.
  expect_counts(s[Edema], 1, 0, 1);
  EXPECT_DOUBLE_EQ(s[Edema].f1, 2.0 / 3.0);
  expect_counts(s[NoFinding], 1, 0, 0);
  EXPECT_DOUBLE_EQ(s[NoFinding].f1, 1.0);
  // The other ten findings have no positives anywhere: unscored, NaN, out of the macro average.
  EXPECT_FALSE(s[Pneumothorax].scored);
  EXPECT_TRUE(std::isnan(s[Pneumothorax].f1));
  EXPECT_TRUE(std::isnan(s[Pneumothorax].precision));
  EXPECT_EQ(s[Pneumothorax].support, 0);
  EXPECT_EQ(s.scored_findings, 4u);
  EXPECT_DOUBLE_EQ(s.macro_f1, (2.0 / 3 + 0.5 + 2.0 / 3 + 1.0) / 4);  // 17/24
  // Micro: TP 4, FP 1, FN 3.
  EXPECT_DOUBLE_EQ(s.micro_precision, 4.0 / 5);
  EXPECT_DOUBLE_EQ(s.micro_recall, 4.0 / 7);
  EXPECT_DOUBLE_EQ(s.micro_f1, 8.0 / 12);
}

TEST(FindingF1, UncertainAsNegativeByHand) {
  const Pairs pairs;
  const FindingScores s = finding_f1(pairs.predicted, pairs.reference, UncertainPolicy::AsNegative);
  expect_counts(s[Cardiomegaly], 1, 1, 0);
  // Effusion: nothing predicted positive; references 0 and 1 positive: precision 0 by convention.
  expect_counts(s[PleuralEffusion], 0, 0, 2);
  EXPECT_DOUBLE_EQ(s[PleuralEffusion].precision, 0.0);
  EXPECT_DOUBLE_EQ(s[PleuralEffusion].recall, 0.0);
  EXPECT_DOUBLE_EQ(s[PleuralEffusion].f1, 0.0);
  // Edema: report 1's uncertain reference no longer counts.
  expect_counts(s[Edema], 1, 0, 0);
  EXPECT_DOUBLE_EQ(s[Edema].f1, 1.0);
  EXPECT_EQ(s.scored_findings, 4u);
  EXPECT_DOUBLE_EQ(s.macro_f1, (2.0 / 3 + 0.0 + 1.0 + 1.0) / 4);
  // Micro: TP 3, FP 1, FN 2.
  EXPECT_DOUBLE_EQ(s.micro_precision, 3.0 / 4);
  EXPECT_DOUBLE_EQ(s.micro_recall, 3.0 / 5);
  EXPECT_DOUBLE_EQ(s.micro_f1, 6.0 / 9);
}

TEST(FindingF1, ZeroOverZeroCases) {
  // Positives only among predictions: scored, recall 0 by convention, F1 0, and it pulls the macro down.
  const std::vector<FindingLabels> predicted = {labels({{Fracture, P}, {Edema, P}})};
  const std::vector<FindingLabels> reference = {labels({{Edema, P}})};
  const FindingScores s = finding_f1(predicted, reference);
  expect_counts(s[Fracture], 0, 1, 0);
  EXPECT_DOUBLE_EQ(s[Fracture].precision, 0.0);
  EXPECT_DOUBLE_EQ(s[Fracture].recall, 0.0);
  EXPECT_DOUBLE_EQ(s[Fracture].f1, 0.0);
  EXPECT_EQ(s.scored_findings, 2u);
  EXPECT_DOUBLE_EQ(s.macro_f1, 0.5);

  // Uncertain on both sides under AsNegative: no positives, so unscored.
  const std::vector<FindingLabels> hedged = {labels({{Pneumonia, U}})};
  const FindingScores h = finding_f1(hedged, hedged, UncertainPolicy::AsNegative);
  EXPECT_FALSE(h[Pneumonia].scored);
  EXPECT_EQ(h.scored_findings, 0u);
  EXPECT_TRUE(std::isnan(h.macro_f1));
  EXPECT_TRUE(std::isnan(h.micro_f1));
  EXPECT_DOUBLE_EQ(finding_f1(hedged, hedged)[Pneumonia].f1, 1.0);

  // No reports at all.
  const FindingScores none = finding_f1({}, {});
  EXPECT_EQ(none.scored_findings, 0u);
  EXPECT_TRUE(std::isnan(none.macro_f1));
  EXPECT_TRUE(std::isnan(none.micro_precision));
}

TEST(FindingF1, RefusesMismatchedCounts) {
  const std::vector<FindingLabels> one(1), two(2);
  EXPECT_THROW(finding_f1(one, two), Error);
}

TEST(FindingF1, ScoresLabelledReportsEndToEnd) {
  const std::vector<FindingLabels> predicted = {label_report("Heart size is enlarged. No effusion."),
                                                label_report("No acute cardiopulmonary process.")};
  const std::vector<FindingLabels> reference = {label_report("Cardiomegaly. Cannot exclude small effusion."),
                                                label_report("Lungs are clear. No pneumothorax.")};
  const FindingScores positive = finding_f1(predicted, reference);
  expect_counts(positive[Cardiomegaly], 1, 0, 0);
  expect_counts(positive[PleuralEffusion], 0, 0, 1);
  expect_counts(positive[NoFinding], 1, 0, 0);
  EXPECT_DOUBLE_EQ(positive.macro_f1, (1.0 + 0.0 + 1.0) / 3);
  const FindingScores negative = finding_f1(predicted, reference, UncertainPolicy::AsNegative);
  EXPECT_FALSE(negative[PleuralEffusion].scored);
  EXPECT_DOUBLE_EQ(negative.macro_f1, 1.0);
}

TEST(FindingNames, AreCheXpertsColumnNames) {
  EXPECT_EQ(finding_name(NoFinding), "No Finding");
  EXPECT_EQ(finding_name(EnlargedCardiomediastinum), "Enlarged Cardiomediastinum");
  EXPECT_EQ(finding_name(PleuralEffusion), "Pleural Effusion");
  EXPECT_EQ(finding_name(SupportDevices), "Support Devices");
  EXPECT_EQ(mention_name(U), "uncertain");
}

}  // namespace
}  // namespace medlab
