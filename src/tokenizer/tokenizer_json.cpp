#include "tokenizer/tokenizer_json.h"

#include "core/error.h"

namespace medlab {
namespace {

using nlohmann::json;

// SAX handler: a small state machine for root -> model -> vocab / merges, and a DOM builder for
// everything else ("capture").
class Reader : public nlohmann::json_sax<json> {
 public:
  explicit Reader(TokenizerJson& out) : out_(out) {}

  const std::string& error() const { return error_; }

  bool null() override { return value(nullptr); }
  bool boolean(bool v) override { return value(v); }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool binary(binary_t&) override { return fail_with("unexpected binary value"); }
  bool number_integer(number_integer_t v) override { return integer(v); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > uint64_t(INT64_MAX)) return fail_with("integer out of range");
    return integer(int64_t(v));
  }

  bool string(string_t& s) override {
    if (mode_ == Mode::MergePair) {
      merge_parts_.push_back(std::move(s));
      return true;
    }
    if (mode_ == Mode::Merges) {  // the older "left right" form
      const size_t space = s.find(' ');
      if (space == std::string::npos) return fail_with("model.merges[", out_.merges.size(), "]: no ' ' in \"", s, "\"");
      out_.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      return true;
    }
    return value(std::move(s));
  }

  bool key(string_t& k) override {
    switch (mode_) {
      case Mode::Root:
      case Mode::Model: pending_key_ = std::move(k); return true;
      case Mode::Vocab: pending_token_ = std::move(k); return true;
      case Mode::Capture: capture_key_ = std::move(k); return true;
      default: return fail_with("unexpected key '", k, "'");
    }
  }

  bool start_object(std::size_t) override {
    switch (mode_) {
      case Mode::Start: mode_ = Mode::Root; return true;
      case Mode::Root:
        if (pending_key_ == "model") {
          mode_ = Mode::Model;
          return true;
        }
        break;
      case Mode::Model:
        if (pending_key_ == "vocab") {
          mode_ = Mode::Vocab;
          return true;
        }
        break;
      case Mode::Capture: break;
      default: return fail_with(where(), ": unexpected object");
    }
    return open_container(json::object());
  }

  bool end_object() override {
    switch (mode_) {
      case Mode::Capture: return close_container();
      case Mode::Vocab: mode_ = Mode::Model; return true;
      case Mode::Model: mode_ = Mode::Root; return true;
      case Mode::Root: mode_ = Mode::Done; return true;
      default: return fail_with(where(), ": unexpected end of object");
    }
  }

  bool start_array(std::size_t) override {
    switch (mode_) {
      case Mode::Model:
        if (pending_key_ == "merges") {
          mode_ = Mode::Merges;
          return true;
        }
        break;
      case Mode::Merges:
        merge_parts_.clear();
        mode_ = Mode::MergePair;
        return true;
      case Mode::Root:
      case Mode::Capture: break;
      default: return fail_with(where(), ": unexpected array");
    }
    return open_container(json::array());
  }

  bool end_array() override {
    switch (mode_) {
      case Mode::Capture: return close_container();
      case Mode::MergePair:
        if (merge_parts_.size() != 2) return fail_with(where(), ": expected [left, right]");
        out_.merges.emplace_back(std::move(merge_parts_[0]), std::move(merge_parts_[1]));
        mode_ = Mode::Merges;
        return true;
      case Mode::Merges: mode_ = Mode::Model; return true;
      default: return fail_with(where(), ": unexpected end of array");
    }
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return fail_with("invalid JSON: ", e.what());
  }

 private:
  enum class Mode { Start, Root, Model, Vocab, Merges, MergePair, Capture, Done };

  template <class... Parts>
  bool fail_with(const Parts&... parts) {
    try {
      fail(parts...);
    } catch (const Error& e) {
      error_ = e.what();
    }
    return false;
  }

  std::string where() const {
    switch (mode_) {
      case Mode::Vocab: return "model.vocab";
      case Mode::Merges:
      case Mode::MergePair: return "model.merges[" + std::to_string(out_.merges.size()) + "]";
      default: return "top level";
    }
  }

  bool integer(int64_t v) {
    if (mode_ == Mode::Vocab) {
      out_.vocab.emplace_back(std::move(pending_token_), v);
      return true;
    }
    return value(v);
  }

  // A value at root or model level starts (and, for a scalar, at once ends) a capture.
  void begin_capture() {
    capture_target_ = mode_ == Mode::Root ? &out_.sections[pending_key_] : &out_.model[pending_key_];
    return_to_ = mode_;
    mode_ = Mode::Capture;
  }

  json* place(json v) {
    if (open_.empty()) {
      *capture_target_ = std::move(v);
      return capture_target_;
    }
    json& parent = *open_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    json& slot = parent[capture_key_];
    slot = std::move(v);
    return &slot;
  }

  bool value(json v) {
    if (mode_ == Mode::Root || mode_ == Mode::Model) begin_capture();
    if (mode_ != Mode::Capture) return fail_with(where(), ": unexpected value ", v.dump());
    place(std::move(v));
    if (open_.empty()) mode_ = return_to_;
    return true;
  }

  bool open_container(json empty) {
    if (mode_ == Mode::Root || mode_ == Mode::Model) begin_capture();
    open_.push_back(place(std::move(empty)));
    return true;
  }

  bool close_container() {
    open_.pop_back();
    if (open_.empty()) mode_ = return_to_;
    return true;
  }

  TokenizerJson& out_;
  Mode mode_ = Mode::Start;
  std::string pending_key_, pending_token_, capture_key_, error_;
  std::vector<std::string> merge_parts_;
  json* capture_target_ = nullptr;
  Mode return_to_ = Mode::Root;
  std::vector<json*> open_;  // the captured containers being filled, outermost first
};

}  // namespace

TokenizerJson read_tokenizer_json(std::string_view text, const std::string& path) {
  TokenizerJson out;
  Reader reader(out);
  if (!json::sax_parse(text.begin(), text.end(), &reader)) fail(path, ": ", reader.error());
  return out;
}

}  // namespace medlab
