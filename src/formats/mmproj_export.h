// Gemma 3's vision tower and projector -> llama.cpp's multimodal projector ("mmproj") GGUF, the file its
// mtmd library loads beside the text model (llama-mtmd-cli -m model.gguf --mmproj mmproj.gguf). The
// layout is that of llama.cpp's converter (convert_hf_to_gguf.py, Gemma3VisionModel): architecture
// "clip", projector type "gemma3", the SigLIP tower under v.*, the projector under mm.*.
#pragma once

#include <string>

#include "formats/checkpoint.h"
#include "formats/gguf_export.h"

namespace medlab {

struct MmprojExportSummary {
  GgufType type;  // of the vision tower's weight matrices
  size_t tensors = 0;
  uint64_t bytes = 0;         // tensor data
  int64_t tokens_per_image = 0;
};

// Writes `out_path` from a multimodal checkpoint. options.type as for export_gguf, except that, as in
// llama.cpp's converter, the patch and position embeddings stay f32 and the input projection is f16
// unless everything is f32 (clip.cpp transposes it, which it cannot do for quantized types); a matrix
// whose rows are not whole Q8_0 blocks falls back to f16. Throws Error naming the key or tensor when the
// model has no vision tower or a shape clip.cpp cannot express.
MmprojExportSummary export_mmproj(const Checkpoint& checkpoint, const std::string& out_path,
                                  const GgufExportOptions& options, const GgufProgress& progress = {});

}  // namespace medlab
