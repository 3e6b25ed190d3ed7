// A small streaming JSON writer for the command-line tool's --json output (no JSON library needed).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::cli {

/// `text` as a JSON string literal, quotes included: '"' and '\' escaped, control characters as
/// \n, \t, ... or \u00XX. Other bytes (UTF-8) pass through unchanged.
inline std::string json_quote(std::string_view text) {
  std::string s;
  s.reserve(text.size() + 2);
  s += '"';
  for (const char c : text) {
    switch (c) {
      case '"': s += "\\\""; break;
      case '\\': s += "\\\\"; break;
      case '\n': s += "\\n"; break;
      case '\r': s += "\\r"; break;
      case '\t': s += "\\t"; break;
      case '\b': s += "\\b"; break;
      case '\f': s += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          s += buffer;
        } else {
          s += c;
        }
    }
  }
  s += '"';
  return s;
}

/// Writes one JSON document to a stream, inserting commas itself: begin_object(), key(), value(),
/// end_object(). Misuse (a value without a key inside an object) is the caller's bug; the writer
/// does not check it.
class JsonWriter {
 public:
  explicit JsonWriter(std::ostream& out) : m_out(out) {}

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }

  JsonWriter& key(std::string_view name) {
    separate();
    m_out << json_quote(name) << ':';
    m_after_key = true;
    return *this;
  }

  JsonWriter& value(std::string_view text) { return raw(json_quote(text)); }
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(const std::string& text) { return value(std::string_view(text)); }
  JsonWriter& value(bool b) { return raw(b ? "true" : "false"); }
  JsonWriter& value(int v) { return raw(std::to_string(v)); }
  JsonWriter& value(std::int64_t v) { return raw(std::to_string(v)); }
  JsonWriter& value(std::uint64_t v) { return raw(std::to_string(v)); }
  /// Non-finite numbers have no JSON form: NaN and infinities are written as null.
  JsonWriter& value(double v) {
    if (!std::isfinite(v)) return raw("null");
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.17g", v);
    return raw(buffer);
  }
  JsonWriter& null() { return raw("null"); }
  /// An array of integers.
  JsonWriter& value(const std::vector<std::int64_t>& values) {
    begin_array();
    for (const std::int64_t v : values) value(v);
    return end_array();
  }

  /// key(name).value(v) in one call.
  template <class T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }

  /// Ends the document with a newline.
  void finish() { m_out << '\n'; }

 private:
  void separate() {
    if (m_after_key) {
      m_after_key = false;
      return;
    }
    if (!m_first.empty()) {
      if (!m_first.back()) m_out << ',';
      m_first.back() = false;
    }
  }
  JsonWriter& raw(std::string_view text) {
    separate();
    m_out << text;
    return *this;
  }
  JsonWriter& open(char c) {
    separate();
    m_out << c;
    m_first.push_back(true);
    return *this;
  }
  JsonWriter& close(char c) {
    m_out << c;
    m_first.pop_back();
    return *this;
  }

  std::ostream& m_out;
  std::vector<bool> m_first;  // per open container: nothing written in it yet
  bool m_after_key = false;
};

}  // namespace cairn::cli
