// Parity with Pillow (Debian's python3-pil): decoding, BILINEAR resizing and the Gemma 3 processor's
// pixel_values and pan-and-scan crops must equal what tests/parity/pillow_reference.py gets from Pillow.
// Each test runs the script for its group into its own folder of the build tree, so ctest may run them
// in parallel.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imaging/decode.h"
#include "imaging/preprocess.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Runs pillow_reference.py for `group`; fails the test with its output when it cannot.
json generate(const std::string& group) {
  const fs::path out = fs::path(MEDLAB_BINARY_DIR) / "test-work" / "pillow_parity" / group;
  const std::string command = std::string(MEDLAB_PILLOW_PYTHON) + " " MEDLAB_SOURCE_DIR
                              "/tests/parity/pillow_reference.py --group " + group + " --out '" + out.string() +
                              "' 2>&1";
  std::string output;
  int status = -1;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    std::array<char, 4096> buffer;
    while (size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
    status = pclose(pipe);
  }
  if (status != 0) {
    ADD_FAILURE() << "the Pillow reference could not be generated (it needs python3-pil and python3-numpy for "
                  << MEDLAB_PILLOW_PYTHON << ": run scripts/setup.sh, or configure with "
                  << "-DMEDLAB_PILLOW_PYTHON=...): " << command << "\n" << output;
    return json();
  }
  std::ifstream manifest(out / "manifest.json");
  json parsed = json::parse(manifest);
  parsed["dir"] = out.string();
  return parsed;
}

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Image read_rgb(const json& manifest, const std::string& file, int width, int height) {
  Image image(width, height);
  const std::vector<uint8_t> bytes = read_file(fs::path(manifest["dir"].get<std::string>()) / file);
  EXPECT_EQ(bytes.size(), image.rgb.size()) << file;
  if (bytes.size() == image.rgb.size()) image.rgb = bytes;
  return image;
}

// Largest per-channel difference (256 when the sizes differ), and how many bytes differ.
struct Difference {
  int max = 0;
  size_t count = 0;
};

Difference compare(const Image& ours, const Image& pillow) {
  if (ours.width != pillow.width || ours.height != pillow.height) return {256, pillow.rgb.size()};
  Difference d;
  for (size_t i = 0; i < ours.rgb.size(); ++i) {
    const int diff = std::abs(int(ours.rgb[i]) - int(pillow.rgb[i]));
    d.max = std::max(d.max, diff);
    d.count += diff != 0;
  }
  return d;
}

// Pillow's fixed-point arithmetic is reproducible, so we ask for exact equality.
void expect_equal(const Image& ours, const Image& pillow, const std::string& what) {
  EXPECT_EQ(ours.width, pillow.width) << what;
  EXPECT_EQ(ours.height, pillow.height) << what;
  const Difference d = compare(ours, pillow);
  EXPECT_EQ(d.max, 0) << what << ": " << d.count << " of " << pillow.rgb.size() << " bytes differ";
}

TEST(PillowParity, DecodeEqualsOpenExifTransposeConvertRgb) {
  const json manifest = generate("decode");
  if (manifest.is_null()) return;
  DecodeOptions options;
  options.grey16 = Grey16Mode::ClipLikePillow;  // Pillow's behaviour; FullRange is tested in decode_test
  int compared = 0;
  for (const json& entry : manifest["images"]) {
    const std::string name = entry["name"];
    const Image pillow = read_rgb(manifest, entry["rgb"], entry["width"], entry["height"]);
    try {
      const Image ours = decode_image_file(fs::path(manifest["dir"].get<std::string>()) / entry["file"].get<std::string>(), options);
      expect_equal(ours, pillow, "decoding " + name);
      ++compared;
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": " << e.what();
    }
  }
  EXPECT_GE(compared, 20);
  std::printf("decoded %d images as Pillow %s does\n", compared, manifest["pillow"].get<std::string>().c_str());
}

TEST(PillowParity, ResizeEqualsPillowBilinear) {
  const json manifest = generate("resize");
  if (manifest.is_null()) return;
  int compared = 0;
  for (const json& entry : manifest["images"]) {
    const std::string name = entry["name"];
    const Image input = read_rgb(manifest, entry["rgb"], entry["width"], entry["height"]);
    for (const json& size : entry["resized"]) {
      const int width = size["width"], height = size["height"];
      const Image pillow = read_rgb(manifest, size["rgb"], width, height);
      expect_equal(resize_bilinear(input, width, height), pillow,
                   name + " resized to " + std::to_string(width) + " x " + std::to_string(height));
      ++compared;
    }
  }
  EXPECT_GE(compared, 40);
  std::printf("resized %d times as Pillow %s does\n", compared, manifest["pillow"].get<std::string>().c_str());
}

TEST(PillowParity, PixelValuesAndPanAndScanEqualGemma3ImageProcessor) {
  const json manifest = generate("preprocess");
  if (manifest.is_null()) return;
  PreprocessOptions options;
  options.width = manifest["size"][0];
  options.height = manifest["size"][1];
  options.pan_and_scan = true;
  options.pan_and_scan_options.min_crop_size = manifest["pan_and_scan"]["min_crop_size"];
  options.pan_and_scan_options.max_num_crops = manifest["pan_and_scan"]["max_num_crops"];
  options.pan_and_scan_options.min_ratio_to_activate = manifest["pan_and_scan"]["min_ratio_to_activate"];
  int with_crops = 0, float_compared = 0;
  for (const json& entry : manifest["images"]) {
    const std::string name = entry["name"];
    const Image input = read_rgb(manifest, entry["rgb"], entry["width"], entry["height"]);
    const std::vector<ModelInput> ours = preprocess_image(input, options);
    const json& reference = entry["inputs"];
    ASSERT_EQ(ours.size(), reference.size()) << name << ": number of model inputs (1 + crops)";
    with_crops += ours.size() > 1;
    for (size_t k = 0; k < ours.size(); ++k) {
      const std::string what = name + " input " + std::to_string(k);
      const auto box = reference[k]["box"].get<std::array<int, 4>>();
      EXPECT_EQ(ours[k].source, (CropBox{box[0], box[1], box[2], box[3]})) << what;
      expect_equal(ours[k].resized, read_rgb(manifest, reference[k]["rgb"], options.width, options.height), what);
      if (!reference[k].contains("pixel_values")) continue;
      const std::vector<uint8_t> bytes =
          read_file(fs::path(manifest["dir"].get<std::string>()) / reference[k]["pixel_values"].get<std::string>());
      ASSERT_EQ(bytes.size(), ours[k].pixels.size() * sizeof(float)) << what;
      EXPECT_EQ(std::memcmp(bytes.data(), ours[k].pixels.data(), bytes.size()), 0) << what << ": pixel_values differ";
      ++float_compared;
    }
  }
  EXPECT_GE(with_crops, 4);
  EXPECT_GE(float_compared, 5);
}

}  // namespace
}  // namespace medlab
