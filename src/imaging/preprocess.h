// The vision tower's input, computed as transformers' Gemma3ImageProcessor does by default: the RGB image
// resized to size x size with Pillow's BILINEAR filter (bit-exact: the same fixed-point arithmetic),
// rescaled by 1/255 and normalised with mean 0.5, std 0.5, laid out channels first. Optionally
// letterboxed instead of stretched, and optionally with the processor's pan-and-scan crops.
// This is the (slow) Gemma3ImageProcessor, whose resize goes through PIL; Gemma3ImageProcessorFast
// resizes with torchvision instead and gives slightly different pixels.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imaging/image.h"

namespace medlab {

// The processor's pan_and_scan_* parameters, with the values MedGemma's preprocessor_config.json gives.
struct PanAndScanOptions {
  int min_crop_size = 256;
  int max_num_crops = 4;
  double min_ratio_to_activate = 1.2;
};

enum class Fit {
  Stretch,    // the reference: resize to width x height whatever the aspect ratio
  Letterbox,  // keep the aspect ratio, scale to fit, centre on a pad_rgb background
};

struct PreprocessOptions {
  // preprocessor_config.json "size" (the vision config's image_size): 896 x 896 for MedGemma.
  int width = 896;
  int height = 896;
  Fit fit = Fit::Stretch;
  std::array<uint8_t, 3> pad_rgb = {0, 0, 0};  // letterbox background: black, -1.0 after normalisation
  double rescale_factor = 1.0 / 255.0;
  std::array<float, 3> image_mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std = {0.5f, 0.5f, 0.5f};
  bool pan_and_scan = false;  // the reference's do_pan_and_scan, off by default
  PanAndScanOptions pan_and_scan_options;
};

// A rectangle of the input image, in pixels.
struct CropBox {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
  bool operator==(const CropBox&) const = default;
};

// One image as the vision tower takes it.
struct ModelInput {
  CropBox source;             // the part of the input image it shows (the whole image, or a crop)
  Image resized;              // the 8-bit RGB the model sees, options.width x options.height
  std::vector<float> pixels;  // [3][height][width]: (value * rescale_factor - mean) / std, in float32
};

// Pillow's Image.resize((width, height), Image.BILINEAR) on an RGB image: a triangle filter widened by
// the scale factor when shrinking (so it antialiases), horizontal pass then vertical pass, 8-bit rounding
// between them, weights in 22-bit fixed point.
Image resize_bilinear(const Image& image, int width, int height);

// The part of `image` inside `box` (which must lie within it).
Image crop(const Image& image, const CropBox& box);

// The reference processor's pan-and-scan crops of a width x height image, in reading order; none when the
// aspect ratio is below min_ratio_to_activate or the crops would be smaller than min_crop_size. The last
// crop of a row or column may be narrower (the reference slices past the edge).
std::vector<CropBox> pan_and_scan_crops(int width, int height, const PanAndScanOptions& options);

// `image` resized to options.width x options.height (stretched or letterboxed).
Image fit_to_size(const Image& image, const PreprocessOptions& options);

// Channels-first float32 [3][height][width] of an already resized image.
std::vector<float> normalize_chw(const Image& image, const PreprocessOptions& options);

// The whole image first, then (with options.pan_and_scan) each crop: the reference's pixel_values for one
// image, whose num_crops is the returned size minus one.
std::vector<ModelInput> preprocess_image(const Image& image, const PreprocessOptions& options);

// The text the reference processor puts in place of an image that has crops:
// "Here is the original image <tok> and here are some crops to help you see better <tok> <tok> ..."
// with one <tok> (the processor's boi_token, "<start_of_image>") per crop. An image without crops keeps
// its single token.
std::string pan_and_scan_prompt(std::string_view image_token, size_t num_crops);

}  // namespace medlab
