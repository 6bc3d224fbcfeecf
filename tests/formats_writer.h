// Minimal writers of valid GGUF (v2/v3) and safetensors files, written for the tests from
// quant-formats.md §6/§7 (independent of src/formats). They record where each field landed so
// tests can corrupt exactly one field.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lmk::testfmt {

inline void put_u8(std::vector<uint8_t>& b, uint8_t v) { b.push_back(v); }
template <typename T>
inline void put_le(std::vector<uint8_t>& b, T v) {
  uint8_t tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  b.insert(b.end(), tmp, tmp + sizeof(T));
}
template <typename T>
inline void patch_le(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// ---- GGUF ----

enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

struct GgufTensorSpec {
  std::string name;
  std::vector<uint64_t> ne;  // innermost first
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct GgufLayout {
  size_t version_at = 4, tensor_count_at = 8, kv_count_at = 16;
  std::vector<size_t> kv_at;               // start of each KV (its key length)
  std::vector<size_t> kv_type_at;          // its value type field
  std::vector<size_t> tensor_at;           // start of each tensor info (name length)
  std::vector<size_t> tensor_ndims_at, tensor_type_at, tensor_offset_at;
  std::vector<std::vector<size_t>> tensor_dims_at;
  std::vector<uint64_t> tensor_offset;     // relative offsets written
  size_t end_of_infos = 0, data_start = 0;
};

struct GgufWriter {
  uint32_t version = 3;
  uint64_t alignment = 32;
  struct KV {
    std::string key;
    uint32_t type;
    std::vector<uint8_t> value;  // encoded value bytes (after the type field)
  };
  std::vector<KV> kvs;
  std::vector<GgufTensorSpec> tensors;

  static void put_str(std::vector<uint8_t>& b, const std::string& s) {
    put_le<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void kv_raw(const std::string& key, uint32_t type, std::vector<uint8_t> value) { kvs.push_back({key, type, std::move(value)}); }
  template <typename T>
  void kv_scalar(const std::string& key, uint32_t type, T v) {
    std::vector<uint8_t> b;
    put_le<T>(b, v);
    kv_raw(key, type, b);
  }
  void kv_string(const std::string& key, const std::string& v) {
    std::vector<uint8_t> b;
    put_str(b, v);
    kv_raw(key, kString, b);
  }
  template <typename T>
  void kv_array(const std::string& key, uint32_t elem_type, const std::vector<T>& v) {
    std::vector<uint8_t> b;
    put_le<uint32_t>(b, elem_type);
    put_le<uint64_t>(b, v.size());
    for (const T& x : v) put_le<T>(b, x);
    kv_raw(key, kArray, b);
  }
  void kv_string_array(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> b;
    put_le<uint32_t>(b, kString);
    put_le<uint64_t>(b, v.size());
    for (const auto& s : v) put_str(b, s);
    kv_raw(key, kArray, b);
  }
  void set_alignment(uint32_t a) {
    alignment = a;
    kv_scalar<uint32_t>("general.alignment", kU32, a);
  }
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> data) {
    tensors.push_back({name, std::move(ne), type, std::move(data)});
  }

  static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

  std::vector<uint8_t> build(GgufLayout* layout = nullptr) const {
    GgufLayout l;
    std::vector<uint8_t> b;
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    put_le<uint32_t>(b, version);
    put_le<uint64_t>(b, tensors.size());
    put_le<uint64_t>(b, kvs.size());
    for (const auto& kv : kvs) {
      l.kv_at.push_back(b.size());
      put_str(b, kv.key);
      l.kv_type_at.push_back(b.size());
      put_le<uint32_t>(b, kv.type);
      b.insert(b.end(), kv.value.begin(), kv.value.end());
    }
    uint64_t off = 0;
    for (const auto& t : tensors) {
      l.tensor_at.push_back(b.size());
      put_str(b, t.name);
      l.tensor_ndims_at.push_back(b.size());
      put_le<uint32_t>(b, uint32_t(t.ne.size()));
      l.tensor_dims_at.emplace_back();
      for (uint64_t d : t.ne) {
        l.tensor_dims_at.back().push_back(b.size());
        put_le<uint64_t>(b, d);
      }
      l.tensor_type_at.push_back(b.size());
      put_le<uint32_t>(b, t.type);
      l.tensor_offset_at.push_back(b.size());
      put_le<uint64_t>(b, off);
      l.tensor_offset.push_back(off);
      off = align_up(off + t.data.size(), alignment);
    }
    l.end_of_infos = b.size();
    if (!tensors.empty()) b.resize(size_t(align_up(b.size(), alignment)), 0);
    l.data_start = b.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      b.resize(size_t(l.data_start + l.tensor_offset[i]), 0);
      b.insert(b.end(), tensors[i].data.begin(), tensors[i].data.end());
    }
    if (layout) *layout = l;
    return b;
  }
};

// ---- safetensors ----

struct SafetensorsTensorSpec {
  std::string name, dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> data;
};

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

struct SafetensorsWriter {
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<SafetensorsTensorSpec> tensors;
  size_t pad_to = 8;  // header padded with spaces to a multiple of this

  void tensor(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape, std::vector<uint8_t> data) {
    tensors.push_back({name, dtype, std::move(shape), std::move(data)});
  }
  std::string header_json() const {
    std::string h = "{";
    bool first = true;
    if (!metadata.empty()) {
      h += "\"__metadata__\":{";
      for (size_t i = 0; i < metadata.size(); ++i)
        h += (i ? "," : "") + std::string("\"") + json_escape(metadata[i].first) + "\":\"" + json_escape(metadata[i].second) + "\"";
      h += "}";
      first = false;
    }
    uint64_t off = 0;
    for (const auto& t : tensors) {
      h += first ? "" : ",";
      first = false;
      h += "\"" + json_escape(t.name) + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
      for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
      h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.data.size()) + "]}";
      off += t.data.size();
    }
    h += "}";
    return h;
  }
  // A file from an explicit header text and data (for malformed-header tests).
  static std::vector<uint8_t> assemble(const std::string& header, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> b;
    put_le<uint64_t>(b, header.size());
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), data.begin(), data.end());
    return b;
  }
  std::vector<uint8_t> data() const {
    std::vector<uint8_t> d;
    for (const auto& t : tensors) d.insert(d.end(), t.data.begin(), t.data.end());
    return d;
  }
  std::vector<uint8_t> build() const {
    std::string h = header_json();
    while ((8 + h.size()) % pad_to) h += ' ';
    return assemble(h, data());
  }
};

inline void write_file(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

}  // namespace lmk::testfmt
