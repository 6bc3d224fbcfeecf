#include "formats/json.h"

namespace lmk::formats {

void JsonReader::skip_ws() {
  while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
}

char JsonReader::peek() {
  skip_ws();
  return pos_ < s_.size() ? s_[pos_] : 0;
}

void JsonReader::expect(char c) {
  if (peek() != c) {
    if (pos_ >= s_.size()) fail(std::string("unexpected end of JSON, expected '") + c + "'");
    fail(std::string("expected '") + c + "', got '" + s_[pos_] + "'");
  }
  ++pos_;
}

bool JsonReader::consume(char c) {
  if (peek() != c) return false;
  ++pos_;
  return true;
}

unsigned JsonReader::hex4() {
  if (s_.size() - pos_ < 4) fail("truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = s_[pos_++];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= unsigned(c - '0');
    else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
    else fail("bad hex digit in \\u escape");
  }
  return v;
}

namespace {
void append_utf8(std::string& out, uint32_t cp) {
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
}  // namespace

std::string JsonReader::string() {
  expect('"');
  std::string out;
  while (true) {
    if (pos_ >= s_.size()) fail("unterminated string");
    const unsigned char c = static_cast<unsigned char>(s_[pos_++]);
    if (c == '"') return out;
    if (c < 0x20) fail("control character in string");
    if (c != '\\') {
      out += char(c);  // the caller validated the whole text as UTF-8
      continue;
    }
    if (pos_ >= s_.size()) fail("unterminated escape");
    const char e = s_[pos_++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        uint32_t cp = hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (s_.size() - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') fail("lone high surrogate in \\u escape");
          pos_ += 2;
          const uint32_t lo = hex4();
          if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        append_utf8(out, cp);
        break;
      }
      default: fail(std::string("bad escape '\\") + e + "'");
    }
  }
}

void JsonReader::number() {
  skip_ws();
  auto digit = [&] { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
  if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
  if (!digit()) fail("bad number");
  if (s_[pos_] == '0') ++pos_;
  else
    while (digit()) ++pos_;
  if (pos_ < s_.size() && s_[pos_] == '.') {
    ++pos_;
    if (!digit()) fail("bad number: digits expected after '.'");
    while (digit()) ++pos_;
  }
  if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
    if (!digit()) fail("bad number: digits expected in exponent");
    while (digit()) ++pos_;
  }
}

uint64_t JsonReader::unsigned_integer(const char* what) {
  skip_ws();
  const size_t start = pos_;
  number();  // validates the literal
  const std::string_view lit = s_.substr(start, pos_ - start);
  if (lit.empty() || lit[0] == '-' || lit.find_first_of(".eE") != std::string_view::npos) {
    pos_ = start;
    fail(std::string(what) + " must be a non-negative integer, got " + std::string(lit));
  }
  uint64_t v = 0;
  for (char c : lit) {
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) {
      pos_ = start;
      fail(std::string(what) + " " + std::string(lit) + " does not fit 64 bits");
    }
    v = v * 10 + d;
  }
  return v;
}

void JsonReader::skip_value() { skip_value(0); }

void JsonReader::skip_value(int depth) {
  if (depth > max_depth_) fail("JSON nested too deeply");
  const char c = peek();
  switch (c) {
    case '{':
      ++pos_;
      if (consume('}')) return;
      do {
        (void)string();
        expect(':');
        skip_value(depth + 1);
      } while (consume(','));
      expect('}');
      return;
    case '[':
      ++pos_;
      if (consume(']')) return;
      do skip_value(depth + 1);
      while (consume(','));
      expect(']');
      return;
    case '"': (void)string(); return;
    case 't':
    case 'f':
    case 'n': {
      const std::string_view word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      if (s_.substr(pos_, word.size()) != word) fail("bad literal");
      pos_ += word.size();
      return;
    }
    default:
      if (c == '-' || (c >= '0' && c <= '9')) {
        number();
        return;
      }
      if (pos_ >= s_.size()) fail("unexpected end of JSON");
      fail(std::string("unexpected character '") + c + "'");
  }
}

}  // namespace lmk::formats
