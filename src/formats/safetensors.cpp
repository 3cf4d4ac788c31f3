#include "formats/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace medlab {
namespace {

using nlohmann::json;

// Limits far above any Gemma 3 checkpoint (the 27B's headers are under 1 MB, a 4-bit one has a few
// thousand tensors) that keep a hostile header from costing more memory than a few times its size.
constexpr uint64_t kMaxHeaderBytes = 16ull << 20;
constexpr size_t kMaxTensors = 1 << 16;
constexpr size_t kMaxMetadataValue = 1 << 20;  // PyTorch writes {"format": "pt"}
// Shapes and offset pairs are the only arrays and lie three levels deep; longer or deeper ones are
// refused while parsing, before the JSON library builds a vector of millions of values.
constexpr size_t kMaxArrayItems = 64;
constexpr size_t kMaxDepth = 8;

std::optional<DType> parse_dtype(const std::string& name) {
  if (name == "F32") return DType::F32;
  if (name == "F16") return DType::F16;
  if (name == "BF16") return DType::BF16;
  return std::nullopt;
}

std::string safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    default: fail("safetensors has no dtype for ", dtype_name(t));
  }
}

bool is_known_unsupported_dtype(const std::string& name) {
  static const char* const known[] = {"BOOL",        "I8",      "I16",     "U16",     "I32",     "U32",     "I64",
                                      "U64",  "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"};
  return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return name == k; });
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string compact(const json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

struct Range {
  uint64_t begin, end;
  const std::string* name;
};

// Refuses arrays and nesting beyond the limits in one pass over the text, before the JSON library
// builds anything (its callback parser rescans an object per member closed: quadratic). Malformed text
// is left to the parser to report.
void check_header_shape(const char* text, uint64_t length, const std::string& path) {
  struct Open {
    bool array;
    size_t items;
  };
  std::vector<Open> open;
  bool in_string = false;
  for (uint64_t i = 0; i < length; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (open.size() == kMaxDepth) fail(path, ": header nests deeper than ", kMaxDepth, " levels");
      open.push_back({c == '[', 1});
    } else if ((c == ']' || c == '}') && !open.empty()) {
      open.pop_back();
    } else if (c == ',' && !open.empty() && open.back().array && ++open.back().items > kMaxArrayItems) {
      fail(path, ": header has an array of more than ", kMaxArrayItems, " items; shapes and offsets are shorter");
    }
  }
}

json parse_header(const char* text, uint64_t length, const std::string& path) {
  check_header_shape(text, length, path);
  try {
    return json::parse(text, text + length);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number that overflows
    fail(path, ": header is not valid JSON: ", e.what());
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const uint64_t size = file_.size();
  if (size < 8) fail(path, ": not a safetensors file: ", size, " bytes, shorter than the 8-byte header length");
  const uint64_t header_len = read_u64_le(file_.data());
  if (header_len > size - 8)
    fail(path, ": header length ", header_len, " runs past the end of the file (", size, " bytes); truncated?");
  if (header_len > kMaxHeaderBytes) fail(path, ": header length ", header_len, " exceeds the 16 MiB limit");

  const json header = parse_header(reinterpret_cast<const char*>(file_.data() + 8), header_len, path);
  if (!header.is_object()) fail(path, ": header must be a JSON object, found ", compact(header));
  if (header.size() > kMaxTensors + 1)
    fail(path, ": header lists ", header.size(), " entries, more than the limit of ", kMaxTensors, " tensors");

  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data = file_.data() + 8 + header_len;
  std::vector<Range> ranges;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();  // not a structured binding: clang 14 cannot capture those
    const auto& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, ": __metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(path, ": __metadata__.", key, " must be a string, found ", compact(value));
        if (value.get_ref<const std::string&>().size() > kMaxMetadataValue)
          fail(path, ": __metadata__.", key, " is ", value.get_ref<const std::string&>().size(),
               " bytes, over the 1 MiB limit");
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const auto&... what) { fail(path, ": tensor '", name, "': ", what...); };
    if (!entry.is_object()) bad("entry must be an object, found ", compact(entry));
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(key)) bad("missing \"", key, "\"");

    const json& dtype_json = entry.at("dtype");
    if (!dtype_json.is_string()) bad("dtype must be a string, found ", compact(dtype_json));
    const std::string dtype_name = dtype_json.get<std::string>();
    const std::optional<DType> dtype = parse_dtype(dtype_name);
    const bool u8 = dtype_name == "U8";
    if (!dtype && !u8) {
      if (is_known_unsupported_dtype(dtype_name))
        bad("dtype ", dtype_name, " is not supported (medlab reads BF16, F16, F32, and U8 for bitsandbytes 4-bit weights)");
      bad("unknown dtype '", dtype_name, "'");
    }

    const json& shape_json = entry.at("shape");
    if (!shape_json.is_array()) bad("shape must be a list, found ", compact(shape_json));
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const json& d : shape_json) {
      if (!d.is_number_unsigned()) bad("shape must hold non-negative integers, found ", compact(shape_json));
      const uint64_t dim = d.get<uint64_t>();
      // Bounding every product by INT64_MAX keeps numel and numel * block_bytes from wrapping.
      if (dim > uint64_t(INT64_MAX) || (dim != 0 && numel > uint64_t(INT64_MAX) / dim))
        bad("shape ", compact(shape_json), " has more elements than can be addressed");
      numel *= dim;
      shape.push_back(int64_t(dim));
    }
    const size_t elem = u8 ? 1 : block_bytes(*dtype);
    if (numel > uint64_t(INT64_MAX) / elem) bad("shape ", compact(shape_json), " has more bytes than can be addressed");

    const json& offsets = entry.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      bad("data_offsets must be two non-negative integers, found ", compact(offsets));
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end) bad("data_offsets [", begin, ", ", end, "] end before they begin");
    if (end > data_size)
      bad("data_offsets [", begin, ", ", end, "] run past the end of the data (", data_size, " bytes); truncated?");
    if (end - begin != numel * elem)
      bad("holds ", end - begin, " bytes but ", dtype_name, " ", shape_string(shape), " needs ", numel * elem);

    if (u8) {
      const auto inserted = byte_tensors_.emplace(name, ByteTensor{std::move(shape), data + begin, end - begin});
      ranges.push_back({begin, end, &inserted.first->first});
      continue;
    }
    TensorView view;
    view.dtype = *dtype;
    view.shape = std::move(shape);
    view.data = data + begin;
    const auto inserted = tensors_.emplace(name, std::move(view));
    ranges.push_back({begin, end, &inserted.first->first});
  }

  // The format requires the data area to be exactly covered: no overlaps, no unclaimed bytes.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const Range& r : ranges) {
    if (r.begin < covered)
      fail(path, ": tensors '", *previous, "' and '", *r.name, "' overlap (bytes ", r.begin, " to ", covered, ")");
    if (r.begin > covered)
      fail(path, ": data bytes ", covered, " to ", r.begin, " belong to no tensor (before '", *r.name, "')");
    covered = r.end;
    previous = r.name;
  }
  if (covered != data_size) fail(path, ": the last ", data_size - covered, " data bytes belong to no tensor");
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path) {
  // ordered_json keeps the header in the order the data is laid out.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const TensorToWrite& t : tensors) {
    if (t.name == "__metadata__" || header.contains(t.name)) fail(path, ": tensor name '", t.name, "' used twice");
    uint64_t bytes = t.u8 ? 1 : block_bytes(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) fail(path, ": tensor '", t.name, "' has a negative dimension in ", shape_string(t.shape));
      bytes *= uint64_t(d);
    }
    header[t.name] = {{"dtype", t.u8 ? "U8" : safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {expected_, expected_ + bytes}}};
    expected_ += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pads so tensor data starts 8-byte aligned, as safetensors does

  out_ = std::fopen(temp_path().c_str(), "wb");
  if (!out_) fail(path, ": cannot create: ", std::strerror(errno));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  if (std::fwrite(length, 1, 8, out_) != 8 || std::fwrite(text.data(), 1, text.size(), out_) != text.size()) {
    const int err = errno;
    std::fclose(out_);  // the destructor does not run for a constructor that throws
    std::remove(temp_path().c_str());
    fail(path_, ": write failed: ", std::strerror(err));
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (out_) {  // unfinished: leave nothing that could pass for the file
    std::fclose(out_);
    std::remove(temp_path().c_str());
  }
}

// Written beside the destination and renamed into place when complete, so a reader that has the old
// file mapped keeps a consistent copy, and an interrupted write leaves no partial file behind.
std::string SafetensorsWriter::temp_path() const { return path_ + ".partial"; }

void SafetensorsWriter::append(const void* bytes, size_t n) {
  if (!out_) fail(path_, ": append after finish");
  if (written_ + n > expected_) fail(path_, ": more tensor data than the header declares (", expected_, " bytes)");
  if (n && std::fwrite(bytes, 1, n, out_) != n) fail(path_, ": write failed: ", std::strerror(errno));
  written_ += n;
}

void SafetensorsWriter::finish() {
  if (written_ != expected_)
    fail(path_, ": ", written_, " bytes of tensor data written, the header declares ", expected_);
  const int closed = std::fclose(out_);
  out_ = nullptr;
  if (closed != 0) {
    const int err = errno;
    std::remove(temp_path().c_str());
    fail(path_, ": write failed: ", std::strerror(err));
  }
  if (std::rename(temp_path().c_str(), path_.c_str()) != 0) {
    const int err = errno;
    std::remove(temp_path().c_str());
    fail(path_, ": cannot move into place: ", std::strerror(err));
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer(path, tensors, metadata);
  for (const TensorToWrite& t : tensors) {
    const TensorView view{t.u8 ? DType::F32 : t.dtype, t.shape, t.data};
    writer.append(t.data, t.u8 ? size_t(view.numel()) : view.nbytes());
  }
  writer.finish();
}

}  // namespace medlab
