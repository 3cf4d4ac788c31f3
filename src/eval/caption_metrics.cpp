// BLEU, ROUGE-L and CIDEr-D as pycocoevalcap computes them, and its tokenisation re-done in C++.
// ref: github.com/tylin/coco-caption pycocoevalcap/{bleu/bleu_scorer.py, rouge/rouge.py,
//      cider/cider_scorer.py, tokenizer/ptbtokenizer.py}; the constants below are the reference's.
#include "eval/caption_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"

namespace medlab {
namespace {

constexpr int kMaxN = 4;
constexpr double kBleuSmall = 1e-9;   // added to every BLEU denominator
constexpr double kBleuTiny = 1e-15;   // added to every BLEU numerator: zero matches give a tiny, not 0
constexpr double kRougeBeta = 1.2;    // weight of recall in ROUGE-L's F-measure
constexpr double kCiderSigma = 6.0;   // width of CIDEr-D's Gaussian length penalty

// ---- Tokenisation --------------------------------------------------------------------------------

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// UTF-8 lead and continuation bytes count as letters: non-ASCII words stay whole.
bool is_word_byte(unsigned char c) { return is_digit(char(c)) || is_alpha(char(c)) || c >= 0x80; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

// PTB turns typographic quotes into ASCII ones and dashes/ellipsis into -- and ..., which the
// reference then drops; mapping them first lets the ASCII rules below do the rest.
std::string ascii_punctuation(std::string_view text) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"\xE2\x80\x98", "'"},     {"\xE2\x80\x99", "'"},     {"\xE2\x80\x9C", "\""},
      {"\xE2\x80\x9D", "\""},    {"\xE2\x80\x93", " -- "},  {"\xE2\x80\x94", " -- "},
      {"\xE2\x80\xA6", " ... "}, {"\xC2\xA0", " "}};
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    bool mapped = false;
    for (const auto& [from, to] : kMap) {
      size_t len = std::strlen(from);
      if (text.substr(i, len) == from) {
        out += to;
        i += len;
        mapped = true;
        break;
      }
    }
    if (mapped) continue;
    unsigned char c = static_cast<unsigned char>(text[i++]);
    out += c < 0x20 ? ' ' : char(c);  // newlines, tabs, NUL: separators
  }
  return out;
}

// Words PTB keeps with their final period: a few common ones always, some only before a number
// ("fig. 2", "approx. 5 cm" but "the answer is no."), initials, and letters joined by periods.
bool is_abbreviation(const std::string& word, bool number_follows) {
  static const std::set<std::string> kAlways = {"mr", "mrs", "ms", "dr",  "drs", "prof", "st", "jr",
                                                "sr", "vs",  "etc", "eg", "al",  "inc",  "ltd", "corp",
                                                "co", "dept"};
  static const std::set<std::string> kBeforeNumber = {"ca",  "fig", "figs", "no",  "nos",    "vol", "vols",
                                                      "sec", "sect", "art", "para", "approx", "pp",  "pt"};
  const std::string lowered = lower(word);
  if (kAlways.count(lowered) || (number_follows && kBeforeNumber.count(lowered))) return true;
  if (word.size() == 1) return word[0] >= 'A' && word[0] <= 'Z';  // an initial: "J."
  // Letters joined by periods: "e.g", "i.e", "u.s" (the lexer has already joined them).
  for (size_t i = 0; i < word.size(); ++i)
    if (i % 2 == 0 ? !is_alpha(word[i]) : word[i] != '.') return false;
  return word.size() >= 3;
}

// Clitics PTB splits off a word: "dog's" -> dog 's, "they're" -> they 're.
bool is_clitic(std::string_view s) {
  return s == "'s" || s == "'re" || s == "'ve" || s == "'ll" || s == "'d" || s == "'m";
}

// "cannot" -> can not, "gonna" -> gon na, ...: the fused forms PTB splits in two.
void push_word(std::string word, std::vector<std::string>& tokens) {
  word = lower(word);
  static const std::map<std::string, size_t> kSplitAt = {{"cannot", 3}, {"gonna", 3}, {"gotta", 3},
                                                         {"wanna", 3},  {"lemme", 3}, {"gimme", 3}};
  auto split = kSplitAt.find(word);
  if (split == kSplitAt.end()) {
    tokens.push_back(std::move(word));
    return;
  }
  tokens.push_back(word.substr(0, split->second));
  tokens.push_back(word.substr(split->second));
}

// Reads one word from s[i]: letters/digits/UTF-8, joined across -./& before a word character, across
// , and : between digits, and across an apostrophe that starts no clitic ("o'clock").
// A following "n't" or clitic is pushed as its own token.
size_t lex_word(const std::string& s, size_t i, std::vector<std::string>& tokens) {
  const size_t start = i, n = s.size();
  auto word_at = [&](size_t k) { return k < n && is_word_byte(static_cast<unsigned char>(s[k])); };
  if (s[i] == '-' || s[i] == '.') ++i;  // a leading minus or decimal point of a number
  for (;;) {
    while (word_at(i)) ++i;
    if (!word_at(i + 1)) break;
    const char c = s[i];
    if (c == '-' || c == '.' || c == '/' || c == '&') {
      ++i;
    } else if ((c == ',' || c == ':') && is_digit(s[i - 1]) && is_digit(s[i + 1])) {
      ++i;
    } else if (c == '\'') {
      size_t end = i + 1;
      while (end < n && is_alpha(s[end])) ++end;
      if (word_at(end)) {  // letters then digits or UTF-8: not a clitic
        i = end;
        continue;
      }
      const std::string clitic = lower(std::string_view(s).substr(i, end - i));
      if (clitic == "'t" && i - start >= 2 && (s[i - 1] == 'n' || s[i - 1] == 'N')) {
        push_word(s.substr(start, i - 1 - start), tokens);
        tokens.push_back("n't");
        return end;
      }
      if (is_clitic(clitic)) break;  // the main loop pushes the clitic next
      i = end;
    } else {
      break;
    }
  }
  std::string word = s.substr(start, i - start);
  size_t next = i + 1;
  while (next < n && s[next] == ' ') ++next;
  if (i < n && s[i] == '.' && is_abbreviation(word, next < n && is_digit(s[next]))) {
    word += '.';
    ++i;
  }
  push_word(std::move(word), tokens);
  return i;
}

// ---- N-gram counts -------------------------------------------------------------------------------

// An n-gram as its tokens, each prefixed by its length, so no two n-grams share a key.
using NgramCounts = std::unordered_map<std::string, int>;

// counts[n-1]: every n-gram of the tokens with its count, n = 1..4.
std::array<NgramCounts, kMaxN> count_ngrams(const std::vector<std::string>& tokens) {
  std::array<NgramCounts, kMaxN> counts;
  for (size_t start = 0; start < tokens.size(); ++start) {
    std::string key;
    for (size_t n = 1; n <= kMaxN && start + n <= tokens.size(); ++n) {
      const std::string& token = tokens[start + n - 1];
      const uint32_t length = uint32_t(token.size());
      key.append(reinterpret_cast<const char*>(&length), sizeof(length));
      key += token;
      ++counts[n - 1][key];
    }
  }
  return counts;
}

void check_items(std::span<const CaptionItem> items, const char* metric) {
  if (items.empty()) fail(metric, ": no captions to score");
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].references.empty()) fail(metric, ": caption ", i, " has no references");
}

size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> row(b.size() + 1, 0);  // row[j]: LCS of a[0..i) and b[0..j)
  for (const std::string& token : a) {
    size_t diagonal = 0;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = token == b[j - 1] ? diagonal + 1 : std::max(row[j], row[j - 1]);
      diagonal = above;
    }
  }
  return row[b.size()];
}

// CIDEr-D's TF-IDF vector of one caption, per n-gram order.
struct TfIdf {
  std::array<std::unordered_map<std::string, double>, kMaxN> weights;
  std::array<double, kMaxN> norm{};
  // Length as the reference measures it, in bigrams: the same gap as in tokens unless a caption is
  // empty, and an empty caption scores 0 whatever the penalty.
  int length = 0;
};

}  // namespace

std::vector<std::string> caption_tokens(std::string_view text) {
  static constexpr char kBrackets[] = "()[]{}";
  const std::string s = ascii_punctuation(text);
  std::vector<std::string> tokens;
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const char c = s[i];
    const bool digit_next = i + 1 < n && is_digit(s[i + 1]);
    const bool after_word = i > 0 && is_word_byte(static_cast<unsigned char>(s[i - 1]));
    const bool number_sign = (c == '-' || c == '.') && digit_next && !after_word;  // -2, .5
    if (c == ' ') {
      ++i;
    } else if (is_word_byte(static_cast<unsigned char>(c)) || number_sign) {
      i = lex_word(s, i, tokens);
    } else if (c == '\'') {
      size_t end = i + 1;
      while (end < n && is_alpha(s[end])) ++end;
      const std::string clitic = lower(std::string_view(s).substr(i, end - i));
      if (is_clitic(clitic) && (end == n || !is_word_byte(static_cast<unsigned char>(s[end])))) {
        tokens.push_back(clitic);
        i = end;
      } else {
        ++i;  // a quote mark: ' and '' are dropped
      }
    } else if (c == '.' || c == '-') {
      while (i < n && s[i] == c) ++i;  // . ... - -- are all dropped
    } else if (std::strchr("\"`,;:?!", c)) {
      ++i;  // `` '' , ; : ? ! are dropped
    } else if (const char* bracket = std::strchr(kBrackets, c)) {
      static const char* kEscaped[] = {"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"};
      tokens.push_back(kEscaped[bracket - kBrackets]);
      ++i;
    } else {
      tokens.push_back(std::string(1, c));  // any other symbol: % $ # + = * / & < > ...
      ++i;
    }
  }
  return tokens;
}

void BleuCounts::add(const BleuCounts& other) {
  for (int k = 0; k < kMaxN; ++k) {
    correct[k] += other.correct[k];
    guess[k] += other.guess[k];
  }
  test_length += other.test_length;
  ref_length += other.ref_length;
}

BleuCounts bleu_counts(const CaptionItem& item) {
  // Each n-gram's count is clipped to its largest count in any one reference.
  std::array<NgramCounts, kMaxN> max_ref_counts;
  BleuCounts c{.test_length = double(item.candidate.size())};
  double best_gap = INFINITY;
  for (const auto& reference : item.references) {
    const auto counts = count_ngrams(reference);
    for (int k = 0; k < kMaxN; ++k)
      for (const auto& [ngram, count] : counts[k]) max_ref_counts[k][ngram] = std::max(max_ref_counts[k][ngram], count);
    // Closest reference length; a tie goes to the shorter one.
    const double length = double(reference.size()), gap = std::abs(length - c.test_length);
    if (gap < best_gap || (gap == best_gap && length < c.ref_length)) {
      best_gap = gap;
      c.ref_length = length;
    }
  }
  const auto counts = count_ngrams(item.candidate);
  for (int k = 0; k < kMaxN; ++k) {
    c.guess[k] = std::max(0.0, c.test_length - k);
    for (const auto& [ngram, count] : counts[k]) {
      auto found = max_ref_counts[k].find(ngram);
      if (found != max_ref_counts[k].end()) c.correct[k] += std::min(count, found->second);
    }
  }
  return c;
}

std::array<double, 4> bleu_from_counts(const BleuCounts& c) {
  std::array<double, kMaxN> scores{};
  double product = 1;
  for (int k = 0; k < kMaxN; ++k) {
    product *= (c.correct[k] + kBleuTiny) / (c.guess[k] + kBleuSmall);
    scores[k] = std::pow(product, 1.0 / (k + 1));
  }
  // Brevity penalty; the epsilons make equal lengths a hair short of ratio 1, as in the reference.
  const double ratio = (c.test_length + kBleuTiny) / (c.ref_length + kBleuSmall);
  if (ratio < 1)
    for (double& s : scores) s *= std::exp(1 - 1 / ratio);
  return scores;
}

BleuScores bleu(std::span<const CaptionItem> items) {
  check_items(items, "BLEU");
  BleuScores scores;
  BleuCounts total;
  for (const CaptionItem& item : items) {
    const BleuCounts own = bleu_counts(item);
    total.add(own);
    scores.per_item.push_back(bleu_from_counts(own));
  }
  scores.corpus = bleu_from_counts(total);
  return scores;
}

MeanScores rouge_l(std::span<const CaptionItem> items) {
  check_items(items, "ROUGE-L");
  // The reference splits "" into one empty token: an empty caption matches only an empty one.
  const std::vector<std::string> kEmpty = {""};
  auto or_empty = [&](const std::vector<std::string>& t) -> const std::vector<std::string>& {
    return t.empty() ? kEmpty : t;
  };
  MeanScores scores;
  for (const CaptionItem& item : items) {
    const auto& candidate = or_empty(item.candidate);
    // Precision and recall are maximised over the references separately, then combined.
    double precision = 0, recall = 0;
    for (const auto& ref : item.references) {
      const auto& reference = or_empty(ref);
      const double lcs = double(lcs_length(reference, candidate));
      precision = std::max(precision, lcs / double(candidate.size()));
      recall = std::max(recall, lcs / double(reference.size()));
    }
    const double beta2 = kRougeBeta * kRougeBeta;
    const double f = precision != 0 && recall != 0
                         ? ((1 + beta2) * precision * recall) / (recall + beta2 * precision)
                         : 0.0;
    scores.per_item.push_back(f);
    scores.corpus += f;
  }
  scores.corpus /= double(items.size());
  return scores;
}

MeanScores cider_d(std::span<const CaptionItem> items) {
  check_items(items, "CIDEr-D");
  // Document frequency: in how many items' reference sets each n-gram occurs.
  std::vector<std::vector<std::array<NgramCounts, kMaxN>>> ref_counts(items.size());
  std::unordered_map<std::string, double> document_frequency;
  for (size_t i = 0; i < items.size(); ++i) {
    std::set<std::string> seen;
    for (const auto& reference : items[i].references) {
      ref_counts[i].push_back(count_ngrams(reference));
      for (const auto& order : ref_counts[i].back())
        for (const auto& entry : order) seen.insert(entry.first);
    }
    for (const std::string& ngram : seen) document_frequency[ngram] += 1;
  }
  const double log_items = std::log(double(items.size()));

  auto tf_idf = [&](const std::array<NgramCounts, kMaxN>& counts) {
    TfIdf v;
    for (int k = 0; k < kMaxN; ++k) {
      for (const auto& [ngram, count] : counts[k]) {
        auto found = document_frequency.find(ngram);
        const double df = found == document_frequency.end() ? 0.0 : found->second;
        const double w = double(count) * (log_items - std::log(std::max(1.0, df)));
        v.weights[k][ngram] = w;
        v.norm[k] += w * w;
        if (k == 1) v.length += count;
      }
      v.norm[k] = std::sqrt(v.norm[k]);
    }
    return v;
  };

  MeanScores scores;
  for (size_t i = 0; i < items.size(); ++i) {
    const TfIdf candidate = tf_idf(count_ngrams(items[i].candidate));
    std::array<double, kMaxN> sum{};
    for (const auto& counts : ref_counts[i]) {
      const TfIdf reference = tf_idf(counts);
      const double delta = double(candidate.length - reference.length);
      const double penalty = std::exp(-(delta * delta) / (2 * kCiderSigma * kCiderSigma));
      for (int k = 0; k < kMaxN; ++k) {
        // Cosine similarity with the candidate's weights clipped at the reference's ("-D").
        double dot = 0;
        for (const auto& [ngram, w] : candidate.weights[k]) {
          auto found = reference.weights[k].find(ngram);
          if (found != reference.weights[k].end()) dot += std::min(w, found->second) * found->second;
        }
        if (candidate.norm[k] != 0 && reference.norm[k] != 0) dot /= candidate.norm[k] * reference.norm[k];
        sum[k] += dot * penalty;
      }
    }
    double mean = 0;
    for (double s : sum) mean += s;
    const double score = mean / kMaxN / double(items[i].references.size()) * 10.0;
    scores.per_item.push_back(score);
    scores.corpus += score;
  }
  scores.corpus /= double(items.size());
  return scores;
}

CaptionScores score_captions(std::span<const CaptionItem> items) {
  return {.bleu = bleu(items), .rouge_l = rouge_l(items), .cider_d = cider_d(items)};
}

}  // namespace medlab
