// Helper for the interop tests (tests/interop/*.py): reads GGUF / safetensors files with
// lmkernels and prints what it saw as JSON, dumping tensor contents to files for the Python side
// to compare with the reference packages.
//
//   interop_tool gguf-dump FILE OUTDIR   JSON of metadata + tensor infos; OUTDIR/<i>.f32 holds
//                                        load_f32 of tensor i (dequantized, little-endian f32)
//   interop_tool st-dump FILE OUTDIR     JSON of metadata + tensor infos; OUTDIR/<i>.bin the bytes
//   interop_tool write-sample DIR        DIR/sample.gguf and DIR/sample.safetensors written by the
//                                        test writer (tests/formats_writer.h), for the reverse check
// Exit codes: 0 ok, 1 lmk::Error (message on stderr), 2 usage.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "formats_writer.h"
#include "lmk/error.h"
#include "lmk/gguf.h"
#include "lmk/safetensors.h"

namespace {

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      o += buf;
    } else {
      o += char(c);
    }
  }
  return o + "\"";
}

std::string json_num(double v) {
  if (std::isnan(v)) return "\"nan\"";
  if (std::isinf(v)) return v > 0 ? "\"inf\"" : "\"-inf\"";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string json_value(const lmk::GgufValue& v) {
  using lmk::GgufType;
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, bool>) os << (x ? "true" : "false");
        else if constexpr (std::is_same_v<X, std::string_view>) os << json_str(x);
        else if constexpr (std::is_same_v<X, double>) os << json_num(x);
        else if constexpr (std::is_same_v<X, lmk::GgufArray>) {
          os << '[';
          for (uint64_t i = 0; i < x.count; ++i) {
            if (i) os << ',';
            switch (x.elem_type) {
              case GgufType::STRING: os << json_str(x.string_at(i)); break;
              case GgufType::FLOAT32:
              case GgufType::FLOAT64: os << json_num(x.float_at(i)); break;
              case GgufType::BOOL: os << (x.uint_at(i) ? "true" : "false"); break;
              case GgufType::INT8:
              case GgufType::INT16:
              case GgufType::INT32:
              case GgufType::INT64: os << x.int_at(i); break;
              default: os << x.uint_at(i); break;
            }
          }
          os << ']';
        } else {
          os << x;
        }
      },
      v.v);
  return os.str();
}

void write_bytes(const std::string& path, const void* p, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(p), std::streamsize(n));
  if (!f) throw lmk::Error(lmk::ErrorCode::Io, "cannot write " + path);
}

int gguf_dump(const std::string& file, const std::string& outdir) {
  lmk::GgufFile f = lmk::GgufFile::open(file);
  std::cout << "{\"version\":" << f.version() << ",\"alignment\":" << f.alignment() << ",\"data_start\":" << f.data_start()
            << ",\"kv\":[";
  for (size_t i = 0; i < f.keys().size(); ++i) {
    const auto& k = f.keys()[i];
    const lmk::GgufValue* v = f.get(k);
    std::cout << (i ? "," : "") << "{\"key\":" << json_str(k) << ",\"type\":" << json_str(lmk::to_string(v->type));
    if (auto* a = std::get_if<lmk::GgufArray>(&v->v)) std::cout << ",\"elem_type\":" << json_str(lmk::to_string(a->elem_type));
    std::cout << ",\"value\":" << json_value(*v) << "}";
  }
  std::cout << "],\"tensors\":[";
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    std::cout << (i ? "," : "") << "{\"name\":" << json_str(t.name) << ",\"ggml_type\":" << t.ggml_type
              << ",\"dtype\":" << json_str(lmk::name(t.dtype)) << ",\"ne\":[";
    for (size_t d = 0; d < t.ne.size(); ++d) std::cout << (d ? "," : "") << t.ne[d];
    std::cout << "],\"offset\":" << t.offset << ",\"nbytes\":" << t.nbytes << ",\"file_offset\":" << t.file_offset << "}";
    if (t.numel() > 0) {
      auto vals = f.load_f32(t.name);
      write_bytes(outdir + "/" + std::to_string(i) + ".f32", vals.data(), vals.size() * 4);
    }
  }
  std::cout << "],\"warnings\":" << f.warnings().size() << "}\n";
  return 0;
}

int st_dump(const std::string& file, const std::string& outdir) {
  lmk::SafetensorsFile f = lmk::SafetensorsFile::open(file);
  std::cout << "{\"header_size\":" << f.header_size() << ",\"metadata\":{";
  for (size_t i = 0; i < f.metadata().size(); ++i)
    std::cout << (i ? "," : "") << json_str(f.metadata()[i].first) << ":" << json_str(f.metadata()[i].second);
  std::cout << "},\"tensors\":[";
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    std::cout << (i ? "," : "") << "{\"name\":" << json_str(t.name) << ",\"dtype\":" << json_str(t.dtype_name)
              << ",\"lmk_dtype\":" << (t.dtype ? json_str(lmk::name(*t.dtype)) : "null") << ",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) std::cout << (d ? "," : "") << t.shape[d];
    std::cout << "],\"begin\":" << t.begin << ",\"end\":" << t.end << "}";
    auto b = f.bytes(t.name);
    write_bytes(outdir + "/" + std::to_string(i) + ".bin", b.data(), b.size());
    if (t.dtype && t.nbytes() > 0) {  // the uploaded copy must equal the mapped bytes
      lmk::Buffer up = f.upload(t.name, lmk::Device::cpu());
      if (std::memcmp(up.data(), b.data(), b.size()) != 0) throw lmk::Error(lmk::ErrorCode::Format, "upload mismatch");
    }
  }
  std::cout << "]}\n";
  return 0;
}

int write_sample(const std::string& dir) {
  using namespace lmk::testfmt;
  GgufWriter w;
  w.kv_string("general.architecture", "llama");
  w.kv_scalar<uint32_t>("llama.block_count", kU32, 2);
  w.kv_scalar<float>("llama.rope.freq_base", kF32, 10000.0f);
  w.kv_scalar<uint8_t>("flag", kBool, 1);
  w.kv_array<int32_t>("ints", kI32, {1, -2, 3});
  w.kv_string_array("tokens", {"<s>", "héllo", ""});
  std::vector<float> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f - 3.0f;
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  w.tensor("t.f32", {4, 6}, 0, b);
  std::vector<uint8_t> q(18 * 2);
  for (size_t i = 0; i < q.size(); ++i) q[i] = uint8_t(i * 37 + 11);
  q[0] = 0x00, q[1] = 0x3c, q[18] = 0x00, q[19] = 0xb8;  // d = 1.0 and -0.5
  w.tensor("t.q4_0", {32, 2}, 2, q);
  write_file(dir + "/sample.gguf", w.build());

  SafetensorsWriter s;
  s.metadata = {{"format", "np"}};
  s.tensor("a", "F32", {2, 3}, std::vector<uint8_t>(b.begin(), b.begin() + 24));
  s.tensor("b", "I64", {2}, {1, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  s.tensor("c", "U8", {3}, {7, 8, 9});
  write_file(dir + "/sample.safetensors", s.build());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: interop_tool gguf-dump|st-dump FILE OUTDIR | write-sample DIR\n");
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "gguf-dump" && argc == 4) return gguf_dump(argv[2], argv[3]);
    if (cmd == "st-dump" && argc == 4) return st_dump(argv[2], argv[3]);
    if (cmd == "write-sample") return write_sample(argv[2]);
  } catch (const lmk::Error& e) {
    std::fprintf(stderr, "interop_tool: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "interop_tool: bad arguments\n");
  return 2;
}
