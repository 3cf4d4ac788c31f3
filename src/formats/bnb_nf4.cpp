#include "formats/bnb_nf4.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant.h"

namespace medlab {
namespace {

using nlohmann::json;

constexpr const char* kStateSuffix = ".quant_state.bitsandbytes__nf4";

// bitsandbytes' signed 8-bit dynamic map (create_dynamic_map): for exponents 10^-6 .. 10^0, 2^i
// evenly spaced fractions in [0.1, 1] of each sign, plus 0 and 1, sorted.
std::vector<float> dynamic_map() {
  std::vector<float> map = {0.0f, 1.0f};
  for (int i = 0; i < 7; ++i) {
    const int n = (1 << i) + 1;  // boundaries
    const float scale = std::pow(10.0f, float(i - 6));
    for (int j = 0; j + 1 < n; ++j) {
      const float lo = 0.1f + 0.9f * float(j) / float(n - 1), hi = 0.1f + 0.9f * float(j + 1) / float(n - 1);
      map.push_back(scale * (lo + hi) / 2);
      map.push_back(-scale * (lo + hi) / 2);
    }
  }
  std::sort(map.begin(), map.end());
  return map;
}

json read_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open");
  return json::parse(in, nullptr, false);
}

// A float part (F32, F16 or BF16) of the weight `base`, checked to hold `n` values.
std::vector<float> float_part(std::map<std::string, TensorView>& tensors, const std::string& base,
                              const std::string& part, int64_t n) {
  const auto it = tensors.find(base + "." + part);
  if (it == tensors.end()) fail("tensor ", base, ": bitsandbytes part '", base, ".", part, "' is missing");
  if (it->second.numel() != n)
    fail("tensor ", base, ".", part, ": has ", it->second.numel(), " values, expected ", n);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = element_f32(it->second, i);
  tensors.erase(it);
  return v;
}

ByteTensor byte_part(std::map<std::string, ByteTensor>& bytes, const std::string& name, const std::string& base) {
  const auto it = bytes.find(name);
  if (it == bytes.end()) fail("tensor ", base, ": bitsandbytes part '", name, "' (U8) is missing");
  ByteTensor t = it->second;
  bytes.erase(it);
  return t;
}

int64_t int_field(const json& state, const char* key, const std::string& where) {
  if (!state.contains(key) || !state.at(key).is_number_integer() || state.at(key).get<int64_t>() <= 0)
    fail(where, ": \"", key, "\" must be a positive integer");
  return state.at(key).get<int64_t>();
}

JoinedTensor join_one(const std::string& base, std::map<std::string, TensorView>& tensors,
                      std::map<std::string, ByteTensor>& bytes) {
  const std::string state_name = base + kStateSuffix;
  const ByteTensor state_bytes = byte_part(bytes, state_name, base);
  const json state = json::parse(state_bytes.data, state_bytes.data + state_bytes.size, nullptr, false);
  if (!state.is_object()) fail("tensor ", state_name, ": not a JSON object");
  if (state.value("quant_type", "") != "nf4")
    fail("tensor ", state_name, ": quant_type is '", state.value("quant_type", ""), "', expected nf4");
  if (!state.contains("shape") || !state.at("shape").is_array() || state.at("shape").size() != 2)
    fail("tensor ", state_name, ": \"shape\" must be the two dimensions of the weight");
  std::vector<int64_t> shape;
  for (const json& d : state.at("shape")) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0) fail("tensor ", state_name, ": bad shape ", state.at("shape").dump());
    shape.push_back(d.get<int64_t>());
  }
  const int64_t numel = shape[0] * shape[1];
  const int64_t blocksize = int_field(state, "blocksize", "tensor " + state_name);
  // One bitsandbytes block covers whole 64-value NF4 blocks, which repeat its scale.
  if (blocksize % 64 != 0) fail("tensor ", state_name, ": blocksize ", blocksize, " is not a multiple of 64");
  if (numel % blocksize != 0)
    fail("tensor ", base, ": ", numel, " weights are not a whole number of ", blocksize, "-weight blocks");
  const int64_t n_blocks = numel / blocksize;

  const ByteTensor codes = byte_part(bytes, base, base);
  if (int64_t(codes.size) != numel / 2)
    fail("tensor ", base, ": holds ", codes.size, " bytes of 4-bit codes, but shape ", shape_string(shape), " needs ",
         numel / 2);

  const std::vector<float> quant_map = float_part(tensors, base, "quant_map", 16);
  for (int i = 0; i < 16; ++i)
    if (std::fabs(quant_map[size_t(i)] - kNf4Levels[i]) > 1e-6f)
      fail("tensor ", base, ".quant_map: value ", i, " is ", quant_map[size_t(i)], ", not NF4's ", kNf4Levels[i]);

  std::vector<float> absmax;
  if (state.contains("nested_offset")) {  // double quantization: 8-bit absmax against a second scale
    if (!state.at("nested_offset").is_number()) fail("tensor ", state_name, ": \"nested_offset\" must be a number");
    const float offset = state.at("nested_offset").get<float>();
    const int64_t nested_blocksize = int_field(state, "nested_blocksize", "tensor " + state_name);
    const ByteTensor q = byte_part(bytes, base + ".absmax", base);
    if (int64_t(q.size) != n_blocks) fail("tensor ", base, ".absmax: has ", q.size, " codes, expected ", n_blocks);
    const std::vector<float> map = float_part(tensors, base, "nested_quant_map", 256);
    const std::vector<float> nested =
        float_part(tensors, base, "nested_absmax", (n_blocks + nested_blocksize - 1) / nested_blocksize);
    absmax.resize(size_t(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) {
      const float scaled = map[q.data[b]] * nested[size_t(b / nested_blocksize)];  // rounded before the offset, as bitsandbytes
      absmax[size_t(b)] = scaled + offset;
    }
  } else {
    absmax = float_part(tensors, base, "absmax", n_blocks);
  }

  const int64_t per_block = blocksize / 64;
  std::vector<uint8_t> storage(row_bytes(DType::NF4, numel));
  auto* blocks = reinterpret_cast<BlockNF4*>(storage.data());
  for (int64_t b = 0; b < numel / 64; ++b) {
    blocks[b].d = absmax[size_t(b / per_block)];
    std::memcpy(blocks[b].qs, codes.data + 32 * b, 32);  // bitsandbytes' nibble order is BlockNF4's
  }
  JoinedTensor joined{base, {DType::NF4, shape, storage.data()}, {}};
  joined.storage = std::move(storage);
  return joined;
}

}  // namespace

std::vector<JoinedTensor> join_bnb_nf4(std::map<std::string, TensorView>& tensors,
                                       std::map<std::string, ByteTensor>& bytes,
                                       const std::filesystem::path& config_path) {
  std::vector<std::string> bases;
  for (const auto& [name, t] : bytes)
    if (name.ends_with(kStateSuffix)) bases.push_back(name.substr(0, name.size() - std::strlen(kStateSuffix)));
  std::vector<JoinedTensor> joined;
  if (bases.empty() && bytes.empty()) return joined;

  const json config = read_config(config_path);
  const json q = config.is_object() ? config.value("quantization_config", json()) : json();
  if (!q.is_object() || q.value("quant_method", "") != "bitsandbytes" || !q.value("load_in_4bit", false) ||
      q.value("bnb_4bit_quant_type", "") != "nf4")
    fail(config_path.string(), ": the weights hold bitsandbytes 4-bit parts, but quantization_config does not declare "
         "quant_method bitsandbytes, load_in_4bit and bnb_4bit_quant_type nf4");
  for (const std::string& base : bases) joined.push_back(join_one(base, tensors, bytes));
  if (!bytes.empty())
    fail("tensor ", bytes.begin()->first, ": a U8 tensor that is not part of a bitsandbytes nf4 weight");
  return joined;
}

BnbNf4Parts bnb_nf4_quantize(const float* x, int64_t numel) {
  constexpr int64_t kNested = 256;
  const int64_t n_blocks = numel / 64;
  std::vector<BlockNF4> blocks(static_cast<size_t>(n_blocks));
  quantize_row(DType::NF4, x, blocks.data(), numel);

  BnbNf4Parts p;
  p.quant_map.assign(kNf4Levels, kNf4Levels + 16);
  p.nested_quant_map = dynamic_map();
  p.codes.resize(size_t(numel / 2));
  for (int64_t b = 0; b < n_blocks; ++b) std::memcpy(&p.codes[size_t(32 * b)], blocks[size_t(b)].qs, 32);
  // The absmax values, centred on their mean, in blocks of 256 scaled by their largest magnitude, each
  // to its nearest value in the dynamic map.
  double sum = 0;
  for (const BlockNF4& b : blocks) sum += b.d;
  p.nested_offset = float(sum / double(n_blocks));
  p.absmax.resize(size_t(n_blocks));
  for (int64_t first = 0; first < n_blocks; first += kNested) {
    const int64_t last = std::min(n_blocks, first + kNested);
    float amax = 0;
    for (int64_t b = first; b < last; ++b) amax = std::max(amax, std::fabs(blocks[size_t(b)].d - p.nested_offset));
    p.nested_absmax.push_back(amax);
    for (int64_t b = first; b < last; ++b) {
      const float v = amax > 0 ? (blocks[size_t(b)].d - p.nested_offset) / amax : 0.0f;
      const auto nearest = std::min_element(p.nested_quant_map.begin(), p.nested_quant_map.end(),
                                            [v](float a, float c) { return std::fabs(a - v) < std::fabs(c - v); });
      p.absmax[size_t(b)] = uint8_t(nearest - p.nested_quant_map.begin());
    }
  }
  return p;
}

std::string bnb_nf4_state_json(const std::vector<int64_t>& shape, const std::string& dtype, float nested_offset) {
  // The offset in a fixed width, so the JSON's length (and the safetensors header) is known before the
  // weights are drawn. bitsandbytes writes the same keys in this order with json.dumps.
  char offset[32];
  std::snprintf(offset, sizeof offset, "%.8e", double(nested_offset));
  return "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"" + dtype + "\", \"shape\": [" +
         std::to_string(shape[0]) + ", " + std::to_string(shape[1]) +
         "], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " + offset + "}";
}

}  // namespace medlab
