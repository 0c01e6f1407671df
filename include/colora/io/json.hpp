// A small JSON reader and the quoting the writers need (docs/io.md, "PEFT
// adapters"): enough for the header of a safetensors file and a PEFT
// adapter_config.json, not a general-purpose library.
//
//   io::JsonValue v = io::parse_json(text, "colora::io::read_safetensors: 'a.safetensors': bad header",
//                                    io::JsonMode::Strict, /*base_offset=*/8);
//
// Strict mode (safetensors headers) accepts only objects, arrays, strings and
// non-negative integers (no sign, fraction, exponent or leading zero);
// Config mode also accepts true, false, null and any JSON number. Both refuse
// duplicate keys, raw control characters in strings, invalid escapes and lone
// surrogates, nesting deeper than 64, and text after the value; the text must
// be valid UTF-8. Every refusal is a std::runtime_error "<prefix>: <why> at
// byte <n> (found '<c>')", n counted from the start of the file
// (base_offset + position in `text`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace colora {
namespace io {

/// Which JSON a parse accepts (see the header comment).
enum class JsonMode { Strict, Config };

/// A parsed JSON value. Objects keep their members in file order (keys are distinct).
struct JsonValue {
  enum class Type { Null, Bool, Integer, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  std::uint64_t integer = 0;  ///< Type::Integer: a non-negative integer below 2^64
  double number = 0;          ///< Type::Integer and Type::Number
  std::string text;           ///< Type::String, decoded to UTF-8
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;
  std::size_t offset = 0;  ///< byte of the value in the file (base_offset + position)

  bool is(Type t) const noexcept { return type == t; }
  bool is_number() const noexcept { return type == Type::Integer || type == Type::Number; }
  /// The member `key` of an object, or nullptr.
  const JsonValue* find(const std::string& key) const {
    for (const auto& m : members)
      if (m.first == key) return &m.second;
    return nullptr;
  }
};

namespace detail {

class JsonParser {
 public:
  JsonParser(const std::string& s, std::string prefix, JsonMode mode, std::size_t base)
      : s_(s), prefix_(std::move(prefix)), mode_(mode), base_(base) {}

  JsonValue parse() {
    check_utf8();
    skip_ws();
    JsonValue v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { fail_at(why, pos_); }
  [[noreturn]] void fail_at(const std::string& why, std::size_t at) const {
    std::string found = "the end";
    if (at < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[at]);
      if (c >= 0x20 && c < 0x7f) {
        found = std::string("'") + char(c) + "'";
      } else {
        char buf[16];
        std::snprintf(buf, sizeof buf, "byte 0x%02x", unsigned(c));
        found = buf;
      }
    }
    throw std::runtime_error(prefix_ + ": " + why + " at byte " + std::to_string(base_ + at) + " (found " + found +
                             ")");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void check_utf8() const {
    std::size_t i = 0;
    while (i < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i]);
      std::size_t n = 0;
      std::uint32_t cp = 0;
      if (c < 0x80) {
        ++i;
        continue;
      } else if ((c & 0xE0) == 0xC0) {
        n = 1;
        cp = c & 0x1F;
      } else if ((c & 0xF0) == 0xE0) {
        n = 2;
        cp = c & 0x0F;
      } else if ((c & 0xF8) == 0xF0) {
        n = 3;
        cp = c & 0x07;
      } else {
        fail_at("invalid UTF-8", i);
      }
      for (std::size_t k = 1; k <= n; ++k) {
        if (i + k >= s_.size()) fail_at("invalid UTF-8 (truncated sequence)", i);
        const unsigned char d = static_cast<unsigned char>(s_[i + k]);
        if ((d & 0xC0) != 0x80) fail_at("invalid UTF-8", i);
        cp = (cp << 6) | (d & 0x3F);
      }
      const std::uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
      if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail_at("invalid UTF-8", i);
      i += n + 1;
    }
  }
  JsonValue value(int depth) {
    if (depth > 64) fail("JSON nested deeper than 64 levels");
    JsonValue v;
    v.offset = base_ + pos_;
    const char c = peek();
    if (c == '{') {
      v.type = JsonValue::Type::Object;
      ++pos_;
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        skip_ws();
        if (peek() != '"') fail("expected a string key");
        const std::size_t key_at = pos_;
        std::string key = string();
        for (const auto& m : v.members)
          if (m.first == key) fail_at("duplicate key \"" + key + "\"", key_at);
        skip_ws();
        if (peek() != ':') fail("expected ':'");
        ++pos_;
        skip_ws();
        JsonValue item = value(depth + 1);
        v.members.emplace_back(std::move(key), std::move(item));
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == '}') {
          ++pos_;
          return v;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.type = JsonValue::Type::Array;
      ++pos_;
      skip_ws();
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        skip_ws();
        v.items.push_back(value(depth + 1));
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == ']') {
          ++pos_;
          return v;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = JsonValue::Type::String;
      v.text = string();
      return v;
    }
    if (c >= '0' && c <= '9') return number(v);
    if (mode_ == JsonMode::Config) {
      if (c == '-') return number(v);
      const std::pair<const char*, int> words[] = {{"true", 1}, {"false", 0}, {"null", 2}};
      for (const auto& w : words)
        if (s_.compare(pos_, std::char_traits<char>::length(w.first), w.first) == 0) {
          pos_ += std::char_traits<char>::length(w.first);
          v.type = w.second == 2 ? JsonValue::Type::Null : JsonValue::Type::Bool;
          v.boolean = w.second == 1;
          return v;
        }
      fail("expected a JSON value");
    }
    fail("expected an object, an array, a string or a non-negative integer");
  }
  JsonValue& number(JsonValue& v) {
    const std::size_t start = pos_;
    bool integral = true;
    if (peek() == '-') {
      integral = false;
      ++pos_;
    }
    auto digits = [&] {
      const std::size_t from = pos_;
      while (peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - from;
    };
    if (peek() == '0') {
      ++pos_;
      if (peek() >= '0' && peek() <= '9') fail("a number with a leading zero");
    } else if (digits() == 0) {
      fail("expected a digit");
    }
    if (peek() == '.' || peek() == 'e' || peek() == 'E') {
      if (mode_ == JsonMode::Strict) fail("expected a non-negative integer (no fraction or exponent)");
      integral = false;
      if (peek() == '.') {
        ++pos_;
        if (digits() == 0) fail("expected a digit after '.'");
      }
      if (peek() == 'e' || peek() == 'E') {
        ++pos_;
        if (peek() == '+' || peek() == '-') ++pos_;
        if (digits() == 0) fail("expected a digit in the exponent");
      }
    }
    const std::string t = s_.substr(start, pos_ - start);
    if (integral) {
      std::uint64_t x = 0;
      for (char d : t) {
        const std::uint64_t digit = std::uint64_t(d - '0');
        if (x > (UINT64_MAX - digit) / 10) fail_at("integer does not fit in 64 bits", start);
        x = x * 10 + digit;
      }
      v.type = JsonValue::Type::Integer;
      v.integer = x;
      v.number = double(x);
    } else {
      v.type = JsonValue::Type::Number;
      v.number = std::strtod(t.c_str(), nullptr);
    }
    return v;
  }
  std::uint32_t hex4() {
    std::uint32_t x = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = peek();
      x <<= 4;
      if (h >= '0' && h <= '9')
        x |= std::uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f')
        x |= std::uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        x |= std::uint32_t(h - 'A' + 10);
      else
        fail("expected 4 hex digits after \\u");
      ++pos_;
    }
    return x;
  }
  std::string string() {
    ++pos_;  // the opening quote
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("a raw control character in a string");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      ++pos_;
      const char e = peek();
      const char* simple = "\"\\/bfnrt";
      const char* means = "\"\\/\b\f\n\r\t";
      bool done = false;
      for (int k = 0; simple[k] && !done; ++k)
        if (e == simple[k]) {
          out += means[k];
          ++pos_;
          done = true;
        }
      if (done) continue;
      if (e != 'u') fail("invalid escape sequence");
      const std::size_t at = pos_ - 1;
      ++pos_;
      std::uint32_t cp = hex4();
      if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("a lone low surrogate in \\u escape", at);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (!(peek() == '\\' && pos_ + 1 < s_.size() && s_[pos_ + 1] == 'u'))
          fail_at("a high surrogate \\u escape without its low surrogate", at);
        pos_ += 2;
        const std::uint32_t lo = hex4();
        if (lo < 0xDC00 || lo > 0xDFFF) fail_at("a high surrogate \\u escape without its low surrogate", at);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      if (cp < 0x80) {
        out += char(cp);
      } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
      } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
      }
    }
  }

  const std::string& s_;
  std::string prefix_;
  JsonMode mode_;
  std::size_t base_;
  std::size_t pos_ = 0;
};

}  // namespace detail

/// Parses `text` as one JSON value (see the header comment for what each
/// mode accepts). Errors are std::runtime_error "<prefix>: <why> at byte
/// <base_offset + position> (found ...)".
inline JsonValue parse_json(const std::string& text, const std::string& prefix, JsonMode mode = JsonMode::Config,
                            std::size_t base_offset = 0) {
  return detail::JsonParser(text, prefix, mode, base_offset).parse();
}

/// `s` as a JSON string literal: quotes, \" \\ and control characters escaped
/// (\n, \t, ... or \u00XX); other bytes are copied (UTF-8 stays UTF-8).
inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(u));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace io
}  // namespace colora
