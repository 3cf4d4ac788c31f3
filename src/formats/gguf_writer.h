// A writer for GGUF v3, the file format of llama.cpp / ggml: key-value metadata, tensor infos, then the
// tensor data, each piece aligned to `general.alignment` bytes. Metadata and tensor infos are collected
// in memory; tensor data is streamed to disk in declaration order, so a converter never holds more than
// the chunk it is writing. The file appears under its final name only once finish() succeeds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace medlab {

// ggml's element types that medlab writes, with ggml's numeric codes. Q5_0 and Q5_1 appear only where
// llama-quantize's rules fall back to them (rows that are not whole 256-value K-quant blocks); medlab
// writes them for llama.cpp but does not read them.
enum class GgufType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30
};

std::string_view gguf_type_name(GgufType type);  // "f32", "q4_k", ...
// The inverse, for the types a user may ask for (all but q5_0 and q5_1); throws Error listing them.
GgufType parse_gguf_type(std::string_view name);

int64_t gguf_block_elements(GgufType type);  // 1 for f32/f16/bf16
size_t gguf_block_bytes(GgufType type);

// Q8_0: blocks of 32 values, an f16 scale and 32 int8s.
inline constexpr int64_t kQ8Block = 32;
inline constexpr size_t kQ8BlockBytes = 2 + kQ8Block;

// Encodes n values (a whole number of blocks) as `type` at `out`, byte for byte as llama.cpp's reference
// quantizers do (what llama-quantize runs without an importance matrix).
void gguf_encode_row(GgufType type, const float* x, int64_t n, uint8_t* out);

// Bytes of a tensor of `type` with dimensions `ne`, innermost (row length) first as GGUF lists them.
// Throws Error naming `name` if the row length is not a whole number of blocks.
uint64_t gguf_tensor_bytes(GgufType type, const std::vector<int64_t>& ne, const std::string& name);

class GgufWriter {
 public:
  static constexpr uint32_t kAlignment = 32;  // GGUF's default, also written as general.alignment

  explicit GgufWriter(std::string path);
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;
  ~GgufWriter();  // an unfinished file is removed

  // Metadata; each key once.
  void add_u32(const std::string& key, uint32_t value);
  void add_i32(const std::string& key, int32_t value);
  void add_u64(const std::string& key, uint64_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string(const std::string& key, std::string_view value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);

  // Declares a tensor; all are declared before the first begin_tensor().
  void add_tensor(const std::string& name, GgufType type, std::vector<int64_t> ne);

  // Tensor data, one tensor at a time in declaration order: begin_tensor, one or more write, end_tensor.
  // The first begin_tensor writes the header.
  void begin_tensor(const std::string& name);
  void write(const void* data, size_t bytes);
  void end_tensor();

  // Checks every tensor was written, flushes, and renames the temporary file to `path`.
  void finish();

  uint64_t data_bytes() const { return data_size_; }  // tensor data, padding included

 private:
  struct TensorInfo {
    std::string name;
    GgufType type;
    std::vector<int64_t> ne;
    uint64_t offset;  // from the start of the data section
    uint64_t bytes;
  };

  void begin_kv(const std::string& key, uint32_t type);
  void put_u32(uint32_t v);
  void put_u64(uint64_t v);
  void put_string(std::string_view s);
  void write_header();
  void write_raw(const void* data, size_t bytes);
  void pad_to_alignment(uint64_t written);
  [[noreturn]] void fail_here(const std::string& what) const;

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  std::vector<uint8_t> kv_;  // serialized key-value pairs
  uint64_t kv_count_ = 0;
  std::set<std::string> keys_;
  std::vector<TensorInfo> tensors_;
  std::set<std::string> tensor_names_;
  uint64_t data_size_ = 0;
  bool header_written_ = false;
  size_t current_ = 0;         // index of the tensor being written, or next to be
  bool in_tensor_ = false;
  uint64_t current_written_ = 0;
  bool finished_ = false;
};

}  // namespace medlab
