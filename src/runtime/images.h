// Images in prompts: reading a PNG, JPEG or DICOM file into the RGB picture the model is shown, turning it
// into soft tokens through the vision tower (remembering images already seen), and placing those tokens
// in the prompt the way transformers' Gemma3Processor does.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "imaging/decode.h"
#include "imaging/preprocess.h"
#include "model/gemma3.h"
#include "model/siglip.h"
#include "tokenizer/tokenizer.h"

namespace medlab {

struct ImageReadOptions {
  DecodeOptions decode;
  std::string dicom_window = "file";  // see dicom::parse_window: file, a preset, C,W, ct-rgb, cxr, ...
  uint32_t dicom_frame = 0;           // 0-based
};

struct PromptImage {
  std::string file;  // the file name only: DICOM paths can carry patient names
  Image rgb;
  std::string source;                 // "png", "jpeg", or what was applied to a DICOM ("window C40 W400 ...")
  std::optional<std::string> dicom_pixel_sha256;
};

// SHA-256 of the RGB picture the model is shown (before resizing): of "<width>x<height>\n" and then its
// bytes, so that the same pixels give the same hash whether they came from PNG, JPEG or DICOM.
std::string pixel_sha256(const Image& image);

// An image over ImageReadOptions::decode.max_pixels, refused from its header (the server answers 413).
class ImageTooLarge : public Error {
 public:
  using Error::Error;
};

// Reads PNG or JPEG (by content) or DICOM (by its "DICM" signature or a .dcm name).
PromptImage read_prompt_image(const std::string& path, const ImageReadOptions& options = {});
// The same for a whole file held in memory (an upload); `name` stands for the file in messages and, ending
// in .dcm, marks a DICOM object without the Part 10 preamble.
PromptImage read_prompt_image_bytes(std::span<const uint8_t> bytes, const std::string& name,
                                    const ImageReadOptions& options = {});

// Soft tokens of images already encoded, keyed by the SHA-256 of the model input (the preprocessed
// pixels) and the precision, so the same pixels with the same preprocessing are encoded once. Safe to share
// between threads.
class ImageEmbeddingCache {
 public:
  explicit ImageEmbeddingCache(size_t capacity = 64) : capacity_(capacity) {}

  struct Encoded {
    std::shared_ptr<const std::vector<float>> embeddings;  // tokens_per_image x hidden
    double encode_ms = 0;  // 0 when it came from the cache
    bool cached = false;
  };
  Encoded encode(const SiglipVision& vision, const ModelInput& input, ThreadPool& pool, const KernelTable& kernels,
                 Precision precision = Precision::Exact);

  // The parts of encode(), for a caller that encodes a step at a time (SiglipVision::Encoding).
  static std::string key(const SiglipVision& vision, const ModelInput& input, Precision precision);
  std::shared_ptr<const std::vector<float>> find(const std::string& key);
  void insert(const std::string& key, std::shared_ptr<const std::vector<float>> embeddings);

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::list<std::string> recent_;  // most recent first
  std::map<std::string, std::shared_ptr<const std::vector<float>>> entries_;
};

// The preprocessing the checkpoint's vision tower expects (its image size; the reference's mean and std).
PreprocessOptions preprocess_options_for(const SiglipVision& vision);

// Replaces every "<start_of_image>" in rendered prompt text by the processor's full image sequence:
// "\n\n<start_of_image>" + tokens_per_image x "<image_soft_token>" + "<end_of_image>\n\n".
std::string expand_image_markers(const std::string& text, int64_t tokens_per_image, size_t& markers);

// Pairs each run of image tokens in `tokens` with the next image's embeddings, in order; an error if the
// runs and the images do not correspond one to one.
std::vector<ImageEmbeddings> place_images(const std::vector<TokenId>& tokens, TokenId image_token, int64_t tokens_per_image,
                                          const std::vector<std::shared_ptr<const std::vector<float>>>& embeddings);

}  // namespace medlab
