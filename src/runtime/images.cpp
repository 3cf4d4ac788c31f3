#include "runtime/images.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/sha256.h"
#include "imaging/dicom_render.h"

namespace medlab {
namespace {

bool has_dicom_name(const std::string& name) {
  const std::string ext = std::filesystem::path(name).extension().string();
  return ext == ".dcm" || ext == ".DCM" || ext == ".dicom";
}

bool has_dicom_signature(std::span<const uint8_t> head) {
  return head.size() >= 132 && std::string_view(reinterpret_cast<const char*>(head.data()) + 128, 4) == "DICM";
}

bool looks_like_dicom(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t head[132] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  return has_dicom_signature(std::span(head, size_t(in.gcount()))) || has_dicom_name(path);
}

Image to_rgb(const dicom::Rendered& r) {
  Image image(int(r.width), int(r.height));
  const size_t n = size_t(r.width) * r.height;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) image.rgb[i * 3 + size_t(c)] = r.channels == 3 ? r.pixels[i * 3 + size_t(c)] : r.pixels[i];
  return image;
}

void check_pixel_limit(const std::string& name, uint64_t width, uint64_t height, uint64_t limit) {
  if (width * height > limit) throw ImageTooLarge(name + ": " + std::to_string(width) + " x " + std::to_string(height) +
                                                  " pixels exceed the limit of " + std::to_string(limit));
}

PromptImage from_dicom(PromptImage out, const dicom::DicomImage& dicom, const ImageReadOptions& options) {
  if (options.dicom_frame >= dicom.header.frames)
    fail(out.file, ": frame ", options.dicom_frame + 1, " asked for, the file has ", dicom.header.frames);
  const dicom::Rendered rendered = dicom::render(dicom, dicom::parse_window(options.dicom_window), options.dicom_frame);
  check_pixel_limit(out.file, rendered.width, rendered.height, options.decode.max_pixels);
  out.rgb = to_rgb(rendered);
  out.source = "dicom: " + rendered.description;
  out.dicom_pixel_sha256 = dicom::pixel_hash(dicom);
  return out;
}

std::string format_name(std::span<const uint8_t> head) {
  return detect_image_format(head) == ImageFormat::Png ? "png" : "jpeg";
}

}  // namespace

std::string pixel_sha256(const Image& image) {
  const std::string size = std::to_string(image.width) + "x" + std::to_string(image.height) + "\n";
  return Sha256().update(size.data(), size.size()).update(image.rgb.data(), image.rgb.size()).hex_digest();
}

PromptImage read_prompt_image(const std::string& path, const ImageReadOptions& options) {
  PromptImage out;
  out.file = std::filesystem::path(path).filename().string();
  if (looks_like_dicom(path)) return from_dicom(std::move(out), dicom::read_dicom(path), options);
  out.rgb = decode_image_file(path, options.decode);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> head(8);
  in.read(reinterpret_cast<char*>(head.data()), 8);
  out.source = format_name(head);
  return out;
}

PromptImage read_prompt_image_bytes(std::span<const uint8_t> bytes, const std::string& name, const ImageReadOptions& options) {
  PromptImage out;
  out.file = name;
  if (has_dicom_signature(bytes) || has_dicom_name(name)) {
    const dicom::DicomHeader header = dicom::read_dicom_header(bytes, name);
    check_pixel_limit(name, header.columns, header.rows, options.decode.max_pixels);
    // Frames and samples multiply the pixels: bound what decoding may allocate for an upload too.
    dicom::ReadOptions read;
    read.max_pixel_bytes = std::min(read.max_pixel_bytes, options.decode.max_pixels * 8);
    return from_dicom(std::move(out), dicom::read_dicom(bytes, name, read), options);
  }
  if (const auto size = image_dimensions(bytes)) check_pixel_limit(name, size->first, size->second, options.decode.max_pixels);
  out.rgb = decode_image(bytes, options.decode, name);
  out.source = format_name(bytes);
  return out;
}

std::string ImageEmbeddingCache::key(const SiglipVision& vision, const ModelInput& input, Precision precision) {
  Sha256 sha;
  const int64_t dims[3] = {vision.image_size(), vision.output_dim(), int64_t(precision)};
  sha.update(dims, sizeof dims).update(input.pixels.data(), input.pixels.size() * sizeof(float));
  return sha.hex_digest();
}

std::shared_ptr<const std::vector<float>> ImageEmbeddingCache::find(const std::string& key) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  recent_.remove(key);
  recent_.push_front(key);
  return it->second;
}

void ImageEmbeddingCache::insert(const std::string& key, std::shared_ptr<const std::vector<float>> embeddings) {
  std::lock_guard lock(mutex_);
  if (entries_.emplace(key, std::move(embeddings)).second) recent_.push_front(key);
  while (recent_.size() > capacity_) {
    entries_.erase(recent_.back());
    recent_.pop_back();
  }
}

ImageEmbeddingCache::Encoded ImageEmbeddingCache::encode(const SiglipVision& vision, const ModelInput& input,
                                                         ThreadPool& pool, const KernelTable& kernels,
                                                         Precision precision) {
  const std::string k = key(vision, input, precision);
  if (auto cached = find(k)) return {cached, 0.0, true};
  const auto start = std::chrono::steady_clock::now();
  auto embeddings = std::make_shared<std::vector<float>>(size_t(vision.tokens_per_image() * vision.output_dim()));
  vision.encode(input.pixels.data(), embeddings->data(), pool, kernels, precision);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  insert(k, embeddings);
  return {embeddings, ms, false};
}

PreprocessOptions preprocess_options_for(const SiglipVision& vision) {
  PreprocessOptions options;
  options.width = options.height = int(vision.image_size());
  return options;
}

std::string expand_image_markers(const std::string& text, int64_t tokens_per_image, size_t& markers) {
  static const std::string boi = "<start_of_image>";
  std::string sequence = "\n\n" + boi;
  for (int64_t i = 0; i < tokens_per_image; ++i) sequence += "<image_soft_token>";
  sequence += "<end_of_image>\n\n";
  std::string out;
  markers = 0;
  size_t from = 0;
  for (size_t at; (at = text.find(boi, from)) != std::string::npos; from = at + boi.size()) {
    out.append(text, from, at - from);
    out += sequence;
    ++markers;
  }
  out.append(text, from);
  return out;
}

std::vector<ImageEmbeddings> place_images(const std::vector<TokenId>& tokens, TokenId image_token, int64_t tokens_per_image,
                                          const std::vector<std::shared_ptr<const std::vector<float>>>& embeddings) {
  std::vector<ImageEmbeddings> placed;
  for (size_t i = 0; i < tokens.size();) {
    if (tokens[i] != image_token) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < tokens.size() && tokens[end] == image_token) ++end;
    if (int64_t(end - i) != tokens_per_image)
      fail("prompt: a run of ", end - i, " image tokens at position ", i, "; each image takes exactly ", tokens_per_image);
    if (placed.size() == embeddings.size())
      fail("prompt: more image placeholders than the ", embeddings.size(), " images given");
    placed.push_back({int64_t(i), tokens_per_image, embeddings[placed.size()]->data()});
    i = end;
  }
  if (placed.size() != embeddings.size())
    fail("prompt: ", placed.size(), " image placeholders for ", embeddings.size(), " images given");
  return placed;
}

}  // namespace medlab
