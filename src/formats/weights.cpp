// MLX affine-quantized model directories (quant-formats.md §5, §7 "Loader API").
#include "lmk/weights.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <span>

#include "formats/json.h"
#include "formats/mapped_file.h"
#include "lmk/error.h"
#include "lmk/safetensors.h"

namespace lmk {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kLmPrefix = "language_model.";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string shape_str(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- config JSON ----

// Reads one JSON object, rejecting duplicate keys; on_key is called with the reader positioned
// at the key's value and must consume it.
void json_object(formats::JsonReader& r, const std::string& what, const std::function<void(const std::string&)>& on_key) {
  if (r.peek() != '{') r.fail(what + " must be a JSON object");
  r.expect('{');
  if (r.consume('}')) return;
  std::set<std::string> seen;
  do {
    std::string key = r.string();
    if (!seen.insert(key).second) r.fail("duplicate key '" + key + "' in " + what);
    r.expect(':');
    on_key(key);
  } while (r.consume(','));
  r.expect('}');
}

int positive_int(formats::JsonReader& r, const std::string& what) {
  const char c = r.peek();
  if (!(c >= '0' && c <= '9')) {
    if (c == '-') r.fail(what + " must be a positive integer");
    r.fail(what + " must be a positive integer (a JSON number)");
  }
  const uint64_t v = r.unsigned_integer(what.c_str());
  if (v == 0 || v > uint64_t(INT_MAX)) r.fail(what + " must be a positive integer that fits an int, got " + std::to_string(v));
  return int(v);
}

// `mode`: MLX names its non-affine formats here; anything but "affine" is not this format.
void check_mode(formats::JsonReader& r, const std::string& label) {
  if (r.peek() != '"') {
    r.skip_value();
    return;
  }
  const std::string mode = r.string();
  if (mode != "affine")
    LMK_THROW(Unsupported, "quantization config '", label, "': mode '", mode,
              "' is not supported (only MLX affine quantization, mode \"affine\")");
}

template <typename F>
QuantizationConfig parse_config(std::string_view json, const std::string& label, F&& body) {
  if (!formats::valid_utf8(json)) LMK_THROW(Format, "quantization config '", label, "': not valid UTF-8");
  QuantizationConfig cfg;
  cfg.source = label;
  formats::JsonReader r(json);
  try {
    body(r, cfg);
    if (!r.at_end()) r.fail("trailing characters after the top-level object");
  } catch (const formats::JsonError& e) {
    LMK_THROW(Format, "quantization config '", label, "' (byte ", e.offset, "): ", e.message);
  }
  return cfg;
}

std::string read_text_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) LMK_THROW(Io, "cannot open '", path, "': ", std::strerror(errno));
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  const int e = errno;
  std::fclose(f);
  if (bad) LMK_THROW(Io, "cannot read '", path, "': ", std::strerror(e));
  return s;
}

bool regular_file_at(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);  // follows symlinks (Hugging Face caches use them)
}

void check_params(const QuantParams& p, const std::string& weight, const std::string& packed_name,
                  const std::string& from) {
  if (p.bits != 4 && p.bits != 6 && p.bits != 8)
    LMK_THROW(Unsupported, "load_quantized_weights: quantized weight '", weight, "' (packed tensor '", packed_name,
              "'): bits ", p.bits, " from ", from, " is not supported (supported: 4, 6, 8)");
  if (p.group_size != 32 && p.group_size != 64 && p.group_size != 128)
    LMK_THROW(Unsupported, "load_quantized_weights: quantized weight '", weight, "' (packed tensor '", packed_name,
              "'): group_size ", p.group_size, " from ", from, " is not supported (supported: 32, 64, 128)");
}

int64_t expected_row_bytes(int bits, int64_t k) {
  if (bits == 4) return (k + 7) / 8 * 4;
  if (bits == 8) return (k + 3) / 4 * 4;
  return (k + 3) / 4 * 3;
}

struct Entry {
  size_t file;
  const SafetensorsTensorInfo* info;
};

struct Plan {
  std::string base, packed, scales, biases;  // biases empty when absent
  std::vector<int64_t> shape;
  QuantParams params;
};

// A key of the global settings (bits, group_size, mode) read into cfg; false for any other key.
// `prefix` names the enclosing object in error messages ("" or "quantization.").
bool global_field(formats::JsonReader& r, const std::string& key, const std::string& prefix,
                  const std::string& label, QuantizationConfig& cfg) {
  if (key == "bits") cfg.global.bits = positive_int(r, prefix + "bits");
  else if (key == "group_size") cfg.global.group_size = positive_int(r, prefix + "group_size");
  else if (key == "mode") check_mode(r, label);
  else return false;
  return true;
}

}  // namespace

QuantParams QuantizationConfig::lookup(std::string_view tensor_name, std::string* matched_key) const {
  std::vector<std::string> names;
  const std::string exact(tensor_name);
  names.push_back(exact);
  for (std::string_view sfx : {".weight", ".scales", ".biases"}) {
    if (ends_with(exact, sfx)) {
      names.push_back(exact.substr(0, exact.size() - sfx.size()));
      break;
    }
  }
  const size_t n_base = names.size();
  for (size_t i = 0; i < n_base; ++i)
    if (starts_with(names[i], kLmPrefix)) names.push_back(names[i].substr(kLmPrefix.size()));
  for (size_t i = 0; i < n_base; ++i)
    if (!starts_with(names[i], kLmPrefix)) names.push_back(std::string(kLmPrefix) + names[i]);
  for (const auto& n : names) {
    auto it = per_tensor.find(n);
    if (it != per_tensor.end()) {
      if (matched_key) *matched_key = n;
      return it->second;
    }
  }
  if (matched_key) matched_key->clear();
  return global;
}

QuantizationConfig parse_quantization_config_json(std::string_view json, const std::string& label) {
  return parse_config(json, label, [&](formats::JsonReader& r, QuantizationConfig& cfg) {
    json_object(r, "the top level", [&](const std::string& key) {
      if (global_field(r, key, "", label, cfg)) {
      } else if (key == "per_tensor") {
        json_object(r, "per_tensor", [&](const std::string& name) {
          const std::string what = "per_tensor entry '" + name + "'";
          QuantParams p;
          bool has_bits = false, has_gs = false;
          json_object(r, what, [&](const std::string& field) {
            if (field == "bits") {
              p.bits = positive_int(r, what + " bits");
              has_bits = true;
            } else if (field == "group_size") {
              p.group_size = positive_int(r, what + " group_size");
              has_gs = true;
            } else {
              r.skip_value();
            }
          });
          if (!has_bits || !has_gs) r.fail(what + " needs both bits and group_size");
          cfg.per_tensor[name] = p;
        });
      } else {
        r.skip_value();
      }
    });
  });
}

QuantizationConfig parse_config_json_quantization(std::string_view json, const std::string& label) {
  bool found = false;
  QuantizationConfig cfg = parse_config(json, label, [&](formats::JsonReader& r, QuantizationConfig& cfg) {
    json_object(r, "the top level", [&](const std::string& key) {
      if (key != "quantization") {
        r.skip_value();
        return;
      }
      found = true;
      std::map<std::string, std::pair<int, std::optional<int>>> overrides;
      json_object(r, "\"quantization\"", [&](const std::string& k) {
        if (global_field(r, k, "quantization.", label, cfg)) {
        } else if (k != "quant_method" && r.peek() == '{') {
          const std::string what = "quantization override '" + k + "'";
          std::optional<int> bits, gs;
          json_object(r, what, [&](const std::string& field) {
            if (field == "bits") bits = positive_int(r, what + " bits");
            else if (field == "group_size") gs = positive_int(r, what + " group_size");
            else r.skip_value();
          });
          if (bits) overrides[k] = {*bits, gs};
        } else {
          r.skip_value();
        }
      });
      for (const auto& [name, o] : overrides) cfg.per_tensor[name] = {o.first, o.second.value_or(cfg.global.group_size)};
    });
  });
  if (!found)
    LMK_THROW(Format, "quantization config '", label,
              "': no \"quantization\" object at the top level (not an MLX quantized model?)");
  return cfg;
}

QuantizationConfig load_quantization_config(const std::string& dir) {
  const fs::path qc = fs::path(dir) / "quantization_config.json";
  if (regular_file_at(qc)) return parse_quantization_config_json(read_text_file(qc.string()), qc.string());
  const fs::path cj = fs::path(dir) / "config.json";
  if (regular_file_at(cj)) return parse_config_json_quantization(read_text_file(cj.string()), cj.string());
  LMK_THROW(Io, "load_quantized_weights: directory '", dir,
            "' holds neither quantization_config.json nor config.json (the quantization config)");
}

QuantizedWeights load_quantized_weights(const std::string& dir, Device device, Stream& stream) {
  // The directory and its shards, sorted by file name.
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) LMK_THROW(Io, "load_quantized_weights: directory '", dir, "' does not exist");
  if (ec) LMK_THROW(Io, "load_quantized_weights: cannot stat '", dir, "': ", ec.message());
  if (st.type() != fs::file_type::directory) LMK_THROW(Io, "load_quantized_weights: '", dir, "' is not a directory");
  std::vector<std::string> shard_names;
  {
    fs::directory_iterator it(dir, ec), end;
    if (ec) LMK_THROW(Io, "load_quantized_weights: cannot list '", dir, "': ", ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) LMK_THROW(Io, "load_quantized_weights: cannot list '", dir, "': ", ec.message());
      const std::string name = it->path().filename().string();
      if (ends_with(name, ".safetensors") && regular_file_at(it->path())) shard_names.push_back(name);
    }
    if (ec) LMK_THROW(Io, "load_quantized_weights: cannot list '", dir, "': ", ec.message());
  }
  if (shard_names.empty()) LMK_THROW(Io, "load_quantized_weights: no *.safetensors file in directory '", dir, "'");
  std::sort(shard_names.begin(), shard_names.end());

  QuantizedWeights out;
  out.config = load_quantization_config(dir);

  std::vector<SafetensorsFile> files;
  std::map<std::string, Entry> all;
  for (const auto& n : shard_names) {
    out.files.push_back((fs::path(dir) / n).string());
    files.push_back(SafetensorsFile::open(out.files.back()));
    const size_t fi = files.size() - 1;
    for (const auto& ti : files.back().tensors()) {
      auto [it, fresh] = all.emplace(ti.name, Entry{fi, &ti});
      if (!fresh)
        LMK_THROW(Format, "load_quantized_weights: tensor '", ti.name, "' appears in two shards: '",
                  out.files[it->second.file], "' and '", out.files[fi], "'");
    }
  }
  auto has = [&](const std::string& n) { return all.count(n) != 0; };
  auto info = [&](const std::string& n) -> const SafetensorsTensorInfo& { return *all.at(n).info; };
  auto file_of = [&](const std::string& n) -> const std::string& { return out.files[all.at(n).file]; };

  // Pair every <base>.scales; `claimed` maps each consumed tensor to the weight that took it.
  std::map<std::string, std::string> claimed;
  std::vector<Plan> plans;
  // (base "" = ignored.)
  auto claim = [&](const std::string& tensor, const std::string& base) {
    auto [it, fresh] = claimed.emplace(tensor, base);
    if (!fresh) {
      auto label = [](const std::string& b) { return b.empty() ? std::string("the ignored list") : "'" + b + "'"; };
      LMK_THROW(Format, "load_quantized_weights: tensor '", tensor, "' is claimed twice, by ", label(it->second),
                " and by ", label(base));
    }
  };
  auto ignore = [&](const std::string& tensor, const std::string& reason) {
    claim(tensor, "");
    out.ignored.push_back({tensor, file_of(tensor), reason});
  };
  for (const auto& [name, e] : all) {
    if (!ends_with(name, ".scales")) continue;
    Plan p;
    p.base = name.substr(0, name.size() - 7);
    p.scales = name;
    if (has(p.base + ".weight")) p.packed = p.base + ".weight";
    else if (!p.base.empty() && has(p.base)) p.packed = p.base;
    if (p.packed.empty()) {
      ignore(name, "scales without a packed tensor ('" + p.base + ".weight' or '" + p.base + "')");
      if (has(p.base + ".biases"))
        ignore(p.base + ".biases", "biases of '" + p.base + "', whose scales have no packed tensor");
      continue;
    }
    if (has(p.base + ".biases")) p.biases = p.base + ".biases";
    claim(p.packed, p.base);
    claim(p.scales, p.base);
    if (!p.biases.empty()) claim(p.biases, p.base);
    plans.push_back(std::move(p));
  }

  // Validate every weight before copying anything.
  for (Plan& p : plans) {
    const auto& pi = info(p.packed);
    const auto& si = info(p.scales);
    const std::string who = "load_quantized_weights: quantized weight '" + p.base + "'";
    if (pi.dtype_name != "U32" && pi.dtype_name != "U8")
      LMK_THROW(Format, who, ": packed tensor '", p.packed, "' has dtype ", pi.dtype_name, ", expected U32 or U8");
    if (pi.shape.size() < 2)
      LMK_THROW(Format, who, ": packed tensor '", p.packed, "' has shape ", shape_str(pi.shape),
                ", expected rank >= 2 ([..., N, packed columns])");
    if (pi.nbytes() == 0) LMK_THROW(Format, who, ": packed tensor '", p.packed, "' has no data (shape ", shape_str(pi.shape), ")");
    if (si.dtype_name != "BF16" && si.dtype_name != "F16" && si.dtype_name != "F32")
      LMK_THROW(Unsupported, who, ": scales '", p.scales, "' have dtype ", si.dtype_name, " (supported: BF16, F16, F32)");
    const size_t rank = pi.shape.size();
    if (si.shape.size() != rank || !std::equal(pi.shape.begin(), pi.shape.end() - 1, si.shape.begin()))
      LMK_THROW(Format, who, ": scales '", p.scales, "' have shape ", shape_str(si.shape), ", packed tensor '", p.packed,
                "' has shape ", shape_str(pi.shape), " (all dims but the last must agree)");
    if (!p.biases.empty()) {
      const auto& bi = info(p.biases);
      if (bi.dtype_name != si.dtype_name || bi.shape != si.shape)
        LMK_THROW(Format, who, ": biases '", p.biases, "' are ", bi.dtype_name, " ", shape_str(bi.shape), ", scales '",
                  p.scales, "' are ", si.dtype_name, " ", shape_str(si.shape), " (they must agree)");
    }
    std::string key;
    p.params = out.config.lookup(p.packed, &key);
    const std::string from = key.empty() ? "the global values of '" + out.config.source + "'"
                                         : "override '" + key + "' of '" + out.config.source + "'";
    check_params(p.params, p.base, p.packed, from);
    const int bits = p.params.bits, gs = p.params.group_size;
    const int64_t cols = pi.shape.back();
    const int64_t row_bytes = pi.dtype_name == "U32" ? cols * 4 : cols;
    const int64_t k = row_bytes * 8 / bits;
    const bool ok = (row_bytes * 8) % bits == 0 && expected_row_bytes(bits, k) == row_bytes && k % gs == 0 &&
                    si.shape.back() == k / gs;
    if (!ok)
      LMK_THROW(Format, who, ": bits/group_size from config disagree with tensor shapes: bits ", bits, ", group_size ",
                gs, " (from ", from, "); packed '", p.packed, "' ", pi.dtype_name, " ", shape_str(pi.shape), " holds ",
                row_bytes, " bytes per row", (row_bytes * 8) % bits == 0 ? " = K " + std::to_string(k) + " codes" : "",
                ", scales '", p.scales, "' have ", si.shape.back(), " groups per row",
                (row_bytes * 8) % bits == 0 && k % gs == 0 ? " (expected " + std::to_string(k / gs) + ")"
                                                           : " (K must be a multiple of group_size)");
    p.shape = pi.shape;
    p.shape.back() = k;
  }

  // Copy to the device.
  auto upload = [&](const std::string& n) { return files[all.at(n).file].upload(n, device, stream); };
  for (Plan& p : plans) {
    QuantizedWeight w;
    w.name = p.base;
    w.packed_name = p.packed;
    w.shape = p.shape;
    w.bits = p.params.bits;
    w.group_size = p.params.group_size;
    w.packed = upload(p.packed);
    w.scales = upload(p.scales);
    if (!p.biases.empty()) w.biases = upload(p.biases);
    out.quantized.emplace(p.base, std::move(w));
  }
  for (const auto& [name, e] : all) {
    if (claimed.count(name)) continue;
    if (ends_with(name, ".biases")) {
      ignore(name, "biases without scales ('" + name.substr(0, name.size() - 7) + ".scales' is absent)");
      continue;
    }
    const auto& ti = *e.info;
    if (ti.nbytes() == 0) {
      ignore(name, "no data (shape " + shape_str(ti.shape) + ")");
      continue;
    }
    if (ti.dtype) {
      out.tensors.emplace(name, upload(name));
    } else {  // no lmkernels dtype (BOOL, U16, U64, F8_*): raw bytes as u8, like load_all
      Buffer b(int64_t(ti.nbytes()), device);
      const auto bytes = files[e.file].bytes(name);
      copy_bytes(b.data(), device, bytes.data(), Device::cpu(), int64_t(bytes.size()), stream);
      out.tensors.emplace(name, std::move(b));
    }
  }
  std::sort(out.ignored.begin(), out.ignored.end(),
            [](const IgnoredTensor& a, const IgnoredTensor& b) { return a.name < b.name; });
  return out;
}

}  // namespace lmk
