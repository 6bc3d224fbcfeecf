// `lmk gguf FILE [--all]`: header, metadata and the tensor table of a GGUF file.
#include <cstdio>
#include <string>
#include <vector>

#include "lmk/error.h"
#include "lmk/gguf.h"

namespace {

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / double(1ull << 20));
  else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)b);
  return buf;
}

// Control characters of metadata strings made visible, long values cut.
std::string printable(const std::string& s, size_t max_chars) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20) o += '?';
    else o += char(c);
  }
  if (max_chars && o.size() > max_chars) o = o.substr(0, max_chars) + "...";
  return o;
}

}  // namespace

int lmk_gguf_command(const std::vector<std::string>& args) {
  std::string path;
  bool all = false;
  for (const auto& a : args) {
    if (a == "--all") all = true;
    else if (path.empty() && a != "gguf") path = a;
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: lmk gguf FILE [--all]   (--all prints whole arrays and long strings)\n");
    return 2;
  }
  try {
    lmk::GgufFile f = lmk::GgufFile::open(path);
    std::printf("%s: GGUF v%u, %s, alignment %llu, data at byte %llu\n", path.c_str(), f.version(),
                human_bytes(f.file_size()).c_str(), (unsigned long long)f.alignment(), (unsigned long long)f.data_start());
    std::printf("\nmetadata (%zu keys)\n", f.kv_count());
    for (const auto& k : f.keys()) {
      const lmk::GgufValue* v = f.get(k);
      std::string type = lmk::to_string(v->type);
      if (const auto* a = std::get_if<lmk::GgufArray>(&v->v))
        type += std::string("[") + lmk::to_string(a->elem_type) + " x " + std::to_string(a->count) + "]";
      std::printf("  %-44s %-22s %s\n", k.c_str(), type.c_str(),
                  printable(v->str(all ? SIZE_MAX : 8), all ? 0 : 160).c_str());
    }
    std::printf("\ntensors (%zu)\n", f.tensor_count());
    std::printf("  %-48s %-8s %-24s %12s %14s\n", "name", "type", "shape (outermost first)", "bytes", "offset");
    uint64_t total = 0;
    for (const auto& t : f.tensors()) {
      std::string shape = "[";
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
      shape += "]";
      std::printf("  %-48s %-8s %-24s %12llu %14llu\n", t.name.c_str(), std::string(lmk::ggml_type_name(t.ggml_type)).c_str(),
                  shape.c_str(), (unsigned long long)t.nbytes, (unsigned long long)t.offset);
      total += t.nbytes;
    }
    std::printf("  %zu tensors, %s of tensor data\n", f.tensor_count(), human_bytes(total).c_str());
    for (const auto& w : f.warnings()) std::printf("warning: %s\n", w.c_str());
    return 0;
  } catch (const lmk::Error& e) {
    std::fprintf(stderr, "lmk gguf: %s\n", e.what());
    return 1;
  }
}
