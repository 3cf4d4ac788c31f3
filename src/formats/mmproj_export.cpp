#include "formats/mmproj_export.h"

#include <array>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf_names.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;

// The preprocessor's normalisation, which clip.cpp applies from the mmproj's keys. transformers'
// Gemma3ImageProcessor defaults to mean = std = 0.5 when the folder has no preprocessor_config.json.
struct Normalisation {
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};
};

Normalisation read_normalisation(const fs::path& dir) {
  Normalisation n;
  const fs::path path = dir / "preprocessor_config.json";
  std::ifstream in(path);
  if (!in) return n;
  const std::string where = path.string();
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON: ", e.what());
  }
  const auto read = [&](const char* key, std::array<float, 3>& out) {
    if (!config.contains(key)) return;
    const nlohmann::json& v = config.at(key);
    if (v.is_number()) {
      out.fill(v.get<float>());  // the processor also takes one value for all channels
      return;
    }
    if (!v.is_array() || v.size() != 3 || !v[0].is_number() || !v[1].is_number() || !v[2].is_number())
      fail(where, ": ", key, " must be a number or a list of 3 numbers (one per RGB channel)");
    for (size_t c = 0; c < 3; ++c) out[c] = v[c].get<float>();
  };
  read("image_mean", n.mean);
  read("image_std", n.std);
  for (float s : n.std)
    if (!(s > 0)) fail(where, ": image_std must be positive");
  return n;
}

// Gemma 3 average-pools the patch grid with a square kernel down to mm_tokens_per_image tokens; clip.cpp
// reads that kernel from clip.vision.projector.scale_factor (4 when absent: 64x64 patches -> 16x16).
// parse_model_config has checked that the grids divide evenly.
uint32_t pooling_kernel(const ModelConfig& c) {
  const int64_t patches_per_side = c.vision->image_size / c.vision->patch_size;
  const auto tokens_per_side = int64_t(std::llround(std::sqrt(double(c.mm_tokens_per_image))));
  return uint32_t(patches_per_side / tokens_per_side);
}

// The type of one mmproj tensor, following llama.cpp's converter: 1-D tensors f32; the embeddings f32;
// the input projection f16 unless all is f32, since clip.cpp transposes it with ggml_cont, which
// quantized types do not support; a matrix whose rows are not whole Q8_0 blocks f16.
GgufType tensor_type(const std::string& gguf_name, const std::vector<int64_t>& ne, GgufType matrix_type) {
  if (ne.size() == 1 || matrix_type == GgufType::F32) return GgufType::F32;
  if (gguf_name == "v.patch_embd.weight" || gguf_name == "v.position_embd.weight") return GgufType::F32;
  if (gguf_name == "mm.input_projection.weight") return GgufType::F16;
  if (matrix_type == GgufType::Q8_0 && ne[0] % kQ8Block != 0) return GgufType::F16;
  return matrix_type;
}

std::vector<GgufPlannedTensor> plan_tensors(const Checkpoint& ck, GgufType matrix_type) {
  std::vector<GgufPlannedTensor> plan;
  const auto add = [&](std::string gguf_name, const TensorView& view, const std::string& source_name, float shift) {
    std::vector<int64_t> ne(view.shape.rbegin(), view.shape.rend());  // GGUF lists the row length first
    const GgufType type = tensor_type(gguf_name, ne, matrix_type);
    plan.push_back({std::move(gguf_name), view, source_name, shift, type, std::move(ne)});
  };
  for (const GgufTensorName& n : gguf_mmproj_names(*ck.config().vision)) {
    const bool vision = n.part == TensorSpec::Part::Vision;
    add(n.gguf, vision ? ck.vision(n.hf) : ck.projector(n.hf),
        (vision ? ck.layout().vision : ck.layout().projector) + n.hf,
        n.gemma_norm && !ck.norms_include_one() ? 1.0f : 0.0f);
  }
  return plan;
}

void add_metadata(GgufWriter& w, const Checkpoint& ck, const GgufExportOptions& options, GgufType type,
                  uint32_t kernel, const Normalisation& norm) {
  const ModelConfig& c = ck.config();
  const VisionConfig& v = *c.vision;
  const std::string name = options.name.empty() ? ck.dir().filename().string() : options.name;
  w.add_string("general.architecture", "clip");
  w.add_string("general.name", name);
  w.add_u32("general.file_type", gguf_file_type(type));
  w.add_u32("general.alignment", GgufWriter::kAlignment);
  w.add_bool("clip.has_vision_encoder", true);
  w.add_string("clip.projector_type", "gemma3");
  w.add_u32("clip.vision.image_size", uint32_t(v.image_size));
  w.add_u32("clip.vision.patch_size", uint32_t(v.patch_size));
  w.add_u32("clip.vision.embedding_length", uint32_t(v.hidden_size));
  w.add_u32("clip.vision.feed_forward_length", uint32_t(v.intermediate_size));
  w.add_u32("clip.vision.block_count", uint32_t(v.num_hidden_layers));
  w.add_u32("clip.vision.attention.head_count", uint32_t(v.num_attention_heads));
  w.add_f32("clip.vision.attention.layer_norm_epsilon", float(v.layer_norm_eps));
  w.add_u32("clip.vision.projection_dim", uint32_t(c.text.hidden_size));  // mtmd checks it against the text model
  w.add_f32s("clip.vision.image_mean", {norm.mean.begin(), norm.mean.end()});
  w.add_f32s("clip.vision.image_std", {norm.std.begin(), norm.std.end()});
  w.add_bool("clip.use_gelu", true);  // SigLIP's gelu_pytorch_tanh; without the key clip.cpp uses quick GELU
  // llama.cpp's converter writes the kernel only when it is not 4; always writing it says the same.
  w.add_u32("clip.vision.projector.scale_factor", kernel);
}

}  // namespace

MmprojExportSummary export_mmproj(const Checkpoint& ck, const std::string& out_path, const GgufExportOptions& options,
                                  const GgufProgress& progress) {
  const ModelConfig& c = ck.config();
  const std::string where = (ck.dir() / "config.json").string();
  if (!c.multimodal())
    fail(where, ": ", c.architecture, " has no vision tower; an mmproj needs a Gemma3ForConditionalGeneration model");
  const VisionConfig& v = *c.vision;
  if (v.num_channels != 3) fail(where, ": vision_config.num_channels is ", v.num_channels, "; clip.cpp takes RGB");
  if (v.num_attention_heads <= 0 || v.hidden_size % v.num_attention_heads != 0)
    fail(where, ": vision_config.hidden_size ", v.hidden_size, " does not split into ", v.num_attention_heads, " heads");
  const uint32_t kernel = pooling_kernel(c);
  const Normalisation norm = read_normalisation(ck.dir());

  const GgufType type = options.type.value_or(gguf_type_of(ck.vision("embeddings.patch_embedding.weight").dtype));
  const std::vector<GgufPlannedTensor> plan = plan_tensors(ck, type);

  GgufWriter w(out_path);
  add_metadata(w, ck, options, type, kernel, norm);
  write_gguf_tensors(w, plan, progress);
  w.finish();
  return {type, plan.size(), w.data_bytes(), c.mm_tokens_per_image};
}

}  // namespace medlab
