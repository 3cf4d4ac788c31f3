// Preprocessing: the resize filter on hand-checked cases, pan-and-scan geometry, normalisation, letterbox.
// Bit-exact agreement with Pillow and transformers on many images is tests/parity/pillow_parity_test.cpp's job.
#include "imaging/preprocess.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace medlab {
namespace {

Image solid(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  Image image(width, height);
  for (size_t i = 0; i < image.rgb.size(); i += 3) {
    image.rgb[i] = r;
    image.rgb[i + 1] = g;
    image.rgb[i + 2] = b;
  }
  return image;
}

// A one-row grey image.
Image grey_row(const std::vector<uint8_t>& values) {
  Image image(int(values.size()), 1);
  for (size_t i = 0; i < values.size(); ++i) image.rgb[i * 3] = image.rgb[i * 3 + 1] = image.rgb[i * 3 + 2] = values[i];
  return image;
}

std::vector<uint8_t> reds(const Image& image) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < image.rgb.size(); i += 3) out.push_back(image.rgb[i]);
  return out;
}

TEST(Resize, HalvingUsesATriangleTwiceAsWide) {
  // Output 0 is centred on source position 1.0; the triangle, widened to support 2, weighs sources 0, 1, 2
  // by 0.75, 0.75, 0.25 (normalised by 1.75): 100 * 0.75/1.75 + 200 * 0.25/1.75 = 71.4 -> 71. Output 1
  // likewise gives 209.3 -> 209. Pillow gives [71, 209] too.
  EXPECT_EQ(reds(resize_bilinear(grey_row({0, 100, 200, 255}), 2, 1)), (std::vector<uint8_t>{71, 209}));
  // Upscaling interpolates between neighbours (Pillow: 0 36 93 150 204 235 255).
  EXPECT_EQ(reds(resize_bilinear(grey_row({0, 100, 200, 255}), 7, 1)),
            (std::vector<uint8_t>{0, 36, 93, 150, 204, 235, 255}));
}

TEST(Resize, KeepsSolidColoursAndSameSizeImages) {
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1, 1}, {5, 3}, {896, 896}, {7, 1000}}) {
    EXPECT_EQ(resize_bilinear(solid(13, 9, 10, 128, 250), w, h).rgb, solid(w, h, 10, 128, 250).rgb) << w << "x" << h;
  }
  Image image = grey_row({1, 2, 3});
  EXPECT_EQ(resize_bilinear(image, 3, 1).rgb, image.rgb);
}

TEST(Resize, RefusesEmptySizes) {
  EXPECT_THROW(resize_bilinear(solid(2, 2, 0, 0, 0), 0, 5), Error);
  EXPECT_THROW(resize_bilinear(Image{}, 5, 5), Error);
}

TEST(Crop, CopiesTheBoxAndRefusesOutside) {
  const Image row = grey_row({0, 1, 2, 3, 4});
  EXPECT_EQ(reds(crop(row, {1, 0, 3, 1})), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_THROW(crop(row, {3, 0, 3, 1}), Error);
  EXPECT_THROW(crop(row, {0, 0, 0, 1}), Error);
}

TEST(PanAndScan, CropsFollowTheReferenceProcessor) {
  const PanAndScanOptions options;  // 256, 4, 1.2
  // Ratio 3: three 400 x 400 crops side by side.
  EXPECT_EQ(pan_and_scan_crops(1200, 400, options),
            (std::vector<CropBox>{{0, 0, 400, 400}, {400, 0, 400, 400}, {800, 0, 400, 400}}));
  // Portrait, ratio 3.3: three rows of ceil(1000 / 3) = 334, the last one cut to 332.
  EXPECT_EQ(pan_and_scan_crops(300, 1000, options),
            (std::vector<CropBox>{{0, 0, 300, 334}, {0, 334, 300, 334}, {0, 668, 300, 332}}));
  // Ratio 1.33 rounds to one crop, raised to the minimum of two.
  EXPECT_EQ(pan_and_scan_crops(4000, 3000, options), (std::vector<CropBox>{{0, 0, 2000, 3000}, {2000, 0, 2000, 3000}}));
  // Ratio 5 asks for five, at most four.
  EXPECT_EQ(pan_and_scan_crops(5000, 1000, options).size(), 4u);
  EXPECT_TRUE(pan_and_scan_crops(896, 896, options).empty());    // square
  EXPECT_TRUE(pan_and_scan_crops(1190, 1000, options).empty());  // ratio 1.19 < 1.2
  EXPECT_TRUE(pan_and_scan_crops(2000, 100, options).empty());   // crops 100 high < 256
}

TEST(PanAndScan, PromptWordingIsTheReferenceProcessors) {
  EXPECT_EQ(pan_and_scan_prompt("<start_of_image>", 2),
            "Here is the original image <start_of_image> and here are some crops to help you see better "
            "<start_of_image> <start_of_image>");
  EXPECT_EQ(pan_and_scan_prompt("<start_of_image>", 0), "<start_of_image>");
}

TEST(Normalize, RescalesNormalisesAndPutsChannelsFirst) {
  Image image(2, 1);
  image.rgb = {0, 128, 255, 10, 20, 30};
  const std::vector<float> x = normalize_chw(image, PreprocessOptions{});
  ASSERT_EQ(x.size(), 6u);
  const float v128 = (float(128 * (1.0 / 255.0)) - 0.5f) / 0.5f;
  EXPECT_EQ(x[0], -1.0f);  // R plane: pixel 0, pixel 1
  EXPECT_EQ(x[1], (float(10 * (1.0 / 255.0)) - 0.5f) / 0.5f);
  EXPECT_EQ(x[2], v128);   // G plane
  EXPECT_EQ(x[4], 1.0f);   // B plane
}

TEST(Preprocess, StretchesToTheConfiguredSize) {
  PreprocessOptions options;
  options.width = 64;
  options.height = 32;
  const std::vector<ModelInput> inputs = preprocess_image(solid(300, 100, 255, 0, 0), options);
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].source, (CropBox{0, 0, 300, 100}));
  EXPECT_EQ(inputs[0].resized.rgb, solid(64, 32, 255, 0, 0).rgb);
  ASSERT_EQ(inputs[0].pixels.size(), 3u * 64 * 32);
  EXPECT_EQ(inputs[0].pixels.front(), 1.0f);
  EXPECT_EQ(inputs[0].pixels.back(), -1.0f);
}

TEST(Preprocess, LetterboxKeepsTheAspectRatioOnBlack) {
  PreprocessOptions options;
  options.fit = Fit::Letterbox;
  const Image out = preprocess_image(solid(200, 100, 255, 0, 0), options)[0].resized;
  ASSERT_EQ(out.width, 896);
  ASSERT_EQ(out.height, 896);
  // Scaled to 896 x 448, centred: rows 224..671 red, the rest black.
  for (int y : {0, 223, 672, 895}) EXPECT_EQ(out.pixel(448, y)[0], 0) << y;
  for (int y : {224, 448, 671}) EXPECT_EQ(out.pixel(448, y)[0], 255) << y;
  EXPECT_EQ(out.pixel(0, 448)[0], 255);
  EXPECT_EQ(out.pixel(895, 448)[0], 255);

  options.pad_rgb = {255, 255, 255};
  EXPECT_EQ(preprocess_image(solid(200, 100, 255, 0, 0), options)[0].resized.pixel(448, 0)[1], 255);
}

TEST(Preprocess, PanAndScanAddsTheCropsAfterTheWholeImage) {
  PreprocessOptions options;
  options.width = options.height = 32;
  options.pan_and_scan = true;
  Image image = solid(1200, 400, 0, 0, 0);
  for (int y = 0; y < 400; ++y) image.pixel(1100, y)[0] = 255;  // a red line in the third crop only
  const std::vector<ModelInput> inputs = preprocess_image(image, options);
  ASSERT_EQ(inputs.size(), 4u);
  EXPECT_EQ(inputs[0].source, (CropBox{0, 0, 1200, 400}));
  EXPECT_EQ(inputs[3].source, (CropBox{800, 0, 400, 400}));
  EXPECT_EQ(inputs[1].resized.rgb, solid(32, 32, 0, 0, 0).rgb);
  EXPECT_NE(inputs[3].resized.rgb, solid(32, 32, 0, 0, 0).rgb);

  options.pan_and_scan = false;
  EXPECT_EQ(preprocess_image(image, options).size(), 1u);
}

}  // namespace
}  // namespace medlab
