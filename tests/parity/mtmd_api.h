// The part of llama.cpp's multimodal library (libmtmd: tools/mtmd/mtmd.h, mtmd-helper.h) that
// llama_reference calls. @fugood/llama.node ships llama.h but not these headers, although its addon
// exports the functions, so they are declared here as that build defines them. The API changes often:
// the layouts below were checked against the addon's own code (mtmd_context_params_default writes 80
// bytes; mtmd_tokenize reads the text's length at offset 8 and its flags at 16 and 17;
// mtmd_helper_bitmap_init_from_file takes three arguments and returns two pointers), and the
// static_asserts keep them from drifting silently.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ggml-backend.h"
#include "llama.h"

extern "C" {

struct mtmd_context;
struct mtmd_bitmap;
struct mtmd_input_chunk;
struct mtmd_input_chunks;
struct mtmd_image_tokens;

enum mtmd_input_chunk_type {
  MTMD_INPUT_CHUNK_TYPE_TEXT,
  MTMD_INPUT_CHUNK_TYPE_IMAGE,
  MTMD_INPUT_CHUNK_TYPE_AUDIO,
};

struct mtmd_context_params {
  bool use_gpu;
  bool print_timings;
  int n_threads;
  const char* image_marker;  // deprecated
  const char* media_marker;
  enum llama_flash_attn_type flash_attn_type;
  bool warmup;
  int image_min_tokens;
  int image_max_tokens;
  ggml_backend_sched_eval_callback cb_eval;
  void* cb_eval_user_data;
  int32_t batch_max_tokens;
  bool (*progress_callback)(float progress, void* user_data);
  void* progress_callback_user_data;
};
static_assert(sizeof(mtmd_context_params) == 80, "mtmd_context_params no longer matches the addon's");

struct mtmd_input_text {
  const char* text;
  size_t text_len;
  bool add_special;
  bool parse_special;
};
static_assert(sizeof(mtmd_input_text) == 24, "mtmd_input_text no longer matches the addon's");

struct mtmd_helper_bitmap_wrapper {
  mtmd_bitmap* bitmap;
  void* video_ctx;  // set only for videos
};

const char* mtmd_default_marker(void);
mtmd_context_params mtmd_context_params_default(void);
mtmd_context* mtmd_init_from_file(const char* mmproj_fname, const llama_model* text_model, mtmd_context_params params);
void mtmd_free(mtmd_context* ctx);
bool mtmd_support_vision(const mtmd_context* ctx);
bool mtmd_decode_use_non_causal(const mtmd_context* ctx, const mtmd_input_chunk* chunk);

uint32_t mtmd_bitmap_get_nx(const mtmd_bitmap* bitmap);
uint32_t mtmd_bitmap_get_ny(const mtmd_bitmap* bitmap);
void mtmd_bitmap_free(mtmd_bitmap* bitmap);

mtmd_input_chunks* mtmd_input_chunks_init(void);
size_t mtmd_input_chunks_size(const mtmd_input_chunks* chunks);
const mtmd_input_chunk* mtmd_input_chunks_get(const mtmd_input_chunks* chunks, size_t idx);
void mtmd_input_chunks_free(mtmd_input_chunks* chunks);
enum mtmd_input_chunk_type mtmd_input_chunk_get_type(const mtmd_input_chunk* chunk);
const llama_token* mtmd_input_chunk_get_tokens_text(const mtmd_input_chunk* chunk, size_t* n_tokens);
size_t mtmd_input_chunk_get_n_tokens(const mtmd_input_chunk* chunk);

// 0: success, 1: bitmap count differs from marker count, 2: image preprocessing failed.
int32_t mtmd_tokenize(mtmd_context* ctx, mtmd_input_chunks* output, const mtmd_input_text* text,
                      const mtmd_bitmap** bitmaps, size_t n_bitmaps);

void mtmd_helper_log_set(ggml_log_callback log_callback, void* user_data);
mtmd_helper_bitmap_wrapper mtmd_helper_bitmap_init_from_file(mtmd_context* ctx, const char* fname, bool placeholder);
// Decodes text chunks and encodes + decodes image chunks (non-causally where the model asks for it).
int32_t mtmd_helper_eval_chunks(mtmd_context* ctx, llama_context* lctx, const mtmd_input_chunks* chunks,
                                llama_pos n_past, llama_seq_id seq_id, int32_t n_batch, bool logits_last,
                                llama_pos* new_n_past);

}  // extern "C"
