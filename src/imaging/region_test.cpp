#include <gtest/gtest.h>

#include "core/error.h"
#include "imaging/region.h"

namespace medlab {
namespace {

bool red(const Image& image, int x, int y) {
  const uint8_t* p = image.pixel(x, y);
  return p[0] == 255 && p[1] == 0 && p[2] == 0;
}

int red_count(const Image& image) {
  int n = 0;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) n += red(image, x, y);
  return n;
}

TEST(Region, OutlinesInsideTheRectangleTwoPixelsThickOnSmallImages) {
  Image image(40, 30);
  outline_region(image, {5, 6, 10, 8});
  // A 10 x 8 frame of width 2: 80 - 6 x 4 pixels.
  EXPECT_EQ(red_count(image), 80 - 24);
  EXPECT_TRUE(red(image, 5, 6));
  EXPECT_TRUE(red(image, 6, 7));
  EXPECT_FALSE(red(image, 7, 8));   // inside the frame: untouched
  EXPECT_TRUE(red(image, 14, 13));  // bottom-right corner
  EXPECT_FALSE(red(image, 15, 13));
  EXPECT_FALSE(red(image, 4, 6));
}

TEST(Region, ThicknessGrowsWithTheLongerSide) {
  Image image(1000, 200);  // 0.4% of 1000: 4 pixels
  outline_region(image, {100, 50, 50, 50});
  EXPECT_TRUE(red(image, 103, 75));
  EXPECT_FALSE(red(image, 104, 75));
  EXPECT_TRUE(red(image, 125, 53));
  EXPECT_FALSE(red(image, 125, 54));
}

TEST(Region, ClipsToTheImage) {
  Image image(20, 20);
  outline_region(image, {-5, -5, 15, 100});  // left and top edges fall outside
  EXPECT_TRUE(red(image, 8, 10));            // right edge: x = 8, 9
  EXPECT_TRUE(red(image, 9, 0));
  EXPECT_FALSE(red(image, 0, 0));
  EXPECT_FALSE(red(image, 10, 10));
}

TEST(Region, RefusesEmptyAndOutsideRectangles) {
  Image image(20, 10);
  EXPECT_THROW(outline_region(image, {0, 0, 0, 5}), Error);
  EXPECT_THROW(outline_region(image, {0, 0, 5, -1}), Error);
  EXPECT_THROW(outline_region(image, {20, 0, 5, 5}), Error);
  EXPECT_THROW(outline_region(image, {-10, 0, 10, 5}), Error);
  EXPECT_EQ(red_count(image), 0);
}

}  // namespace
}  // namespace medlab
