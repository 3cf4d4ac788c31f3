#include "formats/gguf_reader.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace medlab {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; this reader reads host words");

enum ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

const char* value_type_name(uint32_t t) {
  static const char* const kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                       "string", "array", "u64", "i64", "f64"};
  return t <= kF64 ? kNames[t] : "unknown";
}

// Bytes of a scalar of type t; 0 for strings and arrays.
size_t scalar_bytes(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS
constexpr uint64_t kMaxName = 63;  // ggml keeps tensor names in 64-byte buffers
constexpr uint64_t kMaxKey = 65535;  // the GGUF spec's longest key
// Far above any Gemma 3 file (under 1000 tensors, a 262144-token vocabulary), and low enough that a
// hostile count cannot make the reader reserve more than a few tens of MiB before the bytes run out.
constexpr uint64_t kMaxTensors = 1 << 16;
constexpr uint64_t kMaxArrayElements = 1 << 20;

// The ggml types medlab computes with, by ggml code.
std::optional<DType> dtype_of(uint32_t code) {
  switch (code) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 2: return DType::Q4_0;
    case 8: return DType::Q8_0;
    case 12: return DType::Q4_K;
    case 13: return DType::Q5_K;
    case 14: return DType::Q6_K;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

// Reads the header front to back; every read is bounds-checked against the mapped size.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const std::string& what, uint64_t max_length = UINT64_MAX) {
    const auto n = read<uint64_t>(what + " length");
    if (n > left()) fail(path_, ": ", what, ": length ", n, " runs past the end of the file (", left(), " bytes left)");
    if (n > max_length) fail(path_, ": ", what, ": length ", n, " exceeds the limit of ", max_length, " bytes");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

  void need(uint64_t n, const std::string& what) const {
    if (n > left()) fail(path_, ": truncated: ", what, " needs ", n, " bytes at offset ", pos_, ", ", left(), " left");
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

int64_t read_integer(Cursor& c, uint32_t t, const std::string& what, const std::string& path) {
  switch (t) {
    case kU8: return c.read<uint8_t>(what);
    case kI8: return c.read<int8_t>(what);
    case kU16: return c.read<uint16_t>(what);
    case kI16: return c.read<int16_t>(what);
    case kU32: return c.read<uint32_t>(what);
    case kI32: return c.read<int32_t>(what);
    case kI64: return c.read<int64_t>(what);
    case kU64: {
      const auto v = c.read<uint64_t>(what);
      if (v > uint64_t(std::numeric_limits<int64_t>::max())) fail(path, ": ", what, ": u64 value ", v, " is too large");
      return int64_t(v);
    }
    case kBool: {
      const auto v = c.read<uint8_t>(what);
      if (v > 1) fail(path, ": ", what, ": bool byte is ", int(v), ", not 0 or 1");
      return v;
    }
    default: fail(path, ": ", what, ": not an integer type");
  }
}

double read_float(Cursor& c, uint32_t t, const std::string& what) {
  if (t == kF32) return c.read<float>(what);
  return c.read<double>(what);
}

GgufValue read_value(Cursor& c, uint32_t type, const std::string& what, const std::string& path) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case kString:
      v.kind = GgufValue::Kind::String;
      v.string = c.string(what);
      return v;
    case kF32:
    case kF64:
      v.kind = GgufValue::Kind::Float;
      v.number = read_float(c, type, what);
      return v;
    case kBool:
      v.kind = GgufValue::Kind::Bool;
      v.boolean = read_integer(c, type, what, path) != 0;
      return v;
    case kArray: break;
    default:
      if (scalar_bytes(type) == 0) fail(path, ": ", what, ": unknown value type ", type);
      v.kind = GgufValue::Kind::Integer;
      v.integer = read_integer(c, type, what, path);
      return v;
  }
  v.kind = GgufValue::Kind::Array;
  v.element_type = c.read<uint32_t>(what + " element type");
  const auto count = c.read<uint64_t>(what + " element count");
  const uint32_t et = v.element_type;
  if (et == kArray) fail(path, ": ", what, ": arrays of arrays are not supported");
  // The smallest an element can be, to bound the count by what the file can hold before allocating.
  const size_t min_bytes = et == kString ? 8 : scalar_bytes(et);
  if (min_bytes == 0) fail(path, ": ", what, ": unknown array element type ", et);
  if (count > c.left() / min_bytes)
    fail(path, ": ", what, ": ", count, " elements of ", value_type_name(et), " cannot fit in the ", c.left(),
         " bytes left in the file");
  if (count > kMaxArrayElements)
    fail(path, ": ", what, ": ", count, " elements exceed the limit of ", kMaxArrayElements);
  const std::string element = what + " element";
  if (et == kString) {
    v.strings.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) v.strings.push_back(c.string(element));
  } else if (et == kF32 || et == kF64) {
    v.numbers.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) v.numbers.push_back(read_float(c, et, element));
  } else {
    v.integers.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) v.integers.push_back(read_integer(c, et, element, path));
  }
  return v;
}

uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

std::string ggml_type_name(uint32_t code) {
  static const std::map<uint32_t, const char*> kNames = {
      {0, "f32"},     {1, "f16"},      {2, "q4_0"},     {3, "q4_1"},    {6, "q5_0"},     {7, "q5_1"},
      {8, "q8_0"},    {9, "q8_1"},     {10, "q2_k"},    {11, "q3_k"},   {12, "q4_k"},    {13, "q5_k"},
      {14, "q6_k"},   {15, "q8_k"},    {16, "iq2_xxs"}, {17, "iq2_xs"}, {18, "iq3_xxs"}, {19, "iq1_s"},
      {20, "iq4_nl"}, {21, "iq3_s"},   {22, "iq2_s"},   {23, "iq4_xs"}, {24, "i8"},      {25, "i16"},
      {26, "i32"},    {27, "i64"},     {28, "f64"},     {29, "iq1_m"},  {30, "bf16"},    {34, "tq1_0"},
      {35, "tq2_0"},  {39, "mxfp4"},
  };
  const auto it = kNames.find(code);
  return it == kNames.end() ? "type " + std::to_string(code) : it->second;
}

GgufFile::GgufFile(const std::string& path) : file_(path) {
  const std::string& where = file_.path();
  Cursor c(file_.data(), file_.size(), where);
  c.need(4, "the magic");
  if (std::memcmp(file_.data(), "GGUF", 4) != 0) fail(where, ": not a GGUF file (it does not start with 'GGUF')");
  c.read<uint32_t>("magic");
  const auto version = c.read<uint32_t>("version");
  if (version != 3) fail(where, ": GGUF version ", version, " is not supported (only 3)");
  const auto n_tensors = c.read<uint64_t>("tensor count");
  const auto n_kv = c.read<uint64_t>("metadata count");
  // A key-value pair takes at least 13 bytes (length, a 1-byte key, type, a 1-byte value); a tensor
  // info at least 33 (length, a 1-byte name, dims count, one dim, type, offset).
  if (n_kv > c.left() / 13) fail(where, ": metadata count ", n_kv, " is more than the file can hold");
  if (n_tensors > c.left() / 33) fail(where, ": tensor count ", n_tensors, " is more than the file can hold");
  if (n_tensors > kMaxTensors) fail(where, ": tensor count ", n_tensors, " exceeds the limit of ", kMaxTensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.string("metadata key " + std::to_string(i), kMaxKey);
    if (key.empty()) fail(where, ": metadata key ", i, " is empty");
    const auto type = c.read<uint32_t>("type of '" + key + "'");
    GgufValue v = read_value(c, type, "metadata '" + key + "'", where);
    if (!metadata_.emplace(key, std::move(v)).second) fail(where, ": metadata key '", key, "' appears twice");
  }
  if (has("general.alignment")) {
    const GgufValue& a = value("general.alignment");
    if (a.type != kU32) fail(where, ": general.alignment must be a u32, found ", value_type_name(a.type));
    if (a.integer == 0 || !std::has_single_bit(uint64_t(a.integer)))
      fail(where, ": general.alignment ", a.integer, " is not a power of two");
    alignment_ = uint32_t(a.integer);
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.string("tensor " + std::to_string(i) + " name", kMaxName);
    const std::string at = where + ": tensor '" + t.name + "'";
    if (t.name.empty() || t.name.size() > kMaxName) fail(at, ": names must be 1 to ", kMaxName, " bytes");
    const auto n_dims = c.read<uint32_t>(t.name + " dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) fail(at, ": ", n_dims, " dimensions (1 to ", kMaxDims, " allowed)");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = c.read<uint64_t>(t.name + " dimension");
      if (dim == 0 || dim > (uint64_t(1) << 40)) fail(at, ": dimension ", d, " is ", dim);
      if (__builtin_mul_overflow(elements, dim, &elements) || elements > (uint64_t(1) << 50))
        fail(at, ": too many elements");
      t.ne.push_back(int64_t(dim));
    }
    const auto code = c.read<uint32_t>(t.name + " type");
    const std::optional<DType> dtype = dtype_of(code);
    if (!dtype)
      fail(at, ": type ", ggml_type_name(code), " is not supported (medlab reads f32, f16, bf16, q8_0, q4_0, q4_k, "
           "q5_k, q6_k)");
    t.dtype = *dtype;
    if (t.ne[0] % block_elements(t.dtype) != 0)
      fail(at, ": row length ", t.ne[0], " is not a whole number of ", dtype_name(t.dtype), " blocks of ",
           block_elements(t.dtype));
    t.bytes = uint64_t(row_bytes(t.dtype, t.ne[0])) * (elements / uint64_t(t.ne[0]));
    t.offset = c.read<uint64_t>(t.name + " offset");
    if (t.offset % alignment_ != 0) fail(at, ": data offset ", t.offset, " is not a multiple of ", alignment_);
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) fail(at, ": appears twice");
    tensors_.push_back(std::move(t));
  }

  const uint64_t data_start = align_up(c.pos(), alignment_);
  if (data_start > file_.size() && !tensors_.empty())
    fail(where, ": truncated: the tensor data would start at ", data_start, " but the file has ", file_.size(), " bytes");
  const uint64_t data_size = file_.size() > data_start ? file_.size() - data_start : 0;
  std::vector<const GgufTensor*> by_offset;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      fail(where, ": tensor '", t.name, "': bytes ", t.offset, "..", t.offset + t.bytes, " of the data section lie "
           "outside it (", data_size, " bytes; truncated file?)");
    t.data = file_.data() + data_start + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
      fail(where, ": tensors '", by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");
}

const GgufValue& GgufFile::value(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) fail(path(), ": metadata key '", key, "' is missing");
  return it->second;
}

namespace {

[[noreturn]] void wrong_kind(const std::string& path, const std::string& key, const GgufValue& v, const char* want) {
  std::string found = value_type_name(v.type);
  if (v.kind == GgufValue::Kind::Array) found += std::string(" of ") + value_type_name(v.element_type);
  fail(path, ": metadata '", key, "' must be ", want, ", found ", found);
}

}  // namespace

int64_t GgufFile::integer(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::Integer) wrong_kind(path(), key, v, "an integer");
  return v.integer;
}

std::optional<int64_t> GgufFile::optional_integer(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return integer(key);
}

uint32_t GgufFile::u32(const std::string& key) const {
  const int64_t v = integer(key);
  if (v < 0 || v > int64_t(std::numeric_limits<uint32_t>::max()))
    fail(path(), ": metadata '", key, "' is ", v, ", outside 0..4294967295");
  return uint32_t(v);
}

double GgufFile::number(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::Float) wrong_kind(path(), key, v, "a float");
  return v.number;
}

std::optional<double> GgufFile::optional_number(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return number(key);
}

bool GgufFile::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::Bool) wrong_kind(path(), key, v, "a bool");
  return v.boolean;
}

const std::string& GgufFile::string(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::String) wrong_kind(path(), key, v, "a string");
  return v.string;
}

const std::vector<std::string>& GgufFile::strings(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::Array || v.element_type != kString) wrong_kind(path(), key, v, "an array of strings");
  return v.strings;
}

const std::vector<double>& GgufFile::numbers(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::Array || (v.element_type != kF32 && v.element_type != kF64))
    wrong_kind(path(), key, v, "an array of floats");
  return v.numbers;
}

const std::vector<int64_t>& GgufFile::integers(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.kind != GgufValue::Kind::Array || v.element_type == kString || v.element_type == kF32 ||
      v.element_type == kF64 || v.element_type == kBool)
    wrong_kind(path(), key, v, "an array of integers");
  return v.integers;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace medlab
