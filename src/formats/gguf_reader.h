// A reader for GGUF v3 files (llama.cpp / ggml): the file is mapped, and its header, metadata and
// tensor infos are checked against the file before anything is used: magic and version, counts and
// string lengths within the bytes that remain, known value types, a power-of-two general.alignment,
// tensors of a type medlab computes with, 1 to 4 positive dimensions, byte sizes that follow from
// type and shape, data offsets aligned, inside the file and not overlapping. Every error names the
// file and the key or tensor at fault. Tensor data is used in place from the map.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace medlab {

// One metadata value. Integers are kept as int64 (u64 values above INT64_MAX are refused), floats as
// double; arrays hold one element type (arrays of arrays are refused).
struct GgufValue {
  enum class Kind { Integer, Float, Bool, String, Array } kind = Kind::Integer;
  uint32_t type = 0;          // GGUF's value type code, for messages
  uint32_t element_type = 0;  // arrays: the elements' type code
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<int64_t> integers;  // arrays of integers or bools
  std::vector<double> numbers;    // arrays of floats
  std::vector<std::string> strings;
};

struct GgufTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> ne;  // GGUF order: row length first
  uint64_t offset = 0;      // from the start of the data section
  uint64_t bytes = 0;
  const void* data = nullptr;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // maps and validates; throws Error naming path and key/tensor

  const std::string& path() const { return file_.path(); }
  const MappedFile& mapping() const { return file_; }
  uint32_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order

  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed reads; each throws Error naming the file and key when it is missing or of another kind.
  int64_t integer(const std::string& key) const;  // any integer type
  std::optional<int64_t> optional_integer(const std::string& key) const;
  uint32_t u32(const std::string& key) const;  // any integer type, value in 0..2^32-1
  double number(const std::string& key) const;  // f32 or f64
  std::optional<double> optional_number(const std::string& key) const;
  bool boolean(const std::string& key, bool fallback) const;
  const std::string& string(const std::string& key) const;
  const std::vector<std::string>& strings(const std::string& key) const;
  const std::vector<double>& numbers(const std::string& key) const;   // array of f32/f64
  const std::vector<int64_t>& integers(const std::string& key) const;  // array of integers
  const GgufTensor* find_tensor(const std::string& name) const;

 private:
  const GgufValue& value(const std::string& key) const;

  MappedFile file_;
  uint32_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// ggml's name of a tensor type code ("q4_1", "iq2_xxs"), or "type N" for a code ggml does not define.
std::string ggml_type_name(uint32_t code);

}  // namespace medlab
