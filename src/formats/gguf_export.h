// Gemma 3 checkpoint -> GGUF in llama.cpp's "gemma3" layout: the text model's weights (vision tensors
// are left out; they belong in a separate mmproj file), its hyper-parameters under the keys llama.cpp
// reads, and the tokenizer as a SentencePiece-style ("llama") vocabulary built from tokenizer.json.
// The embedding keeps only the rows the tokenizer has ids for (262145 of MedGemma's 262208), as
// llama.cpp's converter trims it; medlab's decoder likewise scores only those ids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/checkpoint.h"
#include "formats/gguf_writer.h"

namespace medlab {

// llama.cpp's token types (llama_token_type).
enum class GgufTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// The vocabulary as llama.cpp's SentencePiece tokenizer takes it. llama.cpp merges the adjacent pair
// whose concatenation is a token with the highest score; Hugging Face's BPE merges the pair with the
// lowest merge rank. A token's score is therefore minus the rank of the first merge that produces it,
// so both pick the same merges. It has one entry per id up to the tokenizer's largest (262145 for
// Gemma 3: 262144 pieces and <image_soft_token>); an id in between that the tokenizer leaves unused
// becomes an unused "[PADn]" token, as llama.cpp's converter names them.
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // GgufTokenType values
  uint32_t bos = 0, eos = 0, unk = 0, pad = 0;
  bool add_bos = true, add_eos = false;
  std::string chat_template;  // empty if the folder has none
};

// Reads tokenizer.json and, when present, tokenizer_config.json / chat_template.jinja from `dir`.
// `max_vocab` is the embedding's row count, which the tokenizer's ids must stay below.
GgufVocab gguf_vocab_from_tokenizer(const std::filesystem::path& dir, int64_t max_vocab);

struct GgufExportOptions {
  std::optional<GgufType> type;  // of the 2-D weights; unset: the checkpoint's own (bf16 for MedGemma)
  std::string name;              // general.name; empty: the model folder's name
  // With type q4_k or q5_k: llama-quantize's Q4_K_M / Q5_K_M mix (see gguf_matrix_type). Without it a
  // quantized type applies to every matrix, as `llama-quantize --pure` does.
  bool medium_mix = false;
};

struct GgufExportSummary {
  GgufType type;
  size_t tensors = 0;
  uint64_t bytes = 0;  // tensor data
  int64_t vocab = 0;
};

// Called after each tensor is written: (gguf tensor name, tensors done, tensors in all).
using GgufProgress = std::function<void(const std::string&, size_t, size_t)>;

// Building blocks shared with the mmproj export (mmproj_export.h).

// One checkpoint tensor on its way into a GGUF: converted to `type`, `shift` added to every element.
struct GgufPlannedTensor {
  std::string gguf_name;
  TensorView source;
  std::string source_name;  // the checkpoint's full name, for errors
  float shift = 0;          // 1 for Gemma's RMSNorm weights, which scale by 1 + w where llama.cpp scales by w
  GgufType type;
  std::vector<int64_t> ne;  // the source's shape reversed: row length first
};

// Declares the tensors, then streams each one's data (after the caller's metadata).
void write_gguf_tensors(GgufWriter& w, const std::vector<GgufPlannedTensor>& plan, const GgufProgress& progress);
uint32_t gguf_file_type(GgufType type, bool medium_mix = false);  // llama_ftype, for general.file_type
GgufType gguf_type_of(DType dtype);  // the GGUF type that stores a dtype unchanged; throws for nf4 and q8_k

// The type of the text matrix `gguf_name` (row length first in ne) when `base` is asked for, as
// llama-quantize chooses it for Gemma 3 without an importance matrix. With medium_mix (Q4_K_M, Q5_K_M):
// token_embd, which is also the output, q6_k; attn_v and ffn_down q6_k in the first and last eighth of
// the layers and every third layer between. Then, for rows that are not whole blocks, llama-quantize's
// fallbacks: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, and f16 if those do not fit either.
GgufType gguf_matrix_type(const std::string& gguf_name, int64_t row_length, int64_t n_layers, GgufType base,
                          bool medium_mix);

// Writes `out_path`. Throws Error naming the key, tensor or file when the model cannot be expressed
// in llama.cpp's gemma3 layout (e.g. a query scale llama.cpp would not apply).
GgufExportSummary export_gguf(const Checkpoint& checkpoint, const std::string& out_path,
                              const GgufExportOptions& options, const GgufProgress& progress = {});

}  // namespace medlab
