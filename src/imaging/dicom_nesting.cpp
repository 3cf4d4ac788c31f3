// DCMTK reads a sequence inside an item inside a sequence by recursion, one stack frame chain per level,
// so a few hundred kilobytes of nested empty items overflow the stack. This walks the element structure
// with an explicit stack first and refuses nesting no real object has, and values longer than the bytes
// left (DCMTK sizes a value's buffer from its claimed length before reading it). It follows what it can read
// without DCMTK: the meta header, then explicit or implicit VR, little or big endian, inflating a deflated
// dataset first. Bytes it cannot make sense of end the walk, and DCMTK's own checks take over.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

#include "core/error.h"
#include "imaging/dicom_internal.h"

namespace medlab::dicom {
namespace {

// Sequences and items open at once; enhanced multi-frame objects use 4, structured reports a few dozen.
constexpr size_t kMaxOpen = 128;
constexpr uint32_t kUndefined = 0xffffffff;
constexpr size_t kMaxInflatedBytes = size_t(256) << 20;

class Walker {
 public:
  Walker(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  void run() {
    size_t pos = 0;
    bool explicit_vr = true, big_endian = false;
    if (bytes_.size() >= 132 && std::memcmp(bytes_.data() + 128, "DICM", 4) == 0) {
      part10_ = true;
      pos = 132;
      std::string_view syntax;
      while (pos + 8 <= bytes_.size() && u16(pos, false) == 0x0002) {  // the meta header: explicit VR little endian
        const uint16_t element = u16(pos + 2, false);
        const size_t header = long_form(pos) ? 12 : 8;
        if (pos + header > bytes_.size()) return;
        const uint32_t length = header == 12 ? u32(pos + 8, false) : u16(pos + 6, false);
        if (length == kUndefined) return;
        if (length > bytes_.size() - pos - header)
          overrun("element " + tag(0x0002, element), length, bytes_.size() - pos - header);
        if (element == 0x0010)
          syntax = std::string_view(reinterpret_cast<const char*>(bytes_.data() + pos + header), length);
        pos += header + length;
      }
      while (!syntax.empty() && (syntax.back() == '\0' || syntax.back() == ' ')) syntax.remove_suffix(1);
      if (syntax == "1.2.840.10008.1.2.1.99") {  // deflated: walk what DCMTK will inflate as it reads
        const std::vector<uint8_t> inflated = inflate_dataset(bytes_.subspan(pos));
        Walker dataset(inflated, name_);
        dataset.part10_ = true;
        dataset.walk(0, true, false);
        return;
      }
      // DCMTK's JPEG codecs (baseline, extended, lossless) scan each frame's header for its bit depth.
      jpeg_ = syntax == "1.2.840.10008.1.2.4.50" || syntax == "1.2.840.10008.1.2.4.51" ||
              syntax == "1.2.840.10008.1.2.4.57" || syntax == "1.2.840.10008.1.2.4.70";
      explicit_vr = syntax != "1.2.840.10008.1.2";
      big_endian = syntax == "1.2.840.10008.1.2.2";
    } else {
      explicit_vr = bytes_.size() >= 6 && is_vr(4);  // a bare dataset: DCMTK guesses the same way
    }
    walk(pos, explicit_vr, big_endian);
  }

 private:
  struct Open {
    size_t end;      // SIZE_MAX: undefined length, closed by a delimiter
    bool fragments;  // encapsulated pixel data: its items are opaque bytes
    size_t items = 0;
  };

  void walk(size_t pos, bool explicit_vr, bool big_endian) {
    std::vector<Open> open;
    while (pos + 8 <= bytes_.size()) {
      while (!open.empty() && pos >= open.back().end) open.pop_back();
      const uint16_t group = u16(pos, big_endian), element = u16(pos + 2, big_endian);
      if (group == 0xfffe) {  // item, item delimiter, sequence delimiter: always a 4-byte length
        const uint32_t length = u32(pos + 4, big_endian);
        pos += 8;
        if (element == 0xe000 && length != kUndefined && length > bytes_.size() - pos)
          overrun("an item", length, bytes_.size() - pos);
        if (element == 0xe000) {
          if (!open.empty() && open.back().fragments) {
            if (length == kUndefined) return;
            // Item 0 is the offset table; item 1 starts the first frame.
            if (jpeg_ && ++open.back().items == 2) check_jpeg_header(bytes_.subspan(pos, length));
            pos += length;
          } else {
            push(open, {length == kUndefined ? SIZE_MAX : pos + length, false});
          }
        } else if (!open.empty() && open.back().end == SIZE_MAX) {
          open.pop_back();
        }
        continue;
      }
      size_t header = 8;
      uint32_t length = u32(pos + 4, big_endian);
      bool sequence = false;
      if (explicit_vr && is_vr(pos + 4)) {
        sequence = bytes_[pos + 4] == 'S' && bytes_[pos + 5] == 'Q';
        if (long_form(pos)) {
          header = 12;
          if (pos + 12 > bytes_.size()) return;
          length = u32(pos + 8, big_endian);
        } else {
          length = u16(pos + 6, big_endian);
        }
      }
      pos += header;
      // DCMTK allocates a value's buffer from its length before reading it: a claimed 4 GB in a 2 KB upload.
      if (length != kUndefined && length > bytes_.size() - pos)
        overrun("element " + tag(group, element), length, bytes_.size() - pos);
      if (length == kUndefined) {
        push(open, {SIZE_MAX, group == 0x7fe0 && element == 0x0010});
        continue;
      }
      // Implicit VR does not say which values are sequences; DCMTK's dictionary does. A value that
      // starts with an item tag is taken for one.
      if (!sequence && !explicit_vr && length >= 8 && pos + 4 <= bytes_.size())
        sequence = u16(pos, big_endian) == 0xfffe && u16(pos + 2, big_endian) == 0xe000;
      if (sequence) {
        push(open, {pos + length, false});
      } else {
        pos += length;
      }
    }
  }

  // Raw deflate, as Deflated Explicit VR Little Endian stores the dataset. A few kilobytes can inflate to
  // gigabytes; deflated objects are small documents in practice, so past the limit the file is refused.
  std::vector<uint8_t> inflate_dataset(std::span<const uint8_t> deflated) const {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail(name_, ": cannot start inflating the deflated dataset");
    z.next_in = const_cast<Bytef*>(deflated.data());
    z.avail_in = uInt(std::min<size_t>(deflated.size(), UINT32_MAX));
    std::vector<uint8_t> out;
    int status = Z_OK;
    while (status == Z_OK) {
      if (out.size() == kMaxInflatedBytes) {
        inflateEnd(&z);
        fail(name_, ": the deflated dataset inflates to more than ", kMaxInflatedBytes >> 20, " MiB, medlab's limit");
      }
      const size_t done = out.size();
      out.resize(std::min(kMaxInflatedBytes, std::max<size_t>(2 * done, 1 << 16)));
      z.next_out = out.data() + done;
      z.avail_out = uInt(out.size() - done);
      status = inflate(&z, Z_NO_FLUSH);
      out.resize(out.size() - z.avail_out);
      if (status == Z_BUF_ERROR && z.avail_in > 0) status = Z_OK;  // only the output was full
    }
    inflateEnd(&z);
    if (status != Z_STREAM_END) fail(name_, ": the deflated dataset is corrupt or truncated");
    return out;
  }

  // A JPEG frame starts with SOI, then segments whose lengths stay inside the fragment, up to a start of
  // frame. DCMTK's bit-depth scan never returns on some bytes that are not that (found by fuzzing).
  void check_jpeg_header(std::span<const uint8_t> jpeg) const {
    const auto refuse = [&](const char* why) { fail(name_, ": the first JPEG frame ", why, ": not JPEG data"); };
    if (jpeg.size() < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8) refuse("does not start with SOI");
    for (size_t at = 2; at + 4 <= jpeg.size();) {
      if (jpeg[at] != 0xff) refuse("has bytes between segments");
      const uint8_t marker = jpeg[at + 1];
      if (marker == 0xff) {
        ++at;
        continue;
      }
      if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc) return;
      const size_t length = size_t(jpeg[at + 2]) << 8 | jpeg[at + 3];
      if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd9) || length < 2)
        refuse("has a misplaced marker or an empty segment before its frame header");
      at += 2 + length;
    }
    refuse("has no frame header");
  }

  void push(std::vector<Open>& open, Open level) {
    if (open.size() == kMaxOpen)
      fail(name_, ": sequences nest more than ", kMaxOpen / 2, " deep; refused before parsing (a hostile file?)");
    open.push_back(level);
  }

  // Without a Part 10 header the bytes may be anything (a text file): say so first, as DCMTK's refusal would.
  [[noreturn]] void overrun(const std::string& what, uint32_t length, size_t left) const {
    if (!part10_) fail(name_, ": not a DICOM file (no Part 10 header, and ", what, " claims ", length, " bytes where ", left, " remain)");
    fail(name_, ": ", what, " claims ", length, " bytes but only ", left, " remain: truncated, or not DICOM");
  }

  static std::string tag(uint16_t group, uint16_t element) {
    char text[12];
    std::snprintf(text, sizeof text, "(%04X,%04X)", group, element);
    return text;
  }

  bool is_vr(size_t at) const {
    return at + 2 <= bytes_.size() && bytes_[at] >= 'A' && bytes_[at] <= 'Z' && bytes_[at + 1] >= 'A' &&
           bytes_[at + 1] <= 'Z';
  }
  // Explicit VRs whose length takes 4 bytes after 2 reserved ones.
  bool long_form(size_t pos) const {
    static const char* const kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
    for (const char* vr : kLong)
      if (bytes_[pos + 4] == vr[0] && bytes_[pos + 5] == vr[1]) return true;
    return false;
  }
  uint16_t u16(size_t at, bool big) const {
    return big ? uint16_t(bytes_[at] << 8 | bytes_[at + 1]) : uint16_t(bytes_[at] | bytes_[at + 1] << 8);
  }
  uint32_t u32(size_t at, bool big) const {
    return big ? uint32_t(u16(at, true)) << 16 | u16(at + 2, true) : u16(at, false) | uint32_t(u16(at + 2, false)) << 16;
  }

  std::span<const uint8_t> bytes_;
  const std::string& name_;
  bool part10_ = false;
  bool jpeg_ = false;
};

}  // namespace

void check_nesting(std::span<const uint8_t> bytes, const std::string& name) { Walker(bytes, name).run(); }

}  // namespace medlab::dicom
