// Synthetic chest films (see synthetic_chest.h). Shapes are placed in thousandths of an adult film's width
// and drawn with integer tests (ellipses, thick segments, triangles), so no libm function can move a pixel.
#include "imaging/synthetic_chest.h"

#include <algorithm>
#include <array>
#include <random>

#include "core/error.h"

namespace medlab {
namespace {


// Uniform in [-n, n]; std::uniform_int_distribution differs between standard libraries, this does not.
int jitter(std::mt19937_64& rng, int n) { return int(rng() % uint64_t(2 * n + 1)) - n; }

// Densities (stored values) before blur and noise.
constexpr int kAir = 180, kLung = 560, kSoftTissue = 1650, kAbdomen = 1800, kMediastinum = 1700, kHeart = 1750,
              kRib = 280, kRibCortex = 120, kClavicle = 320, kSpine = 150, kVessel = 150, kMetal = 3900;

class Canvas {
 public:
  Canvas(const ChestFilmSpec& spec) : n_(spec.size), scale_(spec.paediatric ? 760 : 1000), v_(size_t(n_) * n_, kAir) {}

  int n() const { return n_; }
  // A length, and a position about the film's centre, from thousandths of an adult film.
  int len(int permille) const { return int(int64_t(n_) * permille * scale_ / 1000000); }
  int pos(int permille) const { return n_ / 2 + int(int64_t(n_) * (permille - 500) * scale_ / 1000000); }
  int& at(int x, int y) { return v_[size_t(y) * n_ + x]; }
  std::vector<int>& values() { return v_; }

  // Calls f(x, y) for each pixel of the film inside the box [x0, x1] x [y0, y1].
  template <class F>
  void box(int x0, int y0, int x1, int y1, F f) {
    for (int y = std::max(0, y0); y <= std::min(n_ - 1, y1); ++y)
      for (int x = std::max(0, x0); x <= std::min(n_ - 1, x1); ++x) f(x, y);
  }

 private:
  int n_, scale_;
  std::vector<int> v_;
};

bool in_ellipse(int x, int y, int cx, int cy, int a, int b) {
  a = std::max(a, 1), b = std::max(b, 1);
  const int64_t dx = x - cx, dy = y - cy, a2 = int64_t(a) * a, b2 = int64_t(b) * b;
  return dx * dx * b2 + dy * dy * a2 <= a2 * b2;
}

template <class F>
void ellipse(Canvas& c, int cx, int cy, int a, int b, F f) {
  c.box(cx - a, cy - b, cx + a, cy + b, [&](int x, int y) {
    if (in_ellipse(x, y, cx, cy, a, b)) f(x, y);
  });
}

template <class F>
void ring(Canvas& c, int cx, int cy, int a, int b, int width, F f) {
  ellipse(c, cx, cy, a, b, [&](int x, int y) {
    if (!in_ellipse(x, y, cx, cy, a - width, b - width)) f(x, y);
  });
}

// Pixels within r of the segment (x0,y0)-(x1,y1).
template <class F>
void segment(Canvas& c, int x0, int y0, int x1, int y1, int r, F f) {
  const int64_t vx = x1 - x0, vy = y1 - y0, length2 = vx * vx + vy * vy, r2 = int64_t(r) * r;
  c.box(std::min(x0, x1) - r, std::min(y0, y1) - r, std::max(x0, x1) + r, std::max(y0, y1) + r, [&](int x, int y) {
    const int64_t wx = x - x0, wy = y - y0, t = wx * vx + wy * vy;
    bool inside;
    if (t <= 0) {
      inside = wx * wx + wy * wy <= r2;
    } else if (t >= length2) {
      const int64_t ex = x - x1, ey = y - y1;
      inside = ex * ex + ey * ey <= r2;
    } else {
      const int64_t cross = wx * vy - wy * vx;
      inside = cross * cross <= r2 * length2;
    }
    if (inside) f(x, y);
  });
}

template <class F>
void triangle(Canvas& c, std::array<int, 6> p, F f) {
  auto edge = [](int64_t ax, int64_t ay, int64_t bx, int64_t by, int64_t x, int64_t y) {
    return (bx - ax) * (y - ay) - (by - ay) * (x - ax);
  };
  const int x0 = std::min({p[0], p[2], p[4]}), x1 = std::max({p[0], p[2], p[4]});
  const int y0 = std::min({p[1], p[3], p[5]}), y1 = std::max({p[1], p[3], p[5]});
  c.box(x0, y0, x1, y1, [&](int x, int y) {
    const int64_t e0 = edge(p[0], p[1], p[2], p[3], x, y), e1 = edge(p[2], p[3], p[4], p[5], x, y),
                  e2 = edge(p[4], p[5], p[0], p[1], x, y);
    if ((e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0)) f(x, y);
  });
}

// x in thousandths, mirrored to the patient's side: Right is the image's left.
int side_x(Side side, int offset_from_midline) { return 500 + int(side) * offset_from_midline; }

struct Lung {
  int cx, cy, a, b;           // the lung field's ellipse, pixels
  int dome_x, dome_y, dome_w, dome_h;  // the diaphragm dome under it
  bool contains(int x, int y) const {
    const int64_t dx = x - dome_x;
    const int dome = dome_y + int(dx * dx * dome_h / (int64_t(dome_w) * dome_w));
    return y < dome && in_ellipse(x, y, cx, cy, a, b);
  }
  bool below_dome(int x, int y) const {
    const int64_t dx = x - dome_x;
    return y >= dome_y + int(dx * dx * dome_h / (int64_t(dome_w) * dome_w));
  }
};

}  // namespace

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

ChestFilm render_chest_film(const ChestFilmSpec& s) {
  if (s.size < 128 || s.size > 4096) fail("synthetic chest film: size ", s.size, " is outside 128..4096");
  if (s.fracture_rib < 3 || s.fracture_rib > 9) fail("synthetic chest film: fracture rib ", s.fracture_rib, " is outside 3..9");
  Canvas c(s);
  const int n = c.n(), mid = c.pos(500);
  std::mt19937_64 rng(splitmix64(s.seed));
  const bool child = s.paediatric;

  // Body: an ellipse for the trunk and shoulders, a neck, the abdomen under the domes.
  const int body_a = c.len(460 + jitter(rng, 10)), body_b = c.len(650);
  ellipse(c, mid, c.pos(640), body_a, body_b, [&](int x, int y) { c.at(x, y) = kSoftTissue; });
  c.box(c.pos(420), 0, c.pos(580), c.pos(200), [&](int x, int y) { c.at(x, y) = kSoftTissue; });
  auto in_body = [&](int x, int y) { return c.at(x, y) != kAir; };

  std::array<Lung, 2> lungs;  // Right, Left
  const int lung_half_height = child ? 240 : 290 + jitter(rng, 10);
  for (int k = 0; k < 2; ++k) {
    const Side side = k == 0 ? Side::Right : Side::Left;
    Lung& lung = lungs[k];
    lung.cx = c.pos(side_x(side, 190));
    lung.cy = c.pos(child ? 470 : 430 + 10 * k);
    lung.a = c.len(150 + jitter(rng, 6));
    lung.b = c.len(lung_half_height);
    lung.dome_x = c.pos(side_x(side, 200));
    lung.dome_y = c.pos((child ? 630 : 625) + 25 * k);  // the left dome sits lower
    lung.dome_w = c.len(190);
    lung.dome_h = c.len(90);
  }
  c.box(0, 0, n - 1, n - 1, [&](int x, int y) {
    if (in_body(x, y) && lungs[x < mid ? 0 : 1].below_dome(x, y)) c.at(x, y) = kAbdomen;
  });
  ellipse(c, c.pos(690), c.pos(735), c.len(45), c.len(28), [&](int x, int y) {  // gastric bubble
    if (in_body(x, y)) c.at(x, y) = kAir + 500;
  });

  // Lung fields; with a pneumothorax the lung has fallen away from the apex, leaving a space of air.
  std::vector<uint8_t> lung_mask(size_t(n) * n, 0);  // 1 right lung, 2 left, 3 pneumothorax space
  for (int k = 0; k < 2; ++k) {
    const Lung& lung = lungs[k];
    const Side side = k == 0 ? Side::Right : Side::Left;
    const bool collapsed = s.pneumothorax_side == side;
    const int shift = c.len(25), drop = c.len(50);
    const Lung inner{lung.cx - int(side) * shift, lung.cy + drop, lung.a - shift, lung.b - drop,
                     lung.dome_x, lung.dome_y, lung.dome_w, lung.dome_h};
    c.box(lung.cx - lung.a, lung.cy - lung.b, lung.cx + lung.a, lung.cy + lung.b, [&](int x, int y) {
      if (!lung.contains(x, y)) return;
      const bool space = collapsed && !inner.contains(x, y);
      lung_mask[size_t(y) * n + x] = space ? 3 : uint8_t(k + 1);
      c.at(x, y) = space ? kLung - 140 : kLung;
      // The visceral pleural line: a thin white edge on the lung's surface.
      if (collapsed && !space && !in_ellipse(x, y, inner.cx, inner.cy, inner.a - c.len(5) - 1, inner.b - c.len(5) - 1))
        c.at(x, y) += 220;
    });
  }

  // Vessel markings fan out from each hilum and taper; none reach into a pneumothorax space.
  for (int k = 0; k < 2; ++k) {
    const Lung& lung = lungs[k];
    const Side side = k == 0 ? Side::Right : Side::Left;
    const int hx = c.pos(side_x(side, 85)), hy = c.pos(child ? 490 : 475);
    for (int vessel = 0; vessel < 14; ++vessel) {
      int ex = lung.cx, ey = lung.cy;
      for (int attempt = 0; attempt < 40; ++attempt) {
        const int x = lung.cx + jitter(rng, lung.a), y = lung.cy + jitter(rng, lung.b);
        if (lung.contains(x, y)) {
          ex = x, ey = y;
          break;
        }
      }
      const int radii[3] = {c.len(5) + 1, c.len(3) + 1, c.len(2)};
      const int values[3] = {kVessel + 40, kVessel, kVessel - 50};
      for (int piece = 0; piece < 3; ++piece) {
        const int x0 = hx + (ex - hx) * piece / 3, y0 = hy + (ey - hy) * piece / 3;
        const int x1 = hx + (ex - hx) * (piece + 1) / 3, y1 = hy + (ey - hy) * (piece + 1) / 3;
        segment(c, x0, y0, x1, y1, radii[piece], [&](int x, int y) {
          const uint8_t m = lung_mask[size_t(y) * n + x];
          if (m == 1 || m == 2) c.at(x, y) = std::max(c.at(x, y), kLung + values[piece]);
        });
      }
    }
  }

  // Mediastinum, aortic knob, heart; in children the thymus widens the upper mediastinum like a sail.
  c.box(c.pos(440), c.pos(120), c.pos(560), c.pos(580), [&](int x, int y) { c.at(x, y) = kMediastinum; });
  ellipse(c, c.pos(565), c.pos(child ? 330 : 340), c.len(40), c.len(40), [&](int x, int y) { c.at(x, y) = kMediastinum; });
  if (child) {
    triangle(c, {c.pos(445), c.pos(260), c.pos(445), c.pos(500), c.pos(330), c.pos(470)},
             [&](int x, int y) { c.at(x, y) = kMediastinum; });
    triangle(c, {c.pos(555), c.pos(270), c.pos(555), c.pos(480), c.pos(630), c.pos(450)},
             [&](int x, int y) { c.at(x, y) = kMediastinum; });
  }
  const int thorax_width = lungs[1].cx + lungs[1].a - (lungs[0].cx - lungs[0].a);
  const int heart_a = int(int64_t(thorax_width) * s.cardiothoracic_permille / 2000);
  const int heart_b = c.len(child ? 120 : 100) + heart_a / 5;
  const int heart_cx = mid + heart_a * 3 / 10, heart_cy = c.pos(child ? 590 : 580);
  ellipse(c, heart_cx, heart_cy, heart_a, heart_b, [&](int x, int y) {
    if (!lungs[1].below_dome(x, y) || x < mid) c.at(x, y) = kHeart;
  });
  if (s.retrocardiac_opacity) {
    ellipse(c, c.pos(640), c.pos(615), c.len(75), c.len(55), [&](int x, int y) {
      if (!lungs[1].below_dome(x, y)) c.at(x, y) += 260;
    });
  }

  // Spine, with the gaps between vertebral bodies.
  c.box(mid - c.len(38), 0, mid + c.len(38), n - 1, [&](int x, int y) {
    if (!in_body(x, y)) return;
    const bool disc = (y % std::max(4, c.len(50))) < std::max(1, c.len(6));
    c.at(x, y) += disc ? kSpine - 120 : kSpine;
  });

  // Posterior ribs 2..10: bands that leave the spine, rise a little and curve down laterally.
  const int rib_half = std::max(2, c.len(9)), reach = c.len(385), unit = c.len(1000);
  for (int k = 0; k < 2; ++k) {
    const Side side = k == 0 ? Side::Right : Side::Left;
    for (int number = 2; number <= 10; ++number) {
      const int y0 = c.pos((child ? 190 : 150) + (child ? 52 : 55) * (number - 2)) + jitter(rng, 1);
      const bool broken = s.fracture_side == side && s.fracture_rib == number;
      const int break_at = c.len(250), step = std::max(2, c.len(11)), gap = std::max(1, c.len(3));
      for (int d = 0; d <= reach; ++d) {
        const int x = mid + int(side) * (c.len(40) + d);
        if (x < 0 || x >= n) continue;
        if (broken && d >= break_at - gap && d <= break_at + gap) continue;
        const int64_t dd = d;
        int yc = y0 - (child ? d / 8 : d / 4) + int(dd * dd * (child ? 80 : 147) / (100 * int64_t(unit)));
        if (broken && d > break_at) yc += step;
        for (int y = yc - rib_half; y <= yc + rib_half; ++y) {
          if (y < 0 || y >= n || !in_body(x, y)) continue;
          const bool cortex = y == yc - rib_half || y == yc + rib_half;
          c.at(x, y) += kRib + (cortex ? kRibCortex : 0);
        }
      }
    }
  }
  const int clavicle_r = c.len(13);
  for (Side side : {Side::Right, Side::Left})
    segment(c, c.pos(side_x(side, 60)), c.pos(child ? 230 : 170), c.pos(side_x(side, 300)), c.pos(child ? 190 : 110),
            clavicle_r, [&](int x, int y) {
              if (in_body(x, y)) c.at(x, y) += kClavicle;
            });

  // A skin fold: a soft edge from the axilla down across the lateral lung and on past the rib cage.
  if (s.skin_fold_side != Side::None) {
    const int x0 = c.pos(side_x(s.skin_fold_side, 250)), y0 = c.pos(230);
    const int x1 = c.pos(side_x(s.skin_fold_side, 390)), y1 = c.pos(880);
    segment(c, x0, y0, x1, y1, c.len(7) + 1, [&](int x, int y) { c.at(x, y) += 90; });
    segment(c, x0, y0, x1, y1, c.len(1) + 1, [&](int x, int y) { c.at(x, y) += 70; });
  }

  // Soften the edges a little: a 3x3 box blur, rounded.
  {
    std::vector<int>& v = c.values();
    const std::vector<int> sharp = v;
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        int sum = 0;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx)
            sum += sharp[size_t(std::clamp(y + dy, 0, n - 1)) * n + std::clamp(x + dx, 0, n - 1)];
        v[size_t(y) * n + x] = (sum + 4) / 9;
      }
  }

  // Metal stays sharp: it is drawn after the blur.
  auto metal = [&](int value) { return [&c, value](int x, int y) { c.at(x, y) = std::max(c.at(x, y), value); }; };
  if (s.sternotomy_wires) {
    for (int w = 0; w < 6; ++w)
      ring(c, mid, c.pos(300 + 52 * w), c.len(14), c.len(9), std::max(2, c.len(4)), metal(kMetal));
  }
  if (s.pacemaker) {
    ellipse(c, c.pos(730), c.pos(200), c.len(38), c.len(28), metal(kMetal - 200));
    c.box(c.pos(715), c.pos(160), c.pos(745), c.pos(172), metal(kMetal - 500));
    const int path[][2] = {{710, 172}, {610, 210}, {540, 280}, {520, 420}, {535, 520}, {615, 640}};
    for (int p = 0; p + 1 < 6; ++p)
      segment(c, c.pos(path[p][0]), c.pos(path[p][1]), c.pos(path[p + 1][0]), c.pos(path[p + 1][1]),
              std::max(1, c.len(3)), metal(kMetal - 100));
  }
  if (s.clavicle_screws) {
    // A plate along the middle of the right clavicle and three screws across it.
    segment(c, c.pos(380), c.pos(155), c.pos(260), c.pos(125), c.len(8), metal(kMetal - 300));
    for (int screw = 0; screw < 3; ++screw) {
      const int px = 380 - 60 * screw, py = 155 - 15 * screw;
      segment(c, c.pos(px - 6), c.pos(py + 24), c.pos(px + 6), c.pos(py - 24), std::max(1, c.len(4)), metal(kMetal + 100));
    }
  }

  // Quantum noise, from a hash of the seed and the pixel's index.
  ChestFilm film{n, std::vector<uint16_t>(size_t(n) * n)};
  const uint64_t noise_key = splitmix64(s.seed ^ 0x6e6f697365ull);
  for (size_t i = 0; i < film.pixels.size(); ++i) {
    const int noise = int(splitmix64(noise_key + i) % 41) - 20;
    film.pixels[i] = uint16_t(std::clamp(c.values()[i] + noise, 0, kChestFilmMaxValue));
  }
  return film;
}

// ---- Test cases and their reports ----

const std::vector<std::string>& test_set_categories() {
  static const std::vector<std::string> categories = {"cardiac silhouette overlap", "rib fracture",
                                                      "pneumothorax vs skin fold", "metal implants", "paediatric"};
  return categories;
}

namespace {

std::string side_name(Side side) { return side == Side::Left ? "left" : "right"; }
std::string capitalised(std::string text) {
  if (!text.empty() && text[0] >= 'a' && text[0] <= 'z') text[0] = char(text[0] - 'a' + 'A');
  return text;
}

struct Variant {
  std::vector<std::string> reports;  // 3, of which 2 or 3 are used
  std::vector<std::string> positives, negatives;
};

Variant describe(const std::string& category, int index, ChestFilmSpec& spec, std::mt19937_64& rng) {
  const Side side = rng() % 2 ? Side::Left : Side::Right;
  const std::string S = capitalised(side_name(side)), s = side_name(side);
  if (category == "cardiac silhouette overlap") {
    if (index % 2 == 0) {
      spec.cardiothoracic_permille = 600 + jitter(rng, 30);
      const std::string ratio = "0." + std::to_string((spec.cardiothoracic_permille + 5) / 10);
      return {{"Moderate cardiomegaly. No pleural effusion or pneumothorax.",
               "The cardiac silhouette is enlarged. Lungs are clear. No pleural effusion.",
               "Enlarged heart size, cardiothoracic ratio about " + ratio + ". No focal consolidation or pneumothorax."},
              {"Cardiomegaly"},
              {"Pneumothorax", "Pleural Effusion"}};
    }
    spec.retrocardiac_opacity = true;
    return {{"Retrocardiac opacity in the left lower lobe, possibly atelectasis. Heart size is normal.",
             "Left retrocardiac opacity. Normal heart size. No pneumothorax.",
             "Opacity behind the heart in the left lower zone; consolidation cannot be excluded. The cardiac "
             "silhouette is normal."},
            {"Lung Opacity"},
            {"Cardiomegaly", "Pneumothorax"}};
  }
  if (category == "rib fracture") {
    static const char* ordinals[] = {"", "", "", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"};
    spec.fracture_side = side;
    spec.fracture_rib = 4 + int(rng() % 5);
    const std::string rib = ordinals[spec.fracture_rib], number = std::to_string(spec.fracture_rib) + "th";
    return {{"Acute fracture of the " + s + " " + rib + " posterior rib with mild displacement. No pneumothorax.",
             "Displaced " + s + " posterior " + number + " rib fracture. Lungs are clear. No pleural effusion.",
             "Fracture of the " + rib + " " + s + " rib laterally, with a step in its cortex. No pneumothorax or "
             "pleural effusion."},
            {"Fracture"},
            {"Pneumothorax", "Pleural Effusion"}};
  }
  if (category == "pneumothorax vs skin fold") {
    if (index % 2 == 0) {
      spec.pneumothorax_side = side;
      return {{S + " apical pneumothorax. No mediastinal shift.",
               "Small " + s + " apical pneumothorax, with a visceral pleural line and no lung markings beyond it.",
               "There is a small " + s + " pneumothorax at the apex. Heart size is normal."},
              {"Pneumothorax"},
              {"Cardiomegaly", "Pleural Effusion"}};
    }
    spec.skin_fold_side = side;
    return {{"Skin fold projecting over the " + s + " hemithorax; no pneumothorax.",
             "A line over the " + s + " lateral chest runs beyond the chest wall, in keeping with a skin fold. "
             "No pneumothorax.",
             "No pneumothorax. The line over the " + s + " lung continues outside the rib cage and is a skin fold. "
             "Lungs are clear."},
            {"No Finding"},
            {"Pneumothorax"}};
  }
  if (category == "metal implants") {
    if (index % 3 == 0) {
      spec.sternotomy_wires = spec.pacemaker = true;
      return {{"Median sternotomy wires and a left-sided pacemaker with lead in the right ventricle. Lungs are clear.",
               "Intact sternotomy wires. Left chest wall pacemaker, its lead ending in the right ventricle. "
               "No pneumothorax.",
               "Sternotomy wires. A left pectoral pacemaker with a single lead in the right ventricle. No acute "
               "cardiopulmonary process."},
              {"Support Devices"},
              {"Pneumothorax", "Lung Opacity"}};
    }
    if (index % 3 == 1) {
      spec.clavicle_screws = true;
      return {{"Orthopaedic hardware: plate and screw fixation of the right clavicle. Lungs are clear.",
               "Right clavicular fixation hardware, a plate with three screws. No pneumothorax.",
               "Postoperative hardware in the right clavicle. No pleural effusion or pneumothorax."},
              {"Support Devices"},
              {"Pneumothorax", "Pleural Effusion"}};
    }
    spec.pacemaker = true;
    return {{"Left-sided pacemaker with lead in the right ventricle. Lungs are clear.",
             "A left chest wall pacemaker; the lead tip projects over the right ventricle. No pneumothorax.",
             "Pacemaker in the left chest with a right ventricular lead. No acute cardiopulmonary process."},
            {"Support Devices"},
            {"Pneumothorax", "Cardiomegaly"}};
  }
  spec.paediatric = true;
  spec.cardiothoracic_permille = 540 + jitter(rng, 20);
  return {{"Normal chest radiograph for age. Normal thymic shadow. Heart size is normal. Lungs are clear.",
           "The thymus widens the upper mediastinum, a normal finding at this age. Heart size is normal. No focal "
           "consolidation, effusion or pneumothorax.",
           "No acute cardiopulmonary process. Prominent normal thymus in a child."},
          {"No Finding"},
          {"Cardiomegaly", "Pneumothorax", "Consolidation"}};
}

}  // namespace

std::vector<TestCase> make_test_cases(int per_category, uint64_t seed, int size) {
  if (per_category < 1 || per_category > 1000) fail("per-category count ", per_category, " is outside 1..1000");
  static const char* slugs[] = {"cardiac", "rib-fracture", "pneumothorax-skin-fold", "metal-implants", "paediatric"};
  std::vector<TestCase> cases;
  const auto& categories = test_set_categories();
  for (size_t k = 0; k < categories.size(); ++k)
    for (int i = 0; i < per_category; ++i) {
      std::mt19937_64 rng(splitmix64(splitmix64(seed) ^ (uint64_t(k) << 32) ^ uint64_t(i)));
      TestCase t;
      t.id = std::string(slugs[k]) + "-" + std::to_string(i + 1);
      t.category = categories[k];
      t.spec.size = size;
      t.spec.seed = rng();
      t.spec.cardiothoracic_permille = 430 + jitter(rng, 30);
      Variant v = describe(t.category, i, t.spec, rng);
      const size_t first = rng() % 3, count = 2 + rng() % 2;
      for (size_t r = 0; r < count; ++r) t.references.push_back(v.reports[(first + r) % 3]);
      t.positive_findings = std::move(v.positives);
      t.negative_findings = std::move(v.negatives);
      cases.push_back(std::move(t));
    }
  return cases;
}

}  // namespace medlab
