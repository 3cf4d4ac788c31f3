// Synthetic chest films for test sets (medlab make-test-set): a sketch of a PA chest radiograph drawn in
// code (body outline, lung fields, heart and mediastinum, diaphragm domes, ribs, clavicles, vessel markings),
// with the variations of the clinical scenarios drawn in, and reference reports written from what was drawn.
// These are test pictures, not anatomy and not patient data. Integer arithmetic only, so that a spec gives
// the same pixels on every machine and compiler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medlab {

// Sides as the patient's: the patient's left is the image's right on a PA film.
enum class Side : int8_t { None = 0, Right = -1, Left = 1 };

struct ChestFilmSpec {
  int size = 512;      // square, pixels
  uint64_t seed = 1;   // the vessel markings, small jitter and noise
  bool paediatric = false;
  int cardiothoracic_permille = 450;  // heart width / thoracic width, x1000
  bool retrocardiac_opacity = false;  // a density in the left lower zone behind the heart
  Side fracture_side = Side::None;    // a displaced fracture of one posterior rib
  int fracture_rib = 6;               // 3..9
  Side pneumothorax_side = Side::None;  // apical: a visceral pleural line with no markings beyond it
  Side skin_fold_side = Side::None;     // a line crossing the lung that runs on beyond the chest wall
  bool sternotomy_wires = false;
  bool pacemaker = false;    // left-sided, with its lead ending at the right ventricular apex
  bool clavicle_screws = false;  // a plate with screws on the right clavicle
};

// 12-bit values (0..4095, MONOCHROME2: denser is brighter), row-major, size x size.
struct ChestFilm {
  int size = 0;
  std::vector<uint16_t> pixels;
};

ChestFilm render_chest_film(const ChestFilmSpec& spec);

// The integer hash behind every random choice of the test set (SplitMix64's finaliser): the same on every
// machine, unlike the standard library's distributions.
uint64_t splitmix64(uint64_t x);

inline constexpr int kChestFilmMaxValue = 4095;
inline constexpr int kChestFilmWindowCenter = 1500, kChestFilmWindowWidth = 2600;  // shows lungs to bone

// One case of a test set: the film, its category and reference reports.
struct TestCase {
  std::string id;        // "rib-fracture-2"
  std::string category;  // one of test_set_categories()
  ChestFilmSpec spec;
  std::vector<std::string> references;  // 2 or 3 reports in radiology style
  // CheXpert observations the reports state as present, and ones they state as absent (for the tests).
  std::vector<std::string> positive_findings, negative_findings;
};

// "cardiac silhouette overlap", "rib fracture", "pneumothorax vs skin fold", "metal implants", "paediatric".
const std::vector<std::string>& test_set_categories();

// per_category cases of each category, in category order; the same arguments give the same cases.
std::vector<TestCase> make_test_cases(int per_category, uint64_t seed, int size);

}  // namespace medlab
