#include <gtest/gtest.h>

#include <memory>

#include "core/error.h"
#include "runtime/images.h"

namespace medlab {
namespace {

TEST(ImagePrompt, MarkersExpandAsGemma3ProcessorDoes) {
  size_t markers = 0;
  const std::string out = expand_image_markers("Describe<start_of_image>and<start_of_image>", 2, markers);
  EXPECT_EQ(markers, 2u);
  const std::string image = "\n\n<start_of_image><image_soft_token><image_soft_token><end_of_image>\n\n";
  EXPECT_EQ(out, "Describe" + image + "and" + image);
}

TEST(ImagePrompt, PlacesEachRunOfImageTokensInOrder) {
  const TokenId img = 99;
  const std::vector<TokenId> tokens{2, 5, img, img, 7, img, img, 8};
  const auto a = std::make_shared<const std::vector<float>>(4, 1.0f);
  const auto b = std::make_shared<const std::vector<float>>(4, 2.0f);
  const std::vector<ImageEmbeddings> placed = place_images(tokens, img, 2, {a, b});
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[0].begin, 2);
  EXPECT_EQ(placed[0].embeddings, a->data());
  EXPECT_EQ(placed[1].begin, 5);
  EXPECT_EQ(placed[1].embeddings, b->data());
}

TEST(ImagePrompt, MismatchedRunsAndImagesAreErrors) {
  const TokenId img = 99;
  const auto a = std::make_shared<const std::vector<float>>(4, 1.0f);
  EXPECT_THROW(place_images({2, img, img, img}, img, 2, {a}), Error);       // a run of the wrong length
  EXPECT_THROW(place_images({2, img, img, 3, img, img}, img, 2, {a}), Error);  // more runs than images
  EXPECT_THROW(place_images({2, 3}, img, 2, {a}), Error);                      // an image without a place
}

TEST(ImageFiles, NotAnImageIsAClearError) {
  const std::string path = std::string(MEDLAB_BINARY_DIR) + "/test-tmp-not-an-image.png";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("hello, I am text", f);
  std::fclose(f);
  try {
    read_prompt_image(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test-tmp-not-an-image.png"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace medlab
