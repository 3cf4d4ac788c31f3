#include "repro/fingerprint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>

#include "core/sha256.h"
#include "imaging/synthetic_image.h"
#include "runtime/images.h"

namespace medlab {

std::string joined_ids(const std::vector<TokenId>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) text += (i ? "," : "") + std::to_string(ids[i]);
  return text;
}

std::string ids_sha256(const std::vector<TokenId>& ids) {
  const std::string text = joined_ids(ids);
  return Sha256().update(text.data(), text.size()).hex_digest();
}

std::string six_decimals(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6f", value);
  return text;
}

Fingerprint behavioural_fingerprint(const LoadedModel& model, ThreadPool& pool, const KernelTable& kernels) {
  Fingerprint f;
  f.prompt = kFingerprintPrompt;
  f.image = model.vision ? kFingerprintImage : "none";

  std::vector<TokenId> prompt;
  std::shared_ptr<std::vector<float>> embeddings;
  std::vector<ImageEmbeddings> placed;  // points into *embeddings
  if (model.vision) {
    size_t markers = 0;
    const std::string text = expand_image_markers(render_chat({{"user", f.prompt + "<start_of_image>"}}),
                                                  model.vision->tokens_per_image(), markers);
    prompt = model.tokenizer.encode(text, false);  // the text starts with <bos>
    const std::vector<ModelInput> inputs = preprocess_image(synthetic_image(), preprocess_options_for(*model.vision));
    embeddings = std::make_shared<std::vector<float>>(size_t(model.vision->tokens_per_image() * model.vision->output_dim()));
    model.vision->encode(inputs.front().pixels.data(), embeddings->data(), pool, kernels, Precision::Exact);
    placed = place_images(prompt, TokenId(model.checkpoint.config().image_token_index), model.vision->tokens_per_image(),
                          {embeddings});
  } else {
    prompt = model.tokenizer.encode(render_chat({{"user", f.prompt}}), false);
  }

  const Gemma3& decoder = model.decoder;
  Gemma3State state(decoder, int64_t(prompt.size()) + 1);
  Gemma3Workspace workspace(decoder, pool, kernels, Precision::Exact);
  std::vector<float> logits(size_t(decoder.n_vocab()));
  decoder.forward(state, workspace, prompt, logits.data(), placed);

  std::vector<TokenId> ids(logits.size());
  std::iota(ids.begin(), ids.end(), TokenId(0));
  const size_t top = std::min<size_t>(20, ids.size());
  // NaN (damaged weights) ranks last, so the order stays a strict weak one.
  const auto key = [&](TokenId id) { return std::isnan(logits[size_t(id)]) ? -INFINITY : logits[size_t(id)]; };
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(top), ids.end(),
                    [&](TokenId a, TokenId b) { return key(a) != key(b) ? key(a) > key(b) : a < b; });
  f.top20_ids.assign(ids.begin(), ids.begin() + std::ptrdiff_t(top));
  double sum = 0;
  for (size_t i = 0; i < std::min<size_t>(3, top); ++i) sum += double(logits[size_t(ids[i])]) * logits[size_t(ids[i])];
  f.top3_logit_l2 = std::sqrt(sum);
  f.top20_ids_sha256 = ids_sha256(f.top20_ids);
  return f;
}

}  // namespace medlab
