// safetensors files: a little-endian u64 header length, a JSON header, then raw tensor bytes.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace medlab {

// A U8 tensor: raw bytes, as bitsandbytes stores packed 4-bit codes and quantization state.
struct ByteTensor {
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  uint64_t size = 0;  // bytes = elements
};

// One mapped .safetensors file whose header has been checked against the file: every dtype known,
// every offset pair inside the data area, byte counts equal to the shapes, no overlaps.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws Error naming the path and tensor
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }  // f32, f16, bf16
  const std::map<std::string, ByteTensor>& byte_tensors() const { return byte_tensors_; }  // U8
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_.path(); }
  const MappedFile& mapping() const { return file_; }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, ByteTensor> byte_tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // nbytes = numel * element size
  bool u8 = false;   // written as U8, one byte per element (dtype unused)
};

// Writes a safetensors file tensor by tensor, so a model larger than memory can be written: the header
// (all names, dtypes and shapes) goes first, then each tensor's bytes, in order, in one or more chunks.
class SafetensorsWriter {
 public:
  // `tensors` gives the names, dtypes and shapes; their `data` is not used.
  SafetensorsWriter(const std::string& path, const std::vector<TensorToWrite>& tensors,
                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  void append(const void* bytes, size_t n);  // the next n bytes of tensor data
  void finish();                             // throws unless exactly all tensor bytes were appended

 private:
  std::string temp_path() const;

  std::string path_;
  std::FILE* out_ = nullptr;
  uint64_t expected_ = 0;
  uint64_t written_ = 0;
};

// Writes tensors in the order given, with an optional __metadata__ block (as PyTorch writes {"format": "pt"}).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace medlab
