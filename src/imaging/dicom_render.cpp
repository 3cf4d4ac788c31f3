// The pixel pipeline. Every greyscale mode is a function of the stored value, so a frame is rendered
// through a table over its stored range (one evaluation per distinct value) when that range is small.
#include "imaging/dicom_render.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

#include "core/error.h"

namespace medlab::dicom {
namespace {

// Centre/width per Radiopaedia's common values; bone uses the wide 400/1800 (not the 300/1500 variant).
constexpr Preset kPresets[] = {
    {"lung", -600, 1500}, {"mediastinum", 50, 350}, {"bone", 400, 1800},
    {"brain", 40, 80},    {"abdomen", 60, 400},     {"soft-tissue", 40, 400},
};

// MedGemma 1.5 CT channels (notebook): R wide, G soft tissue, B brain, in HU.
constexpr float kCtRgb[3][2] = {{-1024, 1024}, {-135, 215}, {0, 80}};

bool is_grey(const DicomHeader& h) { return h.photometric == "MONOCHROME1" || h.photometric == "MONOCHROME2"; }

uint8_t to_byte(double fraction) { return uint8_t(std::floor(std::clamp(fraction, 0.0, 1.0) * 255.0 + 0.5)); }

double lut_lookup(const Lut& lut, double x) {
  const int64_t index = std::clamp<int64_t>(int64_t(std::floor(x)) - lut.first_mapped, 0, int64_t(lut.data.size()) - 1);
  return lut.data[size_t(index)];
}

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Stored value -> modality value (C.11.1).
struct Modality {
  const FrameTransforms& t;
  double operator()(int64_t v) const {
    if (t.modality_lut) return lut_lookup(*t.modality_lut, v);
    if (t.rescale) return v * t.rescale->slope + t.rescale->intercept;
    return v;
  }
};

// Applies f(stored) -> R to every value of a frame, through a table when the stored range allows.
template <class R, class F>
std::vector<R> map_values(const std::vector<int64_t>& stored, F f) {
  std::vector<R> out(stored.size());
  if (stored.empty()) return out;
  const auto [lo, hi] = std::minmax_element(stored.begin(), stored.end());
  const int64_t span = *hi - *lo + 1;
  if (span <= (int64_t(1) << 20) && size_t(span) <= stored.size() * 2) {
    std::vector<R> table(static_cast<size_t>(span));
    for (int64_t i = 0; i < span; ++i) table[size_t(i)] = f(*lo + i);
    for (size_t i = 0; i < stored.size(); ++i) out[i] = table[size_t(stored[i] - *lo)];
  } else {
    for (size_t i = 0; i < stored.size(); ++i) out[i] = f(stored[i]);
  }
  return out;
}

std::pair<double, double> modality_range(const std::vector<int64_t>& stored, const Modality& modality) {
  const auto values = map_values<double>(stored, modality);
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  return {*lo, *hi};
}

std::string window_text(double c, double w, VoiFunction f) {
  return "C" + number(c) + " W" + number(w) + " " + voi_function_name(f);
}

void check_window(const DicomHeader& h, double width, VoiFunction f) {
  if (f == VoiFunction::linear ? width < 1 : width <= 0) {
    fail(h.file_name, ": (0028,1051) Window Width ", width, f == VoiFunction::linear ? " is below 1 (LINEAR)" : " is not positive");
  }
}

Rendered render_grey(const DicomImage& image, const WindowSpec& spec, uint32_t frame) {
  const DicomHeader& h = image.header;
  const FrameTransforms& t = h.frame_transforms(frame);
  const std::vector<int64_t> stored = image.frame_values(frame);
  const Modality modality{t};
  const bool invert = h.photometric == "MONOCHROME1";
  Rendered out{h.columns, h.rows, 1, {}, {}};

  if (spec.mode == WindowMode::ct_rgb) {
    const auto rgb = map_values<std::array<uint8_t, 3>>(stored, [&](int64_t v) {
      const double hu = modality(v);
      std::array<uint8_t, 3> px;
      for (int c = 0; c < 3; ++c) {
        // The notebook's float32 arithmetic and numpy's round-half-to-even, for identical bytes.
        const float lo = kCtRgb[c][0], hi = kCtRgb[c][1];
        const float clipped = float(std::clamp(hu, double(lo), double(hi)));
        px[c] = uint8_t(std::nearbyint((clipped - lo) / (hi - lo) * 255.0f));
      }
      return px;
    });
    out.channels = 3;
    out.pixels.resize(rgb.size() * 3);
    std::memcpy(out.pixels.data(), rgb.data(), out.pixels.size());
    out.description = "ct-rgb: R -1024..1024, G -135..215, B 0..80 HU";
    return out;
  }

  std::function<uint8_t(double)> voi;
  const auto window = [&](double c, double w, VoiFunction f) {
    check_window(h, w, f);
    voi = [c, w, f](double x) { return to_byte(voi_fraction(x, c, w, f)); };
  };
  const auto full_range = [&] {
    const auto range = modality_range(stored, modality);
    const double lo = range.first, hi = range.second;  // clang 14 cannot capture a structured binding
    voi = [lo, hi](double x) { return hi > lo ? to_byte((x - lo) / (hi - lo)) : uint8_t(0); };
    out.description = "full range " + number(lo) + ".." + number(hi);
  };
  switch (spec.mode) {
    case WindowMode::file:
      if (!t.voi_luts.empty()) {
        const Lut& lut = t.voi_luts[0];
        const double top = double((1u << lut.bits) - 1);
        voi = [&lut, top](double x) { return to_byte(lut_lookup(lut, x) / top); };
        out.description = "file VOI LUT 1" + (lut.explanation.empty() ? "" : " (" + lut.explanation + ")");
      } else if (!t.windows.empty()) {
        window(t.windows[0].center, t.windows[0].width, t.voi_function);
        out.description = "file window 1: " + window_text(t.windows[0].center, t.windows[0].width, t.voi_function);
      } else {
        full_range();
        out.description = "no window in the file; " + out.description;
      }
      break;
    case WindowMode::file_window:
      if (spec.index >= t.windows.size()) fail(h.file_name, ": has ", t.windows.size(), " windows, not ", spec.index + 1);
      window(t.windows[spec.index].center, t.windows[spec.index].width, t.voi_function);
      out.description = "file window " + std::to_string(spec.index + 1) + ": " +
                        window_text(t.windows[spec.index].center, t.windows[spec.index].width, t.voi_function);
      break;
    case WindowMode::file_lut: {
      if (spec.index >= t.voi_luts.size()) fail(h.file_name, ": has ", t.voi_luts.size(), " VOI LUTs, not ", spec.index + 1);
      const Lut& lut = t.voi_luts[spec.index];
      const double top = double((1u << lut.bits) - 1);
      voi = [&lut, top](double x) { return to_byte(lut_lookup(lut, x) / top); };
      out.description = "file VOI LUT " + std::to_string(spec.index + 1);
      break;
    }
    case WindowMode::custom:
      window(spec.center, spec.width, spec.function);
      out.description = (spec.name.empty() ? "" : spec.name + ": ") + window_text(spec.center, spec.width, spec.function);
      break;
    case WindowMode::full_range: full_range(); break;
    case WindowMode::cxr:
      if (!t.windows.empty()) {
        // The handler's window_accurate: clip to centre -+ floor(width / 2), scale, round half to even.
        const double half = std::floor(t.windows[0].width / 2), lo = t.windows[0].center - half, hi = t.windows[0].center + half;
        voi = [lo, hi](double x) {
          return hi > lo ? uint8_t(std::nearbyint((std::clamp(x, lo, hi) - lo) / (hi - lo) * 255.0)) : uint8_t(x >= hi ? 255 : 0);
        };
        out.description = "cxr: file window " + window_text(t.windows[0].center, t.windows[0].width, VoiFunction::linear);
      } else if (h.bits_allocated == 8 && !h.is_signed && !t.rescale && !t.modality_lut) {
        voi = [](double x) { return uint8_t(std::clamp(x, 0.0, 255.0)); };
        out.description = "cxr: 8-bit image as stored";
      } else {
        // Modality values go back to the stored integer type (truncated), then stretch min..max.
        const auto [lo, hi] = modality_range(stored, modality);
        const double tlo = std::trunc(lo), thi = std::trunc(hi);
        voi = [tlo, thi](double x) { return thi > tlo ? uint8_t(std::nearbyint((std::trunc(x) - tlo) / (thi - tlo) * 255.0)) : uint8_t(0); };
        out.description = "cxr: stretched " + number(tlo) + ".." + number(thi);
      }
      break;
    case WindowMode::ct_rgb: break;
  }
  out.pixels = map_values<uint8_t>(stored, [&](int64_t v) {
    const uint8_t y = voi(modality(v));
    return invert ? uint8_t(255 - y) : y;
  });
  if (invert) out.description += ", MONOCHROME1 inverted";
  return out;
}

Rendered render_colour(const DicomImage& image, const WindowSpec& spec, uint32_t frame) {
  const DicomHeader& h = image.header;
  if (spec.mode != WindowMode::file) fail(h.file_name, ": windows apply to greyscale images; this one is ", h.photometric);
  Rendered out{h.columns, h.rows, 3, {}, h.photometric};
  const std::vector<int64_t> stored = image.frame_values(frame);
  if (h.photometric == "PALETTE COLOR") {
    out.pixels.resize(stored.size() * 3);
    for (int c = 0; c < 3; ++c) {
      const Lut& lut = *h.palette[c];
      const double top = double((1u << lut.bits) - 1);
      const auto channel = map_values<uint8_t>(stored, [&](int64_t v) { return to_byte(lut_lookup(lut, v) / top); });
      for (size_t i = 0; i < channel.size(); ++i) out.pixels[i * 3 + c] = channel[i];
    }
    out.description = "PALETTE COLOR through its LUTs";
    return out;
  }
  const double top = double((uint64_t(1) << h.bits_stored) - 1);
  out.pixels.resize(stored.size());
  const bool ybr = h.photometric == "YBR_FULL" || h.photometric == "YBR_FULL_422";
  const double half = double(uint64_t(1) << (h.bits_stored - 1));
  for (size_t i = 0; i + 2 < stored.size(); i += 3) {
    double r = stored[i], g = stored[i + 1], b = stored[i + 2];
    if (ybr) {
      // PS3.3 C.7.6.3.1.2: full-range YCbCr (ITU-R BT.601 coefficients) to RGB.
      const double y = r, cb = g - half, cr = b - half;
      r = y + 1.402 * cr;
      g = y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr;
      b = y + 1.772 * cb;
    }
    out.pixels[i] = to_byte(r / top);
    out.pixels[i + 1] = to_byte(g / top);
    out.pixels[i + 2] = to_byte(b / top);
  }
  if (ybr) out.description += " converted to RGB";
  return out;
}

}  // namespace

std::span<const Preset> window_presets() { return kPresets; }

WindowSpec parse_window(const std::string& text) {
  WindowSpec spec;
  spec.name = text;
  const auto index_after = [&](size_t prefix) {
    size_t used = 0;
    long n = 0;
    try {
      n = std::stol(text.substr(prefix), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || prefix + used != text.size() || n < 1) fail("--window ", text, ": expected a number from 1 after '", text.substr(0, prefix), "'");
    return size_t(n - 1);
  };
  if (text == "file") return spec;
  if (text == "full") {
    spec.mode = WindowMode::full_range;
  } else if (text == "ct-rgb") {
    spec.mode = WindowMode::ct_rgb;
  } else if (text == "cxr") {
    spec.mode = WindowMode::cxr;
  } else if (text.rfind("file:", 0) == 0) {
    spec.mode = WindowMode::file_window;
    spec.index = index_after(5);
  } else if (text.rfind("lut:", 0) == 0) {
    spec.mode = WindowMode::file_lut;
    spec.index = index_after(4);
  } else if (const auto preset = std::find_if(std::begin(kPresets), std::end(kPresets), [&](const Preset& p) { return text == p.name; });
             preset != std::end(kPresets)) {
    spec.mode = WindowMode::custom;
    spec.center = preset->center;
    spec.width = preset->width;
  } else {
    std::vector<std::string> parts;
    std::istringstream items(text);
    for (std::string item; std::getline(items, item, ',');) parts.push_back(item);
    const auto parse = [&](const std::string& s) {
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0' || !std::isfinite(v)) {
        fail("--window ", text, ": not file, file:N, lut:N, full, ct-rgb, cxr, a preset (lung, mediastinum, bone, brain, abdomen, "
             "soft-tissue) or CENTER,WIDTH[,LINEAR|LINEAR_EXACT|SIGMOID]");
      }
      return v;
    };
    if (parts.size() < 2 || parts.size() > 3) parse("");
    spec.mode = WindowMode::custom;
    spec.name.clear();
    spec.center = parse(parts[0]);
    spec.width = parse(parts[1]);
    if (parts.size() == 3) {
      if (parts[2] == "LINEAR_EXACT") spec.function = VoiFunction::linear_exact;
      else if (parts[2] == "SIGMOID") spec.function = VoiFunction::sigmoid;
      else if (parts[2] != "LINEAR") fail("--window ", text, ": function must be LINEAR, LINEAR_EXACT or SIGMOID");
    }
    if (spec.function == VoiFunction::linear ? spec.width < 1 : spec.width <= 0) fail("--window ", text, ": width is too small");
  }
  return spec;
}

double voi_fraction(double x, double c, double w, VoiFunction function) {
  switch (function) {
    case VoiFunction::linear:  // C.11.2.1.2.1
      if (x <= c - 0.5 - (w - 1) / 2) return 0.0;
      if (x > c - 0.5 + (w - 1) / 2) return 1.0;
      return (x - (c - 0.5)) / (w - 1) + 0.5;
    case VoiFunction::linear_exact:  // C.11.2.1.3.2
      if (x <= c - w / 2) return 0.0;
      if (x > c + w / 2) return 1.0;
      return (x - c) / w + 0.5;
    case VoiFunction::sigmoid:  // C.11.2.1.3.1
      return 1.0 / (1.0 + std::exp(-4.0 * (x - c) / w));
  }
  return 0.0;
}

std::vector<double> modality_values(const DicomImage& image, uint32_t frame) {
  const Modality modality{image.header.frame_transforms(frame)};
  return map_values<double>(image.frame_values(frame), modality);
}

Rendered render(const DicomImage& image, const WindowSpec& window, uint32_t frame) {
  const DicomHeader& h = image.header;
  if (frame >= h.frames) fail(h.file_name, ": frame ", frame + 1, " of ", h.frames, " does not exist");
  return is_grey(h) ? render_grey(image, window, frame) : render_colour(image, window, frame);
}

}  // namespace medlab::dicom
