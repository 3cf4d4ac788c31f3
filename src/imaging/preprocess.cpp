#include "imaging/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace medlab {
namespace {

// Pillow keeps 8-bit resampling weights as integers with this many fraction bits.
constexpr int kWeightBits = 22;

// For each output position along one axis: the first source position and the fixed-point weights of the
// source positions from there on. Computed exactly as Pillow's precompute_coeffs (same double
// expressions, in the same order) so that rounding ties fall the same way.
struct AxisWeights {
  int taps = 0;                // weights per output position (unused trailing ones are 0)
  std::vector<int> first;      // [out]
  std::vector<int> count;      // [out]
  std::vector<int32_t> value;  // [out][taps]
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

AxisWeights bilinear_weights(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);  // widen the filter only when shrinking
  const double support = 1.0 * filter_scale;          // the triangle's support is 1
  const double inverse_filter_scale = 1.0 / filter_scale;

  AxisWeights w;
  w.taps = int(std::ceil(support)) * 2 + 1;
  w.first.resize(size_t(out_size));
  w.count.resize(size_t(out_size));
  w.value.assign(size_t(out_size) * size_t(w.taps), 0);
  std::vector<double> k(size_t(w.taps));
  for (int out = 0; out < out_size; ++out) {
    const double centre = (out + 0.5) * scale;
    const int lo = std::max(int(centre - support + 0.5), 0);  // int() truncates, as C's cast does
    const int hi = std::min(int(centre + support + 0.5), in_size);
    const int n = hi - lo;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) {
      k[size_t(i)] = triangle((i + lo - centre + 0.5) * inverse_filter_scale);
      sum += k[size_t(i)];
    }
    int32_t* dst = &w.value[size_t(out) * size_t(w.taps)];
    for (int i = 0; i < n; ++i) {
      const double normalised = sum != 0.0 ? k[size_t(i)] / sum : k[size_t(i)];
      dst[i] = int32_t(0.5 + normalised * (1 << kWeightBits));  // triangle weights are never negative
    }
    w.first[size_t(out)] = lo;
    w.count[size_t(out)] = n;
  }
  return w;
}

// Round-half-up of a fixed-point sum (the 0.5 is its initial value), clamped to 0..255.
uint8_t to_8bit(int32_t sum) { return uint8_t(std::clamp(sum >> kWeightBits, 0, 255)); }

constexpr int32_t kHalf = 1 << (kWeightBits - 1);

// Resamples rows [row_begin, row_end) of `in` to out.width columns.
Image resample_horizontal(const Image& in, int width, int row_begin, int row_end) {
  const AxisWeights w = bilinear_weights(in.width, width);
  Image out(width, row_end - row_begin);
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* row = in.pixel(0, y);
    uint8_t* dst = out.pixel(0, y - row_begin);
    for (int x = 0; x < width; ++x, dst += 3) {
      const int32_t* k = &w.value[size_t(x) * size_t(w.taps)];
      const uint8_t* src = row + size_t(w.first[size_t(x)]) * 3;
      int32_t r = kHalf, g = kHalf, b = kHalf;
      for (int i = 0; i < w.count[size_t(x)]; ++i, src += 3) {
        r += src[0] * k[i];
        g += src[1] * k[i];
        b += src[2] * k[i];
      }
      dst[0] = to_8bit(r);
      dst[1] = to_8bit(g);
      dst[2] = to_8bit(b);
    }
  }
  return out;
}

// `in` holds source rows from `row_offset` on; the weights index source rows.
Image resample_vertical(const Image& in, const AxisWeights& w, int row_offset, int height) {
  Image out(in.width, height);
  const size_t row_bytes = size_t(in.width) * 3;
  std::vector<int32_t> sum(row_bytes);
  for (int y = 0; y < height; ++y) {
    std::fill(sum.begin(), sum.end(), kHalf);
    const int32_t* k = &w.value[size_t(y) * size_t(w.taps)];
    for (int i = 0; i < w.count[size_t(y)]; ++i) {
      const uint8_t* src = in.pixel(0, w.first[size_t(y)] + i - row_offset);
      for (size_t j = 0; j < row_bytes; ++j) sum[j] += src[j] * k[i];
    }
    uint8_t* dst = out.pixel(0, y);
    for (size_t j = 0; j < row_bytes; ++j) dst[j] = to_8bit(sum[j]);
  }
  return out;
}

}  // namespace

Image resize_bilinear(const Image& image, int width, int height) {
  if (image.width <= 0 || image.height <= 0) fail("resize: the image is empty");
  if (width <= 0 || height <= 0) fail("resize: target size ", width, " x ", height, " is not positive");
  const bool horizontal = width != image.width;
  const bool vertical = height != image.height;
  if (!horizontal && !vertical) return image;
  if (!vertical) return resample_horizontal(image, width, 0, image.height);

  const AxisWeights rows = bilinear_weights(image.height, height);
  if (!horizontal) return resample_vertical(image, rows, 0, height);
  // Only the source rows the vertical pass reads need the horizontal pass.
  const int first_row = rows.first.front();
  const int end_row = rows.first.back() + rows.count.back();
  return resample_vertical(resample_horizontal(image, width, first_row, end_row), rows, first_row, height);
}

Image crop(const Image& image, const CropBox& box) {
  if (box.x < 0 || box.y < 0 || box.width <= 0 || box.height <= 0 || box.x + box.width > image.width ||
      box.y + box.height > image.height) {
    fail("crop: box ", box.width, " x ", box.height, " at (", box.x, ", ", box.y, ") is not inside the ",
         image.width, " x ", image.height, " image");
  }
  Image out(box.width, box.height);
  for (int y = 0; y < box.height; ++y) {
    std::memcpy(out.pixel(0, y), image.pixel(box.x, box.y + y), size_t(box.width) * 3);
  }
  return out;
}

std::vector<CropBox> pan_and_scan_crops(int width, int height, const PanAndScanOptions& options) {
  if (width <= 0 || height <= 0) return {};
  // The number of crops along the long side: its aspect ratio rounded half up, at most as many as
  // min_crop_size fits, then kept within [2, max_num_crops]. Same double arithmetic as the reference.
  const auto crops_along = [&](int long_side, int short_side) {
    int n = int(std::floor(double(long_side) / short_side + 0.5));
    n = std::min(int(std::floor(double(long_side) / options.min_crop_size)), n);
    return std::min(options.max_num_crops, std::max(2, n));
  };
  int across = 1, down = 1;
  if (width >= height) {
    if (double(width) / height < options.min_ratio_to_activate) return {};
    across = crops_along(width, height);
  } else {
    if (double(height) / width < options.min_ratio_to_activate) return {};
    down = crops_along(height, width);
  }
  const int crop_width = int(std::ceil(double(width) / across));
  const int crop_height = int(std::ceil(double(height) / down));
  if (std::min(crop_width, crop_height) < options.min_crop_size) return {};

  std::vector<CropBox> crops;
  for (int j = 0; j < down; ++j) {
    for (int i = 0; i < across; ++i) {
      const int x = crop_width * i, y = crop_height * j;
      // Clipped at the edge as the reference's array slicing clips; an empty crop (possible only with a
      // min_crop_size below max_num_crops squared) would make the reference fail, so it is left out.
      CropBox box{x, y, std::min(crop_width, width - x), std::min(crop_height, height - y)};
      if (box.width > 0 && box.height > 0) crops.push_back(box);
    }
  }
  return crops;
}

Image fit_to_size(const Image& image, const PreprocessOptions& options) {
  if (options.fit == Fit::Stretch) return resize_bilinear(image, options.width, options.height);

  const double scale = std::min(double(options.width) / image.width, double(options.height) / image.height);
  const int w = std::clamp(int(std::lround(image.width * scale)), 1, options.width);
  const int h = std::clamp(int(std::lround(image.height * scale)), 1, options.height);
  const Image fitted = resize_bilinear(image, w, h);
  Image out(options.width, options.height);
  for (size_t i = 0; i < out.rgb.size(); i += 3) std::memcpy(&out.rgb[i], options.pad_rgb.data(), 3);
  const int left = (options.width - w) / 2, top = (options.height - h) / 2;
  for (int y = 0; y < h; ++y) std::memcpy(out.pixel(left, top + y), fitted.pixel(0, y), size_t(w) * 3);
  return out;
}

std::vector<float> normalize_chw(const Image& image, const PreprocessOptions& options) {
  // transformers rescales in float64 then stores float32, then normalises in float32; a table per channel
  // of the 256 possible results reproduces that exactly.
  std::array<std::array<float, 256>, 3> table;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float rescaled = float(double(v) * options.rescale_factor);
      table[size_t(c)][size_t(v)] = (rescaled - options.image_mean[size_t(c)]) / options.image_std[size_t(c)];
    }
  }
  const size_t plane = size_t(image.width) * size_t(image.height);
  std::vector<float> out(plane * 3);
  for (size_t i = 0; i < plane; ++i) {
    for (size_t c = 0; c < 3; ++c) out[c * plane + i] = table[c][image.rgb[i * 3 + c]];
  }
  return out;
}

std::vector<ModelInput> preprocess_image(const Image& image, const PreprocessOptions& options) {
  if (image.width <= 0 || image.height <= 0) fail("preprocess: the image is empty");
  if (options.width <= 0 || options.height <= 0) {
    fail("preprocess: image size ", options.width, " x ", options.height, " is not positive");
  }
  std::vector<CropBox> boxes = {CropBox{0, 0, image.width, image.height}};
  if (options.pan_and_scan) {
    for (const CropBox& box : pan_and_scan_crops(image.width, image.height, options.pan_and_scan_options)) {
      boxes.push_back(box);
    }
  }
  std::vector<ModelInput> inputs;
  for (const CropBox& box : boxes) {
    ModelInput input;
    input.source = box;
    input.resized = fit_to_size(inputs.empty() ? image : crop(image, box), options);
    input.pixels = normalize_chw(input.resized, options);
    inputs.push_back(std::move(input));
  }
  return inputs;
}

std::string pan_and_scan_prompt(std::string_view image_token, size_t num_crops) {
  if (num_crops == 0) return std::string(image_token);
  std::string text = "Here is the original image ";
  text += image_token;
  text += " and here are some crops to help you see better";
  for (size_t i = 0; i < num_crops; ++i) {
    text += ' ';
    text += image_token;
  }
  return text;
}

}  // namespace medlab
