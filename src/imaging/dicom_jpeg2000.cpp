// JPEG 2000 frames (DCMTK 3.6 has no free JPEG 2000 codec): DCMTK finds the fragments, OpenJPEG decodes.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <openjpeg.h>

#include <cstring>
#include <memory>
#include <string>

#include "core/error.h"
#include "imaging/dicom_internal.h"

namespace medlab::dicom {
namespace {

struct Fragment {
  const uint8_t* data;
  size_t size;
  uint64_t offset;  // from the first fragment's item tag, as the Basic Offset Table counts
};

bool starts_codestream(const Fragment& f) {
  static const uint8_t j2k[] = {0xFF, 0x4F, 0xFF, 0x51};
  static const uint8_t jp2[] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50};
  return (f.size >= 4 && std::memcmp(f.data, j2k, 4) == 0) || (f.size >= 6 && std::memcmp(f.data, jp2, 6) == 0);
}

// Groups the fragments into frames: one frame, one fragment each, the offset table, or codestream starts.
std::vector<std::string> frame_codestreams(DcmDataset& dataset, const DicomHeader& h) {
  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) fail(h.file_name, ": (7FE0,0010) Pixel Data is missing");
  auto* pixel_data = dynamic_cast<DcmPixelData*>(element);
  DcmPixelSequence* sequence = nullptr;
  if (!pixel_data || pixel_data->getEncapsulatedRepresentation(dataset.getOriginalXfer(), nullptr, sequence).bad() || !sequence) {
    fail(h.file_name, ": (7FE0,0010) Pixel Data is not encapsulated as its transfer syntax requires");
  }
  std::vector<uint32_t> offsets;
  std::vector<Fragment> fragments;
  uint64_t offset = 0;
  for (unsigned long i = 0; i < sequence->card(); ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (sequence->getItem(item, i).bad() || item->getUint8Array(data).bad()) {
      fail(h.file_name, ": (7FE0,0010) Pixel Data fragment ", i, " cannot be read (truncated file?)");
    }
    const size_t size = item->getLength();
    if (i == 0) {
      for (size_t k = 0; k + 4 <= size; k += 4) {
        uint32_t v;
        std::memcpy(&v, data + k, 4);
        offsets.push_back(v);
      }
      continue;
    }
    fragments.push_back({data, size, offset});
    offset += 8 + size;
  }
  if (fragments.empty()) fail(h.file_name, ": (7FE0,0010) Pixel Data has no fragments");
  std::vector<std::string> frames;
  const auto append = [&](const Fragment& f) { frames.back().append(reinterpret_cast<const char*>(f.data), f.size); };
  if (h.frames == 1 || fragments.size() == h.frames) {
    for (const Fragment& f : fragments) {
      if (frames.empty() || h.frames != 1) frames.emplace_back();
      append(f);
    }
  } else if (offsets.size() == h.frames) {
    size_t next = 0;
    for (const Fragment& f : fragments) {
      while (next < offsets.size() && f.offset >= offsets[next]) {
        frames.emplace_back();
        ++next;
      }
      if (frames.empty()) fail(h.file_name, ": (7FE0,0010) Basic Offset Table does not start at the first fragment");
      append(f);
    }
  } else {
    for (const Fragment& f : fragments) {
      if (frames.empty() || starts_codestream(f)) frames.emplace_back();
      append(f);
    }
  }
  if (frames.size() != h.frames) {
    fail(h.file_name, ": (7FE0,0010) Pixel Data holds ", frames.size(), " JPEG 2000 frames, (0028,0008) says ", h.frames);
  }
  return frames;
}

struct Source {
  const std::string* bytes;
  size_t pos = 0;
};

OPJ_SIZE_T read_source(void* buffer, OPJ_SIZE_T n, void* user) {
  auto* s = static_cast<Source*>(user);
  const size_t left = s->bytes->size() - s->pos;
  if (left == 0) return OPJ_SIZE_T(-1);
  n = std::min<OPJ_SIZE_T>(n, left);
  std::memcpy(buffer, s->bytes->data() + s->pos, n);
  s->pos += n;
  return n;
}

OPJ_OFF_T skip_source(OPJ_OFF_T n, void* user) {
  auto* s = static_cast<Source*>(user);
  const OPJ_OFF_T target = std::clamp<OPJ_OFF_T>(OPJ_OFF_T(s->pos) + n, 0, OPJ_OFF_T(s->bytes->size()));
  const OPJ_OFF_T moved = target - OPJ_OFF_T(s->pos);
  s->pos = size_t(target);
  return moved;
}

OPJ_BOOL seek_source(OPJ_OFF_T n, void* user) {
  auto* s = static_cast<Source*>(user);
  if (n < 0 || size_t(n) > s->bytes->size()) return OPJ_FALSE;
  s->pos = size_t(n);
  return OPJ_TRUE;
}

void keep_message(const char* message, void* user) {
  auto* last = static_cast<std::string*>(user);
  *last = message;
  while (!last->empty() && last->back() == '\n') last->pop_back();
}

// Decodes one codestream into `out` at frame `frame`.
void decode_frame(const std::string& code, const DicomHeader& h, uint32_t frame, PixelData& out) {
  const bool jp2 = code.size() >= 6 && static_cast<uint8_t>(code[4]) == 0x6A;
  using Codec = std::unique_ptr<opj_codec_t, decltype(&opj_destroy_codec)>;
  using Stream = std::unique_ptr<opj_stream_t, decltype(&opj_stream_destroy)>;
  using Image = std::unique_ptr<opj_image_t, decltype(&opj_image_destroy)>;
  Codec codec(opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K), opj_destroy_codec);
  std::string error = "unknown error";
  opj_set_error_handler(codec.get(), keep_message, &error);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  Source source{&code};
  Stream stream(opj_stream_default_create(OPJ_TRUE), opj_stream_destroy);
  opj_stream_set_user_data(stream.get(), &source, nullptr);
  opj_stream_set_user_data_length(stream.get(), code.size());
  opj_stream_set_read_function(stream.get(), read_source);
  opj_stream_set_skip_function(stream.get(), skip_source);
  opj_stream_set_seek_function(stream.get(), seek_source);
  opj_image_t* raw = nullptr;
  if (!opj_setup_decoder(codec.get(), &parameters) || !opj_read_header(stream.get(), codec.get(), &raw)) {
    fail(h.file_name, ": JPEG 2000 frame ", frame + 1, " has a bad header: ", error);
  }
  Image image(raw, opj_image_destroy);
  if (!opj_decode(codec.get(), stream.get(), image.get()) || !opj_end_decompress(codec.get(), stream.get())) {
    fail(h.file_name, ": JPEG 2000 frame ", frame + 1, " does not decode: ", error);
  }
  if (image->numcomps != h.samples_per_pixel) {
    fail(h.file_name, ": JPEG 2000 frame ", frame + 1, " has ", image->numcomps, " components, (0028,0002) Samples per Pixel is ",
         h.samples_per_pixel);
  }
  const size_t pixels = size_t(h.rows) * h.columns;
  const size_t b = size_t(out.bytes_per_sample);
  for (uint32_t c = 0; c < image->numcomps; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    if (comp.w != h.columns || comp.h != h.rows || comp.data == nullptr) {
      fail(h.file_name, ": JPEG 2000 frame ", frame + 1, " is ", comp.w, " x ", comp.h, ", (0028,0011) x (0028,0010) say ",
           h.columns, " x ", h.rows);
    }
    uint8_t* dst = out.bytes.data() + (size_t(frame) * pixels * h.samples_per_pixel + c) * b;
    for (size_t i = 0; i < pixels; ++i, dst += h.samples_per_pixel * b) {
      const uint32_t v = uint32_t(comp.data[i]);  // two's complement bits; masked to Bits Stored on access
      std::memcpy(dst, &v, b);
    }
  }
}

}  // namespace

void decode_jpeg2000(DcmDataset& dataset, const DicomHeader& h, PixelData& out) {
  const std::vector<std::string> frames = frame_codestreams(dataset, h);
  out.bytes.assign(size_t(h.rows) * h.columns * h.samples_per_pixel * h.frames * out.bytes_per_sample, 0);
  for (uint32_t f = 0; f < h.frames; ++f) decode_frame(frames[f], h, f, out);
}

}  // namespace medlab::dicom
