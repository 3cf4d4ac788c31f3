#include "imaging/synthetic_chest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>

#include "core/sha256.h"
#include "eval/findings.h"
#include "imaging/dicom_file.h"
#include "imaging/dicom_test_files.h"
#include "imaging/synthetic_chest_dicom.h"

namespace medlab {
namespace {

std::string pixel_sha(const ChestFilm& film) {
  std::vector<uint8_t> bytes;
  for (uint16_t v : film.pixels) bytes.insert(bytes.end(), {uint8_t(v), uint8_t(v >> 8)});
  return Sha256().update(bytes.data(), bytes.size()).hex_digest();
}

int at(const ChestFilm& f, int x, int y) { return f.pixels[size_t(y) * f.size + x]; }

// The cardiothoracic ratio as a reader measures it: the widest bright run through the midline (the heart)
// over the widest distance between the lungs' outer edges, dark pixels inside the body wall.
double measured_ctr(const ChestFilm& f) {
  const int n = f.size, mid = n / 2, threshold = 1350;
  int heart = 0, thorax = 0;
  for (int y = n * 45 / 100; y < n * 61 / 100; ++y) {  // above the domes
    int left = mid, right = mid;
    while (left > 0 && at(f, left - 1, y) >= threshold) --left;
    while (right < n - 1 && at(f, right + 1, y) >= threshold) ++right;
    heart = std::max(heart, right - left + 1);
  }
  for (int y = n * 20 / 100; y < n * 68 / 100; ++y) {
    int x0 = 0, x1 = n - 1;
    while (x0 < n && at(f, x0, y) < threshold) ++x0;  // air outside the body
    while (x0 < n && at(f, x0, y) >= threshold) ++x0;  // the chest wall
    while (x1 >= 0 && at(f, x1, y) < threshold) --x1;
    while (x1 >= 0 && at(f, x1, y) >= threshold) --x1;
    if (x0 < x1) thorax = std::max(thorax, x1 - x0 + 1);
  }
  return double(heart) / thorax;
}

struct DiffBox {
  int count = 0, x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;
};

DiffBox differences(const ChestFilm& a, const ChestFilm& b) {
  DiffBox box;
  for (int y = 0; y < a.size; ++y)
    for (int x = 0; x < a.size; ++x)
      if (at(a, x, y) != at(b, x, y)) {
        ++box.count;
        box.x0 = std::min(box.x0, x), box.x1 = std::max(box.x1, x);
        box.y0 = std::min(box.y0, y), box.y1 = std::max(box.y1, y);
      }
  return box;
}

ChestFilmSpec base(int size = 256) {
  ChestFilmSpec s;
  s.size = size;
  s.seed = 7;
  return s;
}

TEST(SyntheticChest, PixelsAreFixed) {
  // Computed once from this renderer; a change here changes every shipped test set.
  EXPECT_EQ(pixel_sha(render_chest_film(base())), "f9eb7fa4410bd9f6975d9eb02ddbbbc157dc8a907cc9373741a1c758a21dece6");
  const ChestFilm a = render_chest_film(base(512)), b = render_chest_film(base(512));
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_LE(*std::max_element(a.pixels.begin(), a.pixels.end()), kChestFilmMaxValue);
}

TEST(SyntheticChest, EnlargedHeartHasALargerRatio) {
  ChestFilmSpec normal = base(512), enlarged = base(512);
  normal.cardiothoracic_permille = 450;
  enlarged.cardiothoracic_permille = 620;
  const double r_normal = measured_ctr(render_chest_film(normal)), r_enlarged = measured_ctr(render_chest_film(enlarged));
  EXPECT_NEAR(r_normal, 0.45, 0.06);
  EXPECT_NEAR(r_enlarged, 0.62, 0.06);
  EXPECT_GT(r_enlarged, r_normal + 0.1);
}

TEST(SyntheticChest, FractureChangesOnlyItsRib) {
  ChestFilmSpec normal = base(512), broken = base(512);
  broken.fracture_side = Side::Left;
  broken.fracture_rib = 6;
  const DiffBox d = differences(render_chest_film(normal), render_chest_film(broken));
  EXPECT_GT(d.count, 50);
  EXPECT_GT(d.x0, 512 / 2);         // the patient's left is the image's right
  EXPECT_LT(d.y1 - d.y0, 512 / 8);  // one rib's band, not the film
  EXPECT_LT(d.count, 512 * 512 / 100);
}

TEST(SyntheticChest, PneumothoraxStaysInItsApexAndASkinFoldRunsPastTheLung) {
  const ChestFilm normal = render_chest_film(base(512));
  ChestFilmSpec ptx = base(512), fold = base(512);
  ptx.pneumothorax_side = Side::Right;
  fold.skin_fold_side = Side::Right;
  const DiffBox p = differences(normal, render_chest_film(ptx));
  EXPECT_GT(p.count, 500);
  EXPECT_LT(p.x1, 512 / 2);
  const DiffBox f = differences(normal, render_chest_film(fold));
  EXPECT_LT(f.x1, 512 / 2);
  EXPECT_GT(f.y1, 512 * 80 / 100);  // below the lung bases, outside the rib cage
}

TEST(SyntheticChest, MetalIsBrightAndChildrenAreSmaller) {
  auto brightest = [](const ChestFilm& f) { return *std::max_element(f.pixels.begin(), f.pixels.end()); };
  ChestFilmSpec implants = base(), child = base();
  implants.sternotomy_wires = implants.pacemaker = true;
  EXPECT_LT(brightest(render_chest_film(base())), 3000);
  EXPECT_GT(brightest(render_chest_film(implants)), 3700);
  child.paediatric = true;
  auto body_width = [](const ChestFilm& f) {
    int count = 0;
    for (int x = 0; x < f.size; ++x) count += at(f, x, f.size * 3 / 10) > 400;
    return count;
  };
  EXPECT_LT(body_width(render_chest_film(child)), body_width(render_chest_film(base())) * 85 / 100);
}

TEST(SyntheticChest, CasesCoverEveryCategoryAndTheLabellerReadsTheirReports) {
  const std::vector<TestCase> cases = make_test_cases(4, 1, 256);
  ASSERT_EQ(cases.size(), 20u);
  std::set<std::string> ids, categories;
  for (const TestCase& c : cases) {
    ids.insert(c.id);
    categories.insert(c.category);
    ASSERT_GE(c.references.size(), 2u) << c.id;
    ASSERT_LE(c.references.size(), 3u) << c.id;
    for (const std::string& report : c.references) {
      const FindingLabels labels = label_report(report);
      auto label_of = [&](const std::string& name) {
        for (size_t f = 0; f < kFindingCount; ++f)
          if (finding_name(Finding(f)) == name) return labels.labels[f].mention;
        ADD_FAILURE() << "no finding named " << name;
        return Mention::Absent;
      };
      for (const std::string& name : c.positive_findings)
        EXPECT_EQ(label_of(name), Mention::Positive) << c.id << ": " << name << " in \"" << report << "\"";
      for (const std::string& name : c.negative_findings) {
        const Mention m = label_of(name);
        EXPECT_TRUE(m == Mention::Absent || m == Mention::Negative) << c.id << ": " << name << " in \"" << report << "\"";
      }
    }
  }
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(categories.size(), 5u);
  EXPECT_EQ(make_test_cases(4, 1, 256)[7].references, cases[7].references);
  EXPECT_NE(make_test_cases(4, 2, 256)[0].spec.seed, cases[0].spec.seed);
}

TEST(SyntheticChest, DicomKeepsThePixelsAndIsTheSameBytesTwice) {
  const dicom::testing::TempFolder dir("synthetic_chest");
  const TestCase c = make_test_cases(1, 3, 256)[3];
  const ChestFilm film = render_chest_film(c.spec);
  const std::string a = dir.path() + "/a.dcm", b = dir.path() + "/b.dcm";
  write_synthetic_chest_dicom(a, film, c, 3, 4);
  write_synthetic_chest_dicom(b, film, c, 3, 4);
  auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(a), bytes(b));
  EXPECT_EQ(bytes(a).find("Secret"), std::string::npos);

  const dicom::DicomImage image = dicom::read_dicom(a);
  EXPECT_EQ(image.header.modality, "DX");
  EXPECT_EQ(image.header.photometric, "MONOCHROME2");
  EXPECT_EQ(image.header.bits_stored, 12);
  ASSERT_EQ(image.header.rows, 256u);
  ASSERT_EQ(image.header.frame_transforms(0).windows.size(), 1u);
  EXPECT_EQ(image.header.frame_transforms(0).windows[0].center, kChestFilmWindowCenter);
  for (size_t i = 0; i < film.pixels.size(); ++i) ASSERT_EQ(image.stored(0, i), film.pixels[i]) << i;
  EXPECT_EQ(synthetic_uid(3, 4, 3), synthetic_uid(3, 4, 3));
  EXPECT_NE(synthetic_uid(3, 4, 3), synthetic_uid(3, 5, 3));
  EXPECT_LE(synthetic_uid(3, 4, 3).size(), 64u);
}

}  // namespace
}  // namespace medlab
