// Caption metrics against values worked out by hand from pycocoevalcap's definitions (each case's
// derivation is in its comments). BLEU's epsilons are part of its definition: with no candidate n-grams
// of an order the factor is 1e-15 / 1e-9 = 1e-6, and with n-grams but no match it is 1e-15 / guesses.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "eval/caption_metrics.h"

namespace medlab {
namespace {

constexpr double kTolerance = 1e-6;
constexpr double kTiny = 1e-15, kSmall = 1e-9;

// Space-separated tokens: the scorers' input, made without the tokenizer under test.
std::vector<std::string> words(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

CaptionItem item(std::string_view candidate, std::initializer_list<std::string_view> references) {
  CaptionItem it{.candidate = words(candidate)};
  for (auto r : references) it.references.push_back(words(r));
  return it;
}

// One BLEU precision factor, (matches + 1e-15) / (guesses + 1e-9).
double factor(double matches, double guesses) { return (matches + kTiny) / (guesses + kSmall); }
// Brevity penalty from the candidate length and the (closest) reference length.
double brevity(double test_length, double ref_length) {
  const double ratio = (test_length + kTiny) / (ref_length + kSmall);
  return ratio < 1 ? std::exp(1 - 1 / ratio) : 1.0;
}
// BLEU-1..4 from the four precision factors: their running geometric means.
std::array<double, 4> geometric_means(double p1, double p2, double p3, double p4) {
  return {p1, std::sqrt(p1 * p2), std::cbrt(p1 * p2 * p3), std::pow(p1 * p2 * p3 * p4, 0.25)};
}
// ROUGE-L's F-measure with beta = 1.2.
double rouge_f(double precision, double recall) {
  return 2.44 * precision * recall / (recall + 1.44 * precision);
}

void expect_bleu(const std::array<double, 4>& got, const std::array<double, 4>& want) {
  for (int n = 0; n < 4; ++n) EXPECT_NEAR(got[n], want[n], kTolerance) << "BLEU-" << n + 1;
}

// ---- Tokenisation --------------------------------------------------------------------------------

std::vector<std::string> tokens(std::string_view text) { return caption_tokens(text); }

TEST(CaptionTokens, LowerCasesAndDropsSentencePunctuation) {
  EXPECT_EQ(tokens("A man Riding a HORSE."), words("a man riding a horse"));
  EXPECT_EQ(tokens("Hello, World! Is it ok? Yes; no: maybe..."), words("hello world is it ok yes no maybe"));
}

TEST(CaptionTokens, KeepsHyphenatedWordsAndDropsDashes) {
  EXPECT_EQ(tokens("X-ray shows a well-defined mass - left side -- stable"),
            words("x-ray shows a well-defined mass left side stable"));
}

TEST(CaptionTokens, KeepsNumbersWhole) {
  EXPECT_EQ(tokens("3.5 cm, 1,000 mg at 10:30, 50% of -2 and .5 (1/2)."),
            words("3.5 cm 1,000 mg at 10:30 50 % of -2 and .5 -lrb- 1/2 -rrb-"));
}

TEST(CaptionTokens, SplitsContractionsAndPossessives) {
  EXPECT_EQ(tokens("The patient's heart isn't enlarged; they're fine, can't say. Dogs' bowls I'm"),
            words("the patient 's heart is n't enlarged they 're fine ca n't say dogs bowls i 'm"));
  EXPECT_EQ(tokens("o'clock DON'T"), words("o'clock do n't"));
}

// Lower-casing after PTB escaping leaves -lrb- etc., which the upper-case drop list misses.
TEST(CaptionTokens, BracketsSurviveAsEscapesQuotesAreDropped) {
  EXPECT_EQ(tokens("He said \"normal\" (stable) [ok] {x} `quoted' ''end''"),
            words("he said normal -lrb- stable -rrb- -lsb- ok -rsb- -lcb- x -rcb- quoted end"));
}

TEST(CaptionTokens, AbbreviationsKeepTheirPeriodFusedWordsSplit) {
  EXPECT_EQ(tokens("e.g. Dr. Smith vs. U.S. J. Doe cannot"), words("e.g. dr. smith vs. u.s. j. doe can not"));
  EXPECT_EQ(tokens("See fig. 2, approx. 5 cm. Effusion: no."), words("see fig. 2 approx. 5 cm effusion no"));
  EXPECT_EQ(tokens("grade a. Lower case is no initial."), words("grade a lower case is no initial"));
}

TEST(CaptionTokens, TypographicPunctuationAndUtf8) {
  EXPECT_EQ(tokens("doesn\u2019t \u2014 \u201cfine\u201d\u2026 caf\u00e9"), words("does n't fine caf\u00e9"));
}

TEST(CaptionTokens, EmptyAndPunctuationOnlyGiveNoTokens) {
  EXPECT_TRUE(tokens("").empty());
  EXPECT_TRUE(tokens(" ... !? , -- ' \" ").empty());
  EXPECT_EQ(tokens("a\tb\nc   d\r"), words("a b c d"));
}

// ---- BLEU ----------------------------------------------------------------------------------------

// Every n-gram matches and lengths are equal: 1 at every order (the epsilons cost < 1e-9).
TEST(Bleu, IdenticalCandidateScoresOne) {
  const CaptionItem items[] = {item("a man rides a horse", {"a man rides a horse"})};
  const BleuScores s = bleu(items);
  expect_bleu(s.per_item[0], {1, 1, 1, 1});
  expect_bleu(s.corpus, {1, 1, 1, 1});
}

// No candidate tokens: ratio = 1e-15 / (3 + 1e-9), so the brevity penalty exp(1 - 1/ratio) is 0.
TEST(Bleu, EmptyCandidateScoresZero) {
  const CaptionItem items[] = {item("", {"a b c"})};
  expect_bleu(bleu(items).per_item[0], {0, 0, 0, 0});
}

// Both empty: ratio = 1e-15 / 1e-9 = 1e-6 < 1, the penalty is exp(1 - 1e6) = 0 (ROUGE-L gives 1 here).
TEST(Bleu, EmptyCandidateAndReferenceScoreZero) {
  const CaptionItem items[] = {item("", {""})};
  expect_bleu(bleu(items).per_item[0], {0, 0, 0, 0});
}

// Shorter candidate: p1 = 3/3, p2 = 2/2, p3 = 1/1, and no 4-grams (factor 1e-6);
// brevity penalty exp(1 - 6/3) = e^-1. BLEU-4 = (1e-6)^(1/4) e^-1 = 0.01163...
TEST(Bleu, ShortCandidateBrevityPenaltyAndMissingOrder) {
  const CaptionItem items[] = {item("a cat sat", {"a cat sat on the mat"})};
  const double bp = brevity(3, 6);
  EXPECT_NEAR(bp, std::exp(-1.0), 1e-9);
  expect_bleu(bleu(items).per_item[0], {bp, bp, bp, std::pow(factor(0, 0), 0.25) * bp});
  EXPECT_NEAR(bleu(items).per_item[0][3], 0.0116331, 1e-6);
}

// "the" x7 against a reference holding it twice: p1 = 2/7 (clipped), no bigram matches out of 6;
// the candidate is longer (7 > 6) so no brevity penalty.
TEST(Bleu, RepeatedWordIsClippedToReferenceCount) {
  const CaptionItem items[] = {item("the the the the the the the", {"the cat is on the mat"})};
  const double p1 = factor(2, 7), p2 = factor(0, 6), p3 = factor(0, 5), p4 = factor(0, 4);
  expect_bleu(bleu(items).per_item[0], geometric_means(p1, p2, p3, p4));
  EXPECT_NEAR(bleu(items).per_item[0][0], 2.0 / 7, 1e-9);
}

// Clip counts come from the reference holding the most: "a" at most 2 (second reference), "a a" at
// most 1. p1 = (2 + 1)/4, p2 = ("a a" 1 + "a b" 1)/3, p3 = 0/2, p4 = 0/1. Lengths 2 and 3: closest 3 < 4.
TEST(Bleu, ClippingUsesMaximumCountOverReferences) {
  const CaptionItem items[] = {item("a a a b", {"a b", "a a c"})};
  const double p1 = factor(3, 4), p2 = factor(2, 3), p3 = factor(0, 2), p4 = factor(0, 1);
  expect_bleu(bleu(items).per_item[0], geometric_means(p1, p2, p3, p4));
  EXPECT_NEAR(bleu(items).per_item[0][1], std::sqrt(0.5), 1e-6);
}

// Candidate length 4, references of 3 and 5: a tie, which goes to the shorter (3), so no penalty.
// Taking 5 would have given exp(1 - 5/4) = 0.7788.
TEST(Bleu, ClosestReferenceLengthTieGoesToShorter) {
  const CaptionItem items[] = {item("a b c d", {"a b c", "a b c d e"})};
  expect_bleu(bleu(items).per_item[0], {1, 1, 1, 1});
}

// Lengths 2 and 5 around 4: 5 is closer, penalty exp(1 - 5/4) = e^-0.25 at every order.
TEST(Bleu, ClosestReferenceLengthSetsThePenalty) {
  const CaptionItem items[] = {item("a b c d", {"a b", "a b c d e"})};
  const double bp = brevity(4, 5);
  EXPECT_NEAR(bp, std::exp(-0.25), 1e-9);
  expect_bleu(bleu(items).per_item[0], {bp, bp, bp, bp});
}

// Five references (lengths 7, 2, 6, 3, 1; closest to 5 is 6, penalty e^-0.2).
// Unigrams 5/5; bigrams "a dog", "dog runs", "runs on" match, "on grass" not: 3/4;
// trigrams only "dog runs on": 1/3; 4-grams 0/2, so BLEU-4 = (1 * 3/4 * 1/3 * 1e-15/2)^(1/4) e^-0.2.
TEST(Bleu, FiveReferences) {
  const CaptionItem items[] = {item("a dog runs on grass", {"a dog is running on the grass", "dog runs",
                                                            "the dog runs on green grass", "a brown dog",
                                                            "grass"})};
  const double bp = brevity(5, 6);
  const double p1 = factor(5, 5), p2 = factor(3, 4), p3 = factor(1, 3), p4 = factor(0, 2);
  const auto means = geometric_means(p1, p2, p3, p4);
  expect_bleu(bleu(items).per_item[0], {means[0] * bp, means[1] * bp, means[2] * bp, means[3] * bp});
  EXPECT_NEAR(bleu(items).per_item[0][2], std::cbrt(0.25) * bp, 1e-6);
  EXPECT_NEAR(bleu(items).per_item[0][3], 8.656e-5, 1e-7);
}

// Nothing matches: every factor is 1e-15 over the guesses, tiny but not zero.
TEST(Bleu, NoMatchesGiveTheSmoothedValue) {
  const CaptionItem items[] = {item("x y", {"a b"})};
  const double p1 = factor(0, 2), p2 = factor(0, 1), p3 = factor(0, 0), p4 = factor(0, 0);
  const BleuScores s = bleu(items);
  expect_bleu(s.per_item[0], geometric_means(p1, p2, p3, p4));
  EXPECT_GT(s.per_item[0][0], 0.0);
}

// The corpus pools counts: matches = guesses = (3+5, 2+4, 1+3, 0+2), lengths 8 against 6 + 5 = 11,
// so every order is exp(1 - 11/8) = e^-0.375, not the mean of the per-item values.
TEST(Bleu, CorpusPoolsCountsAndLengths) {
  const CaptionItem items[] = {item("a cat sat", {"a cat sat on the mat"}),
                               item("a man rides a horse", {"a man rides a horse"})};
  const BleuScores s = bleu(items);
  const double bp = std::exp(-0.375);
  expect_bleu(s.corpus, {bp, bp, bp, bp});
  expect_bleu(s.per_item[1], {1, 1, 1, 1});
  EXPECT_NEAR(s.per_item[0][0], std::exp(-1.0), kTolerance);
}

// An empty candidate adds a reference length but no guesses: matches = guesses = (4, 3, 2, 1),
// lengths 4 against 3 + 4 = 7, so every order is exp(1 - 7/4).
TEST(Bleu, EmptyCandidateLowersTheCorpusThroughLength) {
  const CaptionItem items[] = {item("", {"a b c"}), item("x y z w", {"x y z w"})};
  const double bp = std::exp(1 - 7.0 / 4);
  expect_bleu(bleu(items).corpus, {bp, bp, bp, bp});
}

// ---- ROUGE-L -------------------------------------------------------------------------------------

TEST(RougeL, IdenticalCandidateScoresOne) {
  const CaptionItem items[] = {item("the heart is normal", {"the heart is normal"})};
  EXPECT_NEAR(rouge_l(items).per_item[0], 1.0, kTolerance);
}

// LCS "a c d" = 3: P = 3/4, R = 3/5, F = 2.44 * 0.45 / (0.6 + 1.08) = 0.653571...
TEST(RougeL, PartialOverlap) {
  const CaptionItem items[] = {item("a b c d", {"a x c d e"})};
  EXPECT_NEAR(rouge_l(items).per_item[0], 1.098 / 1.68, kTolerance);
  EXPECT_NEAR(rouge_l(items).per_item[0], rouge_f(0.75, 0.6), kTolerance);
}

// Order matters: LCS of "c b a" and "a b c" is 1, P = R = 1/3, F = 1/3.
TEST(RougeL, SubsequenceRespectsOrder) {
  const CaptionItem items[] = {item("c b a", {"a b c"})};
  EXPECT_NEAR(rouge_l(items).per_item[0], 1.0 / 3, kTolerance);
}

// Precision and recall are each maximised over references: "a b" gives R = 1 (P = 1/2), the long one
// P = 1 (R = 1/2), so F = 1, more than either reference's own F (0.709, 0.629).
TEST(RougeL, PrecisionAndRecallMaximisedSeparately) {
  const CaptionItem items[] = {item("a b c d", {"a b", "a b c d e f g h"})};
  EXPECT_NEAR(rouge_l(items).per_item[0], 1.0, kTolerance);
}

// Five references. LCS with "the heart is normal in size": 3 (P 1/2, R 3/4), 3 (P 1/2, R 3/4),
// 2 (P 1/3, R 2/3), 6 (P 1, R 6/8), 0. P = 1, R = 3/4: F = 2.44 * 0.75 / (0.75 + 1.44) = 0.835616...
TEST(RougeL, FiveReferences) {
  const CaptionItem items[] = {item("the heart is normal in size",
                                    {"heart size is normal", "the heart is enlarged", "normal heart size",
                                     "the heart is normal in size and shape", "no acute findings"})};
  EXPECT_NEAR(rouge_l(items).per_item[0], 1.83 / 2.19, kTolerance);
}

TEST(RougeL, NoOverlapAndEmptyCandidateScoreZero) {
  const CaptionItem items[] = {item("x y", {"a b"}), item("", {"a b"})};
  const MeanScores s = rouge_l(items);
  EXPECT_EQ(s.per_item[0], 0.0);
  EXPECT_EQ(s.per_item[1], 0.0);
}

// The reference splits "" on spaces into one empty token, so an empty candidate matches an empty
// reference: P = R = 1 (even when another reference is not empty).
TEST(RougeL, EmptyCandidateMatchesEmptyReference) {
  const CaptionItem items[] = {item("", {""}), item("", {"", "a b"})};
  const MeanScores s = rouge_l(items);
  EXPECT_NEAR(s.per_item[0], 1.0, kTolerance);
  EXPECT_NEAR(s.per_item[1], 1.0, kTolerance);
}

// The corpus value is the mean: (0.653571 + 0) / 2.
TEST(RougeL, CorpusIsTheMean) {
  const CaptionItem items[] = {item("a b c d", {"a x c d e"}), item("x y", {"a b"})};
  EXPECT_NEAR(rouge_l(items).corpus, rouge_f(0.75, 0.6) / 2, kTolerance);
}

// ---- CIDEr-D -------------------------------------------------------------------------------------

// One item: idf = log(1) - log(df) = 0 for every n-gram, so every vector is zero and so is the score.
TEST(CiderD, SingleItemScoresZero) {
  const CaptionItem items[] = {item("a b c d", {"a b c d"})};
  EXPECT_EQ(cider_d(items).per_item[0], 0.0);
}

// Two items with disjoint references: every n-gram has df 1, weight log 2; identical captions have
// cosine 1 at all four orders and no length gap: 10 * mean(1, 1, 1, 1) = 10.
TEST(CiderD, IdenticalCandidatesScoreTen) {
  const CaptionItem items[] = {item("a b c d", {"a b c d"}), item("e f g h", {"e f g h"})};
  const MeanScores s = cider_d(items);
  EXPECT_NEAR(s.per_item[0], 10.0, kTolerance);
  EXPECT_NEAR(s.per_item[1], 10.0, kTolerance);
  EXPECT_NEAR(s.corpus, 10.0, kTolerance);
}

// All weights log 2 (the unseen "d" also gets idf log 2 - log 1). Cosines: unigrams 3/4, bigrams
// 2/3, trigrams 1/2, 4-grams 0; score = 10 * (3/4 + 2/3 + 1/2) / 4 = 4.791666...; corpus (that + 10)/2.
TEST(CiderD, PartialMatchAndCorpusMean) {
  const CaptionItem items[] = {item("a b c d", {"a b c e"}), item("x y z w", {"x y z w"})};
  const MeanScores s = cider_d(items);
  const double first = 10 * (0.75 + 2.0 / 3 + 0.5) / 4;
  EXPECT_NEAR(s.per_item[0], first, kTolerance);
  EXPECT_NEAR(s.per_item[0], 4.7916667, 1e-6);
  EXPECT_NEAR(s.corpus, (first + 10) / 2, kTolerance);
}

// Candidate of 6 tokens (5 bigrams) against 4 (3 bigrams): length gap 2, penalty exp(-4 / 72).
// Cosines with equal weights: 4/(sqrt6*2), 3/(sqrt5*sqrt3), 2/(2*sqrt2), 1/sqrt3.
TEST(CiderD, GaussianLengthPenalty) {
  const CaptionItem items[] = {item("a b c d e f", {"a b c d"}), item("x y z w", {"x y z w"})};
  const double cosines = 2 / std::sqrt(6.0) + std::sqrt(3.0 / 5) + 1 / std::sqrt(2.0) + 1 / std::sqrt(3.0);
  EXPECT_NEAR(cider_d(items).per_item[0], 10 * cosines / 4 * std::exp(-4.0 / 72), kTolerance);
}

// "a" x4 (weight 4L) against "a b a c" (a: 2L, b, c: L), L = log 2. Clipped dot min(4L, 2L) * 2L = 4L^2
// over norms 4L * sqrt6 L: cosine 1/sqrt6 (unclipped it would be 2/sqrt6). No higher-order matches.
TEST(CiderD, RepeatedNgramsAreClipped) {
  const CaptionItem items[] = {item("a a a a", {"a b a c"}), item("x y z w", {"x y z w"})};
  EXPECT_NEAR(cider_d(items).per_item[0], 10 / (4 * std::sqrt(6.0)), kTolerance);
  EXPECT_NEAR(cider_d(items).per_item[0], 1.0206207, 1e-6);
}

// Three items, the first with five references. df: "a" 2 (items 1, 2), everything else 1 or 0, so
// with T = log 3, A = log 3 - log 2: a -> A; b, c, e, "a b" and the unseen "d" -> T.
// Candidate "a b" (unigram norm sqrt(A^2+T^2) = r, one bigram), against
//   "a b": cosines 1, 1;  "a c": A^2/r^2;  "b": T/r, length gap 1 (bigrams 1 vs 0), penalty e^(-1/72);
//   "a": A/r, same penalty;  "c b": T^2 / (r * sqrt2 T) = T/(sqrt2 r).
// score = 10 * sum / 4 / 5. Item 2 ("a" vs "a"): unigram cosine 1 only, 2.5. Item 3 ("d" vs "e"): 0.
TEST(CiderD, DocumentFrequencyOverItemsWithFiveReferences) {
  const CaptionItem items[] = {item("a b", {"a b", "a c", "b", "a", "c b"}), item("a", {"a"}),
                               item("d", {"e"})};
  const double T = std::log(3.0), A = std::log(3.0) - std::log(2.0), r = std::sqrt(A * A + T * T);
  const double sum = 2 + A * A / (r * r) + (T + A) / r * std::exp(-1.0 / 72) + T / (std::sqrt(2.0) * r);
  const double first = 10 * sum / 4 / 5;
  const MeanScores s = cider_d(items);
  EXPECT_NEAR(s.per_item[0], first, kTolerance);
  EXPECT_NEAR(s.per_item[1], 2.5, kTolerance);
  EXPECT_EQ(s.per_item[2], 0.0);
  EXPECT_NEAR(s.corpus, (first + 2.5) / 3, kTolerance);
}

// An n-gram in every item's references has idf 0: "a" carries no weight, so even the exact match
// in item 1 scores 0; item 2's candidate is all-zero too.
TEST(CiderD, NgramInEveryItemCarriesNoWeight) {
  const CaptionItem items[] = {item("a", {"a"}), item("a", {"a b"})};
  const MeanScores s = cider_d(items);
  EXPECT_EQ(s.per_item[0], 0.0);
  EXPECT_EQ(s.per_item[1], 0.0);
}

// An empty candidate has zero vectors (the norms are 0, so no division) and scores 0.
TEST(CiderD, EmptyCandidateScoresZero) {
  const CaptionItem items[] = {item("", {"a b"}), item("x y z w", {"x y z w"})};
  const MeanScores s = cider_d(items);
  EXPECT_EQ(s.per_item[0], 0.0);
  EXPECT_NEAR(s.corpus, 5.0, kTolerance);
}

// ---- Together ------------------------------------------------------------------------------------

// Raw text through the tokenizer and all three metrics. Item 1 is exact; item 2 ("no effusion" vs
// "no pleural effusion"): BLEU p1 = 2/2, p2 = 0/1, no trigrams, penalty exp(1 - 3/2); ROUGE-L
// P = 1, R = 2/3. CIDEr-D, L = log 2, all df 1: unigram cosine 2/(sqrt2 sqrt3), bigram 0, gap 1 bigram.
TEST(CaptionScores, TextThroughAllMetrics) {
  auto text_item = [](std::string_view candidate, std::string_view reference) {
    return CaptionItem{.candidate = caption_tokens(candidate), .references = {caption_tokens(reference)}};
  };
  const CaptionItem items[] = {text_item("The heart is normal.", "the heart is NORMAL"),
                               text_item("No effusion.", "No pleural effusion.")};
  const CaptionScores s = score_captions(items);
  const double bp = brevity(2, 3);
  const auto means = geometric_means(factor(2, 2), factor(0, 1), factor(0, 0), factor(0, 0));
  expect_bleu(s.bleu.per_item[1], {means[0] * bp, means[1] * bp, means[2] * bp, means[3] * bp});
  EXPECT_NEAR(s.bleu.per_item[1][0], std::exp(1 - 1.5), kTolerance);
  expect_bleu(s.bleu.per_item[0], {1, 1, 1, 1});
  EXPECT_NEAR(s.rouge_l.per_item[1], rouge_f(1, 2.0 / 3), kTolerance);
  EXPECT_NEAR(s.rouge_l.corpus, (1 + rouge_f(1, 2.0 / 3)) / 2, kTolerance);
  const double second = 10 * (2 / std::sqrt(6.0)) / 4 * std::exp(-1.0 / 72);
  EXPECT_NEAR(s.cider_d.per_item[1], second, kTolerance);
  EXPECT_NEAR(s.cider_d.corpus, (10 + second) / 2, kTolerance);
}

TEST(CaptionScores, FailsWithoutItemsOrReferences) {
  EXPECT_THROW(score_captions({}), Error);
  const CaptionItem items[] = {item("a", {"a"}), CaptionItem{.candidate = words("b")}};
  try {
    bleu(items);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("caption 1 has no references"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rouge_l(items), Error);
  EXPECT_THROW(cider_d(items), Error);
}

}  // namespace
}  // namespace medlab
