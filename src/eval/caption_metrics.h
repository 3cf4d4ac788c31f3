// Caption metrics as the COCO caption evaluation (pycocoevalcap) computes them: BLEU-1..4, ROUGE-L and
// CIDEr-D, corpus and per item, over captions already split into tokens; and caption_tokens(), which
// splits raw text the way its PTB tokenizer + punctuation filter does for common English text.
// Definitions, and where medlab departs from the reference: docs/EVALUATION.md, "Caption metrics".
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace medlab {

// Lower-cased PTB-style tokens with the reference's punctuation tokens dropped:
// "The dog's X-ray (left), 3.5 cm." -> the dog 's x-ray -lrb- left -rrb- 3.5 cm
// Like the reference, brackets survive as -lrb- -rrb- -lsb- -rsb- -lcb- -rcb- (it lower-cases
// after PTB escaping, and its drop list has only the upper-case forms).
std::vector<std::string> caption_tokens(std::string_view text);

// One evaluated caption and the references it is scored against (all already tokenized).
struct CaptionItem {
  // May be empty: it then scores 0, except ROUGE-L 1 against an empty reference (as in the reference).
  std::vector<std::string> candidate;
  std::vector<std::vector<std::string>> references;  // at least one; a reference may be empty
};

// Index n-1 holds BLEU-n. The corpus value pools n-gram counts and lengths over all items (it is not
// the mean of the per-item values); per item is the same formula on that item alone.
struct BleuScores {
  std::array<double, 4> corpus{};
  std::vector<std::array<double, 4>> per_item;
};

// corpus is the mean of per_item.
struct MeanScores {
  double corpus = 0;
  std::vector<double> per_item;
};

struct CaptionScores {
  BleuScores bleu;
  MeanScores rouge_l;
  MeanScores cider_d;
};

// BLEU's sufficient statistics: clipped matches and candidate n-grams per order, candidate and closest
// reference length. A corpus score is bleu_from_counts of the items' counts added up, so a subset's or a
// bootstrap resample's score needs no recount of n-grams.
struct BleuCounts {
  std::array<double, 4> correct{}, guess{};
  double test_length = 0, ref_length = 0;
  void add(const BleuCounts& other);
};
BleuCounts bleu_counts(const CaptionItem& item);
std::array<double, 4> bleu_from_counts(const BleuCounts& counts);

// Each fails on an empty item list or an item without references (naming the item).
BleuScores bleu(std::span<const CaptionItem> items);
MeanScores rouge_l(std::span<const CaptionItem> items);
// Document frequencies come from the references of these items, so an item's CIDEr-D depends on the
// whole set (as in the reference); one item alone scores 0 since every n-gram then has idf 0.
MeanScores cider_d(std::span<const CaptionItem> items);
CaptionScores score_captions(std::span<const CaptionItem> items);

}  // namespace medlab
