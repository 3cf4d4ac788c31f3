#include "formats/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"

namespace medlab {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; this writer copies host bytes");

// GGUF's metadata value types.
enum KvType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

constexpr uint32_t kVersion = 3;
constexpr uint64_t kMaxName = 63;  // ggml keeps tensor names in 64-byte buffers

uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// The medlab dtype whose blocks are this GGUF type's, for all but Q5_0 and Q5_1.
std::optional<DType> dtype_of(GgufType type) {
  switch (type) {
    case GgufType::F32: return DType::F32;
    case GgufType::F16: return DType::F16;
    case GgufType::BF16: return DType::BF16;
    case GgufType::Q8_0: return DType::Q8_0;
    case GgufType::Q4_0: return DType::Q4_0;
    case GgufType::Q4_K: return DType::Q4_K;
    case GgufType::Q5_K: return DType::Q5_K;
    case GgufType::Q6_K: return DType::Q6_K;
    case GgufType::Q5_0:
    case GgufType::Q5_1: return std::nullopt;
  }
  return std::nullopt;
}

// llama.cpp's Q5_0 and Q5_1 reference quantizers: 32 values as 5-bit codes (low nibbles in qs, fifth
// bits in qh), Q5_0 symmetric around code 16 with d = the signed extreme / -16, Q5_1 from the minimum
// with d = range / 31.
void encode_q5(bool with_min, const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float d, min = 0;
    if (with_min) {
      min = x[0];
      float max = x[0];
      for (int j = 1; j < 32; ++j) min = std::min(min, x[j]), max = std::max(max, x[j]);
      d = (max - min) / 31;
    } else {
      float amax = 0, max = 0;
      for (int j = 0; j < 32; ++j)
        if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
      d = max / -16;
    }
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const auto code = [&](float v) {
      return with_min ? int(uint8_t(int((v - min) * id + 0.5f))) : std::min(31, int(int8_t(int(v * id + 16.5f))));
    };
    const uint16_t d16 = f32_to_f16(d), m16 = f32_to_f16(min);
    std::memcpy(out, &d16, 2);
    out += 2;
    if (with_min) std::memcpy(out, &m16, 2), out += 2;
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = code(x[j]), q1 = code(x[j + 16]);
      out[4 + j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t((q0 & 0x10) >> 4) << j;
      qh |= uint32_t((q1 & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(out, &qh, 4);
    out += 20;
  }
}

}  // namespace

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::Q5_0: return "q5_0";
    case GgufType::Q5_1: return "q5_1";
    default: return dtype_name(*dtype_of(type));
  }
}

GgufType parse_gguf_type(std::string_view name) {
  static constexpr GgufType kChoices[] = {GgufType::F32,  GgufType::F16,  GgufType::BF16, GgufType::Q8_0,
                                          GgufType::Q4_0, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K};
  std::string known;
  for (GgufType t : kChoices) {
    if (gguf_type_name(t) == name) return t;
    known += (known.empty() ? "" : ", ") + std::string(gguf_type_name(t));
  }
  fail("GGUF tensor type '", name, "' is not one of ", known);
}

int64_t gguf_block_elements(GgufType type) {
  if (type == GgufType::Q5_0 || type == GgufType::Q5_1) return 32;
  return block_elements(*dtype_of(type));
}

size_t gguf_block_bytes(GgufType type) {
  if (type == GgufType::Q5_0) return 22;
  if (type == GgufType::Q5_1) return 24;
  return block_bytes(*dtype_of(type));
}

void gguf_encode_row(GgufType type, const float* x, int64_t n, uint8_t* out) {
  if (const std::optional<DType> dtype = dtype_of(type)) return quantize_row(*dtype, x, out, n);
  encode_q5(type == GgufType::Q5_1, x, n, out);
}

uint64_t gguf_tensor_bytes(GgufType type, const std::vector<int64_t>& ne, const std::string& name) {
  if (ne.empty()) fail("GGUF tensor '", name, "': has no dimensions");
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= uint64_t(ne[i]);
  for (int64_t d : ne)
    if (d <= 0) fail("GGUF tensor '", name, "': dimension ", d, " is not positive");
  const int64_t block = gguf_block_elements(type);
  if (ne[0] % block != 0)
    fail("GGUF tensor '", name, "': row length ", ne[0], " is not a multiple of ", block, ", so it cannot be stored as ",
         gguf_type_name(type));
  return rows * uint64_t(ne[0] / block) * gguf_block_bytes(type);
}

GgufWriter::GgufWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".partial") {}

GgufWriter::~GgufWriter() {
  if (file_) std::fclose(file_);
  if (!finished_ && header_written_) std::remove(tmp_path_.c_str());
}

void GgufWriter::fail_here(const std::string& what) const { fail(path_, ": ", what); }

void GgufWriter::put_u32(uint32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  kv_.insert(kv_.end(), p, p + 4);
}

void GgufWriter::put_u64(uint64_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  kv_.insert(kv_.end(), p, p + 8);
}

void GgufWriter::put_string(std::string_view s) {
  put_u64(s.size());
  kv_.insert(kv_.end(), s.begin(), s.end());
}

void GgufWriter::begin_kv(const std::string& key, uint32_t type) {
  if (header_written_) fail_here("metadata key '" + key + "' added after tensor data began");
  if (key.empty()) fail_here("empty metadata key");
  if (!keys_.insert(key).second) fail_here("metadata key '" + key + "' added twice");
  put_string(key);
  put_u32(type);
  ++kv_count_;
}

void GgufWriter::add_u32(const std::string& key, uint32_t value) {
  begin_kv(key, kU32);
  put_u32(value);
}

void GgufWriter::add_i32(const std::string& key, int32_t value) {
  begin_kv(key, kI32);
  put_u32(uint32_t(value));
}

void GgufWriter::add_u64(const std::string& key, uint64_t value) {
  begin_kv(key, kU64);
  put_u64(value);
}

void GgufWriter::add_f32(const std::string& key, float value) {
  begin_kv(key, kF32);
  put_u32(std::bit_cast<uint32_t>(value));
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  begin_kv(key, kBool);
  kv_.push_back(value ? 1 : 0);
}

void GgufWriter::add_string(const std::string& key, std::string_view value) {
  begin_kv(key, kString);
  put_string(value);
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  begin_kv(key, kArray);
  put_u32(kString);
  put_u64(values.size());
  for (const std::string& s : values) put_string(s);
}

void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& values) {
  begin_kv(key, kArray);
  put_u32(kF32);
  put_u64(values.size());
  for (float v : values) put_u32(std::bit_cast<uint32_t>(v));
}

void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& values) {
  begin_kv(key, kArray);
  put_u32(kI32);
  put_u64(values.size());
  for (int32_t v : values) put_u32(uint32_t(v));
}

void GgufWriter::add_tensor(const std::string& name, GgufType type, std::vector<int64_t> ne) {
  if (header_written_) fail_here("tensor '" + name + "' declared after tensor data began");
  if (name.empty() || name.size() > kMaxName)
    fail_here("tensor name '" + name + "' must be 1 to " + std::to_string(kMaxName) + " bytes");
  if (!tensor_names_.insert(name).second) fail_here("tensor '" + name + "' declared twice");
  const uint64_t bytes = gguf_tensor_bytes(type, ne, name);
  tensors_.push_back({name, type, std::move(ne), data_size_, bytes});
  data_size_ += align_up(bytes, kAlignment);
}

void GgufWriter::write_raw(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    fail(tmp_path_, ": write failed: ", std::strerror(errno));
}

void GgufWriter::pad_to_alignment(uint64_t written) {
  static constexpr uint8_t zeros[kAlignment] = {};
  write_raw(zeros, align_up(written, kAlignment) - written);
}

void GgufWriter::write_header() {
  if (!keys_.count("general.alignment")) add_u32("general.alignment", kAlignment);
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) fail(tmp_path_, ": cannot create: ", std::strerror(errno));
  header_written_ = true;

  std::vector<uint8_t> head;
  kv_.swap(head);  // reuse the put_* helpers for the header and tensor infos
  kv_.insert(kv_.end(), {'G', 'G', 'U', 'F'});
  put_u32(kVersion);
  put_u64(tensors_.size());
  put_u64(kv_count_);
  kv_.insert(kv_.end(), head.begin(), head.end());
  for (const TensorInfo& t : tensors_) {
    put_string(t.name);
    put_u32(uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put_u64(uint64_t(d));
    put_u32(uint32_t(t.type));
    put_u64(t.offset);
  }
  write_raw(kv_.data(), kv_.size());
  pad_to_alignment(kv_.size());
  kv_.clear();
  kv_.shrink_to_fit();
}

void GgufWriter::begin_tensor(const std::string& name) {
  if (finished_) fail_here("tensor '" + name + "' written after finish()");
  if (in_tensor_) fail_here("tensor '" + name + "' begun before '" + tensors_[current_].name + "' ended");
  if (current_ >= tensors_.size()) fail_here("tensor '" + name + "' was not declared");
  if (tensors_[current_].name != name)
    fail_here("tensor '" + name + "' written out of order: '" + tensors_[current_].name + "' is next");
  if (!header_written_) write_header();
  in_tensor_ = true;
  current_written_ = 0;
}

void GgufWriter::write(const void* data, size_t bytes) {
  if (!in_tensor_) fail_here("tensor data written outside begin_tensor/end_tensor");
  const TensorInfo& t = tensors_[current_];
  if (current_written_ + bytes > t.bytes)
    fail_here("tensor '" + t.name + "': more than its " + std::to_string(t.bytes) + " bytes written");
  write_raw(data, bytes);
  current_written_ += bytes;
}

void GgufWriter::end_tensor() {
  if (!in_tensor_) fail_here("end_tensor without begin_tensor");
  const TensorInfo& t = tensors_[current_];
  if (current_written_ != t.bytes)
    fail_here("tensor '" + t.name + "': " + std::to_string(current_written_) + " bytes written, expected " +
              std::to_string(t.bytes));
  pad_to_alignment(t.bytes);
  in_tensor_ = false;
  ++current_;
}

void GgufWriter::finish() {
  if (in_tensor_) fail_here("finish() while tensor '" + tensors_[current_].name + "' is being written");
  if (current_ != tensors_.size())
    fail_here("finish() before tensor '" + tensors_[current_].name + "' was written");
  if (!header_written_) write_header();  // a file of metadata only
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) fail(tmp_path_, ": write failed: ", std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) fail(tmp_path_, ": cannot rename to ", path_, ": ", ec.message());
  finished_ = true;
}

}  // namespace medlab
