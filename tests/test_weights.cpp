// load_quantized_weights (quant-formats.md §5 config resolution, §7 directory helper): model
// directories written by the test writers (two shards + quantization_config.json, or
// config.json "quantization"), checked for shapes, bits/group_size overrides, byte-exact copies,
// the ignored list, every error path, and a loaded weight run through quantized_matmul against
// the fp64 reference.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "formats_writer.h"
#include "lmk/affine.h"
#include "lmk/buffer.h"
#include "lmk/error.h"
#include "lmk/half.h"
#include "lmk/weights.h"
#include "ref/affine.h"
#include "util/expect_error.h"

namespace lmk {
namespace {

namespace fs = std::filesystem;
using namespace testfmt;
using Bytes = std::vector<uint8_t>;

// A fresh directory under the temp dir, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("lmk_weights_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1)));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  void text(const std::string& name, const std::string& content) const {
    std::ofstream f(path / name, std::ios::binary);
    f << content;
  }
  void shard(const std::string& name, const SafetensorsWriter& w) const { write_file((path / name).string(), w.build()); }
};

Bytes random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = uint8_t(rng());
  return b;
}

int64_t dtype_bytes(const std::string& d) { return d == "F32" || d == "I32" || d == "U32" ? 4 : d == "U8" ? 1 : 2; }

Bytes as_bytes_u16(const std::vector<uint16_t>& v) {
  Bytes b(v.size() * 2);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// One MLX-quantized weight: packed codes (random bytes), scales and optional biases, written to
// the given writers (scales/biases may go to another shard). Records every tensor's bytes.
struct QSpec {
  std::string base;
  std::string packed_suffix = ".weight";  // or "" for a packed tensor named <base>
  std::string packed_dtype = "U32";       // or "U8"
  std::string scale_dtype = "BF16";
  std::vector<uint64_t> lead;             // leading dims before N (e.g. experts)
  uint64_t n = 0, k = 0;
  int bits = 4, gs = 64;
  bool biases = true;
};

using Expected = std::map<std::string, Bytes>;

void add_q(const QSpec& q, SafetensorsWriter& w, Expected& expect, uint64_t seed, SafetensorsWriter* scales_to = nullptr) {
  uint64_t outer = q.n;
  for (uint64_t d : q.lead) outer *= d;
  const uint64_t row_bytes = q.k * uint64_t(q.bits) / 8;
  std::vector<uint64_t> pshape = q.lead, sshape = q.lead;
  pshape.push_back(q.n);
  pshape.push_back(q.packed_dtype == "U32" ? row_bytes / 4 : row_bytes);
  sshape.push_back(q.n);
  sshape.push_back(q.k / uint64_t(q.gs));
  const std::string pn = q.base + q.packed_suffix;
  expect[pn] = random_bytes(size_t(outer * row_bytes), seed);
  w.tensor(pn, q.packed_dtype, pshape, expect[pn]);
  SafetensorsWriter& sw = scales_to ? *scales_to : w;
  const size_t sbytes = size_t(outer * (q.k / uint64_t(q.gs)) * uint64_t(dtype_bytes(q.scale_dtype)));
  expect[q.base + ".scales"] = random_bytes(sbytes, seed + 1);
  sw.tensor(q.base + ".scales", q.scale_dtype, sshape, expect[q.base + ".scales"]);
  if (q.biases) {
    expect[q.base + ".biases"] = random_bytes(sbytes, seed + 2);
    sw.tensor(q.base + ".biases", q.scale_dtype, sshape, expect[q.base + ".biases"]);
  }
}

void add_plain(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape, size_t nbytes,
               SafetensorsWriter& w, Expected& expect, uint64_t seed) {
  expect[name] = random_bytes(nbytes, seed);
  w.tensor(name, dtype, std::move(shape), expect[name]);
}

bool same_bytes(const Buffer& b, const Bytes& want) {
  return b.bytes() == int64_t(want.size()) && std::memcmp(b.data(), want.data(), want.size()) == 0;
}

std::vector<int64_t> shape_of(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

template <typename F>
std::string message_of(F&& f) {
  std::string m;
  (void)code_of(std::forward<F>(f), &m);
  return m;
}

// ---- a two-shard directory with quantization_config.json ----

TEST(QuantizedWeights, TwoShardsWithQuantizationConfigJson) {
  TempDir dir;
  dir.text("quantization_config.json", R"({
    "bits": 4, "group_size": 64, "quant_method": "mlx",
    "per_tensor": {
      "model.layers.1.mlp.down_proj": {"bits": 8, "group_size": 32},
      "language_model.model.layers.0.mlp.gate_proj": {"group_size": 128, "bits": 6, "note": [1, {"x": null}]},
      "unused.tensor": {"bits": 2, "group_size": 64}
    }
  })");
  // config.json is present too but must not be read while quantization_config.json exists.
  dir.text("config.json", R"({"quantization": {"bits": 8, "group_size": 128}})");
  dir.text("README.md", "not a shard");
  fs::create_directories(dir.path / "sub.safetensors");  // a directory, not a shard

  SafetensorsWriter s1, s2;
  Expected ex;
  add_q({.base = "model.embed_tokens", .n = 16, .k = 128}, s1, ex, 10);
  add_q({.base = "model.layers.0.self_attn.q_proj", .scale_dtype = "F16", .n = 8, .k = 256}, s1, ex, 20, &s2);
  add_q({.base = "model.layers.0.mlp.gate_proj", .packed_suffix = "", .packed_dtype = "U8", .scale_dtype = "F32",
         .n = 4, .k = 256, .bits = 6, .gs = 128},
        s1, ex, 30);
  add_q({.base = "model.layers.1.mlp.down_proj", .n = 6, .k = 96, .bits = 8, .gs = 32}, s2, ex, 40);
  add_q({.base = "model.layers.0.self_attn.k_proj", .n = 4, .k = 64, .biases = false}, s2, ex, 50);
  add_q({.base = "model.layers.1.mlp.switch_mlp.up_proj", .lead = {3}, .n = 4, .k = 128}, s2, ex, 60);
  add_plain("model.norm.weight", "F32", {8}, 32, s1, ex, 70);
  add_plain("orphan.biases", "BF16", {2, 2}, 8, s1, ex, 71);
  s1.tensor("empty", "F32", {0, 3}, {});
  add_plain("ghost.scales", "BF16", {2, 1}, 4, s2, ex, 72);
  add_plain("ghost.biases", "BF16", {2, 1}, 4, s2, ex, 73);
  add_plain("flags", "U16", {3}, 6, s2, ex, 74);
  add_plain("model.layers.0.input_layernorm.weight", "BF16", {8}, 16, s2, ex, 75);
  // Written out of order: shards are read sorted by file name.
  dir.shard("model-00002-of-00002.safetensors", s2);
  dir.shard("model-00001-of-00002.safetensors", s1);

  QuantizedWeights w = load_quantized_weights(dir.str(), Device::cpu());

  ASSERT_EQ(w.files.size(), 2u);
  EXPECT_EQ(fs::path(w.files[0]).filename(), "model-00001-of-00002.safetensors");
  EXPECT_EQ(fs::path(w.files[1]).filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(fs::path(w.config.source).filename(), "quantization_config.json");
  EXPECT_EQ(w.config.global.bits, 4);
  EXPECT_EQ(w.config.global.group_size, 64);
  EXPECT_EQ(w.config.per_tensor.size(), 3u);

  struct Want {
    std::string base, packed_name;
    std::vector<int64_t> shape, packed_shape, scales_shape;
    int bits, gs;
    DType packed_dtype, scales_dtype;
    bool biases;
  };
  const std::vector<Want> wants = {
      {"model.embed_tokens", "model.embed_tokens.weight", {16, 128}, {16, 16}, {16, 2}, 4, 64, DType::u32, DType::bf16, true},
      {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.q_proj.weight", {8, 256}, {8, 32}, {8, 4}, 4, 64,
       DType::u32, DType::f16, true},
      {"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.gate_proj", {4, 256}, {4, 192}, {4, 2}, 6, 128, DType::u8,
       DType::f32, true},
      {"model.layers.1.mlp.down_proj", "model.layers.1.mlp.down_proj.weight", {6, 96}, {6, 24}, {6, 3}, 8, 32, DType::u32,
       DType::bf16, true},
      {"model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.k_proj.weight", {4, 64}, {4, 8}, {4, 1}, 4, 64,
       DType::u32, DType::bf16, false},
      {"model.layers.1.mlp.switch_mlp.up_proj", "model.layers.1.mlp.switch_mlp.up_proj.weight", {3, 4, 128}, {3, 4, 16},
       {3, 4, 2}, 4, 64, DType::u32, DType::bf16, true},
  };
  ASSERT_EQ(w.quantized.size(), wants.size());
  for (const auto& want : wants) {
    SCOPED_TRACE(want.base);
    auto it = w.quantized.find(want.base);
    ASSERT_NE(it, w.quantized.end());
    const QuantizedWeight& q = it->second;
    EXPECT_EQ(q.name, want.base);
    EXPECT_EQ(q.packed_name, want.packed_name);
    EXPECT_EQ(q.shape, want.shape);
    EXPECT_EQ(q.bits, want.bits);
    EXPECT_EQ(q.group_size, want.gs);
    EXPECT_EQ(q.packed.device(), Device::cpu());
    EXPECT_EQ(q.packed.tensor().dtype(), want.packed_dtype);
    EXPECT_EQ(shape_of(q.packed.tensor()), want.packed_shape);
    EXPECT_EQ(q.scales.tensor().dtype(), want.scales_dtype);
    EXPECT_EQ(shape_of(q.scales.tensor()), want.scales_shape);
    EXPECT_TRUE(same_bytes(q.packed, ex.at(want.packed_name)));
    EXPECT_TRUE(same_bytes(q.scales, ex.at(want.base + ".scales")));
    ASSERT_EQ(q.biases.has_value(), want.biases);
    if (want.biases) {
      EXPECT_EQ(q.biases->tensor().dtype(), want.scales_dtype);
      EXPECT_EQ(shape_of(q.biases->tensor()), want.scales_shape);
      EXPECT_TRUE(same_bytes(*q.biases, ex.at(want.base + ".biases")));
    }
  }

  ASSERT_EQ(w.tensors.size(), 3u);
  EXPECT_TRUE(same_bytes(w.tensors.at("model.norm.weight"), ex.at("model.norm.weight")));
  EXPECT_EQ(w.tensors.at("model.norm.weight").tensor().dtype(), DType::f32);
  EXPECT_TRUE(same_bytes(w.tensors.at("model.layers.0.input_layernorm.weight"), ex.at("model.layers.0.input_layernorm.weight")));
  EXPECT_EQ(w.tensors.at("flags").tensor().dtype(), DType::u8);  // U16 has no lmkernels dtype: raw bytes
  EXPECT_TRUE(same_bytes(w.tensors.at("flags"), ex.at("flags")));

  ASSERT_EQ(w.ignored.size(), 4u);
  EXPECT_EQ(w.ignored[0].name, "empty");
  EXPECT_NE(w.ignored[0].reason.find("no data"), std::string::npos) << w.ignored[0].reason;
  EXPECT_EQ(w.ignored[1].name, "ghost.biases");
  EXPECT_EQ(w.ignored[2].name, "ghost.scales");
  EXPECT_NE(w.ignored[2].reason.find("scales without a packed tensor"), std::string::npos) << w.ignored[2].reason;
  EXPECT_EQ(w.ignored[3].name, "orphan.biases");
  EXPECT_NE(w.ignored[3].reason.find("biases without scales"), std::string::npos) << w.ignored[3].reason;
  EXPECT_EQ(fs::path(w.ignored[3].file).filename(), "model-00001-of-00002.safetensors");
  EXPECT_EQ(fs::path(w.ignored[1].file).filename(), "model-00002-of-00002.safetensors");

  // Every tensor of the shards is accounted for exactly once.
  std::multiset<std::string> seen;
  for (const auto& [base, q] : w.quantized) {
    seen.insert(q.packed_name);
    seen.insert(base + ".scales");
    if (q.biases) seen.insert(base + ".biases");
  }
  for (const auto& [name, b] : w.tensors) seen.insert(name);
  for (const auto& i : w.ignored) seen.insert(i.name);
  std::multiset<std::string> written;
  for (const auto* s : {&s1, &s2})
    for (const auto& t : s->tensors) written.insert(t.name);
  EXPECT_EQ(seen, written);
}

// ---- config.json "quantization" ----

TEST(QuantizedWeights, ConfigJsonQuantizationObject) {
  TempDir dir;
  dir.text("config.json", R"({
    "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"],
    "text_config": {"a": {"b": [1, 2.5e3, {"c": null, "d": true}]}, "quantization": "not this one"},
    "quantization": {
      "group_size": 32, "bits": 4, "quant_method": {"bits": 2}, "mode": "affine",
      "model.layers.0.mlp.up_proj": {"bits": 8},
      "language_model.model.layers.0.mlp.down_proj": {"bits": 6, "group_size": 64},
      "model.layers.0.mlp.gate": false,
      "model.layers.0.self_attn.o_proj": {"note": "an object without bits is no override"}
    },
    "quantization_config": {"bits": 8, "group_size": 128}
  })");
  SafetensorsWriter s;
  Expected ex;
  add_q({.base = "language_model.model.layers.0.mlp.up_proj", .n = 4, .k = 64, .bits = 8, .gs = 32}, s, ex, 1);
  add_q({.base = "model.layers.0.mlp.down_proj", .n = 4, .k = 128, .bits = 6, .gs = 64}, s, ex, 2);
  add_q({.base = "model.layers.0.self_attn.o_proj", .n = 4, .k = 64, .bits = 4, .gs = 32}, s, ex, 3);
  dir.shard("model.safetensors", s);

  QuantizedWeights w = load_quantized_weights(dir.str(), Device::cpu());
  EXPECT_EQ(fs::path(w.config.source).filename(), "config.json");
  EXPECT_EQ(w.config.global.bits, 4);
  EXPECT_EQ(w.config.global.group_size, 32);
  ASSERT_EQ(w.config.per_tensor.size(), 2u);
  EXPECT_EQ(w.config.per_tensor.at("model.layers.0.mlp.up_proj").bits, 8);
  EXPECT_EQ(w.config.per_tensor.at("model.layers.0.mlp.up_proj").group_size, 32);  // the global group_size
  ASSERT_EQ(w.quantized.size(), 3u);
  const auto& up = w.quantized.at("language_model.model.layers.0.mlp.up_proj");
  EXPECT_EQ(up.bits, 8);
  EXPECT_EQ(up.group_size, 32);
  EXPECT_EQ(up.shape, (std::vector<int64_t>{4, 64}));
  const auto& down = w.quantized.at("model.layers.0.mlp.down_proj");
  EXPECT_EQ(down.bits, 6);
  EXPECT_EQ(down.group_size, 64);
  EXPECT_EQ(down.shape, (std::vector<int64_t>{4, 128}));
  EXPECT_TRUE(same_bytes(down.packed, ex.at("model.layers.0.mlp.down_proj.weight")));
  const auto& o = w.quantized.at("model.layers.0.self_attn.o_proj");
  EXPECT_EQ(o.bits, 4);
  EXPECT_EQ(o.group_size, 32);
  EXPECT_TRUE(w.tensors.empty());
  EXPECT_TRUE(w.ignored.empty());
}

// ---- lookup order and config parsing ----

TEST(QuantizedWeights, LookupOrder) {
  QuantizationConfig c;
  c.global = {4, 64};
  c.per_tensor = {{"a.weight", {8, 32}},
                  {"a", {6, 128}},
                  {"b", {8, 64}},
                  {"language_model.b", {6, 32}},
                  {"model.c", {8, 128}},
                  {"language_model.d.weight", {6, 64}},
                  {"language_model.d", {8, 32}}};
  std::string key;
  auto is = [](QuantParams p, int bits, int gs) { return p.bits == bits && p.group_size == gs; };
  EXPECT_TRUE(is(c.lookup("a.weight", &key), 8, 32));  // exact name first
  EXPECT_EQ(key, "a.weight");
  EXPECT_TRUE(is(c.lookup("a.scales", &key), 6, 128));  // then the suffix stripped
  EXPECT_EQ(key, "a");
  EXPECT_TRUE(is(c.lookup("a.biases"), 6, 128));
  EXPECT_TRUE(is(c.lookup("a"), 6, 128));
  EXPECT_TRUE(is(c.lookup("b.weight", &key), 8, 64));  // unprefixed before prefix added
  EXPECT_EQ(key, "b");
  EXPECT_TRUE(is(c.lookup("language_model.b.weight", &key), 6, 32));  // the prefixed key matches the stripped name
  EXPECT_EQ(key, "language_model.b");
  EXPECT_TRUE(is(c.lookup("language_model.model.c.weight", &key), 8, 128));  // prefix removed
  EXPECT_EQ(key, "model.c");
  EXPECT_TRUE(is(c.lookup("d.weight", &key), 6, 64));  // prefix added: exact before stripped
  EXPECT_EQ(key, "language_model.d.weight");
  EXPECT_TRUE(is(c.lookup("d.scales", &key), 8, 32));
  EXPECT_EQ(key, "language_model.d");
  EXPECT_TRUE(is(c.lookup("e.weight", &key), 4, 64));  // global
  EXPECT_EQ(key, "");
  EXPECT_TRUE(is(c.lookup("a.weight.weight"), 8, 32));  // only one suffix is stripped
}

TEST(QuantizedWeights, ConfigParsing) {
  auto qc = [](std::string_view j) { return parse_quantization_config_json(j, "qc.json"); };
  auto cj = [](std::string_view j) { return parse_config_json_quantization(j, "cfg.json"); };
  const QuantizationConfig d = qc("{}");
  EXPECT_EQ(d.global.bits, 4);
  EXPECT_EQ(d.global.group_size, 64);
  EXPECT_EQ(d.source, "qc.json");
  EXPECT_EQ(qc(R"( {"bits": 8, "mode": "affine", "per_tensor": {}} )").global.bits, 8);
  const QuantizationConfig c = cj(R"({"quantization": {"group_size": 128}})");
  EXPECT_EQ(c.global.bits, 4);
  EXPECT_EQ(c.global.group_size, 128);

  for (std::string_view bad : {"", "{", "[]", "{} x", R"({"bits": 4, "bits": 8})", R"({"bits": "4"})",
                               R"({"bits": 4.0})", R"({"bits": 0})", R"({"bits": -4})", R"({"bits": 1e1})",
                               R"({"group_size": 99999999999})", R"({"per_tensor": []})",
                               R"({"per_tensor": {"x": {"bits": 8}}})", R"({"per_tensor": {"x": {"group_size": 32}}})",
                               R"({"per_tensor": {"x": {"bits": 8, "group_size": 32}, "x": {"bits": 8, "group_size": 32}}})",
                               R"({"per_tensor": {"x": 8}})", "{\"bits\": 4, \"x\": \"\xff\"}"}) {
    std::string msg;
    EXPECT_EQ(code_of([&] { (void)qc(bad); }, &msg), ErrorCode::Format) << bad;
    EXPECT_NE(msg.find("qc.json"), std::string::npos) << msg;
  }
  for (std::string_view bad : {R"({})", R"({"quantization": 5})", R"({"quantization": null})",
                               R"({"quantization": {"bits": 4}, "quantization": {"bits": 4}})",
                               R"({"quantization": {"bits": 4, "bits": 8}})",
                               R"({"quantization": {"x": {"bits": "8"}}})", R"({"other": [1,}, "quantization": {}})"}) {
    std::string msg;
    EXPECT_EQ(code_of([&] { (void)cj(bad); }, &msg), ErrorCode::Format) << bad;
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
  }
  EXPECT_EQ(code_of([&] { (void)qc(R"({"mode": "mxfp4"})"); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { (void)cj(R"({"quantization": {"mode": "nvfp4", "bits": 4}})"); }), ErrorCode::Unsupported);
}

// ---- directory errors ----

// A valid one-weight directory (4-bit, gs 64, K 128).
void write_minimal(const TempDir& dir, bool with_config = true) {
  if (with_config) dir.text("quantization_config.json", R"({"bits": 4, "group_size": 64})");
  SafetensorsWriter s;
  Expected ex;
  add_q({.base = "w", .n = 2, .k = 128}, s, ex, 5);
  dir.shard("model.safetensors", s);
}

TEST(QuantizedWeights, DirectoryErrors) {
  auto load = [](const std::string& d) { (void)load_quantized_weights(d, Device::cpu()); };
  {
    TempDir dir;
    write_minimal(dir);
    EXPECT_EQ(load_quantized_weights(dir.str(), Device::cpu()).quantized.size(), 1u);  // the valid baseline
    std::string msg;
    EXPECT_EQ(code_of([&] { load(dir.str() + "/nonexistent"); }, &msg), ErrorCode::Io);
    EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
    EXPECT_EQ(code_of([&] { load((dir.path / "model.safetensors").string()); }, &msg), ErrorCode::Io);
    EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
  }
  {
    TempDir dir;  // empty
    std::string msg;
    EXPECT_EQ(code_of([&] { load(dir.str()); }, &msg), ErrorCode::Io);
    EXPECT_NE(msg.find("no *.safetensors"), std::string::npos) << msg;
    dir.text("quantization_config.json", "{}");  // a config alone is no model
    EXPECT_EQ(code_of([&] { load(dir.str()); }), ErrorCode::Io);
  }
  {
    TempDir dir;  // shards but no config
    write_minimal(dir, false);
    std::string msg;
    EXPECT_EQ(code_of([&] { load(dir.str()); }, &msg), ErrorCode::Io);
    EXPECT_NE(msg.find("quantization_config.json"), std::string::npos) << msg;
    dir.text("config.json", R"({"model_type": "llama"})");  // config.json without "quantization"
    EXPECT_EQ(code_of([&] { load(dir.str()); }, &msg), ErrorCode::Format);
    EXPECT_NE(msg.find("\"quantization\""), std::string::npos) << msg;
    dir.text("config.json", R"({"quantization": {"bits": 4,}})");  // bad JSON in config.json
    EXPECT_EQ(code_of([&] { load(dir.str()); }, &msg), ErrorCode::Format);
    EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
    dir.text("quantization_config.json", R"({"bits": 4, "group_size": )");  // bad JSON wins over config.json
    EXPECT_EQ(code_of([&] { load(dir.str()); }, &msg), ErrorCode::Format);
    EXPECT_NE(msg.find("quantization_config.json"), std::string::npos) << msg;
  }
  {
    TempDir dir;  // the same tensor in two shards
    write_minimal(dir);
    SafetensorsWriter s;
    s.tensor("x", "F32", {1}, Bytes(4, 0));
    s.tensor("w.scales", "BF16", {2, 2}, Bytes(8, 0));
    dir.shard("model-2.safetensors", s);
    std::string msg;
    EXPECT_EQ(code_of([&] { load(dir.str()); }, &msg), ErrorCode::Format);
    EXPECT_NE(msg.find("'w.scales'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model-2.safetensors"), std::string::npos) << msg;
  }
  {
    TempDir dir;  // a malformed shard
    write_minimal(dir);
    dir.text("z.safetensors", "short");
    EXPECT_EQ(code_of([&] { load(dir.str()); }), ErrorCode::Format);
  }
}

// ---- tensor validation ----

// Loads a directory holding `config` and one weight "w" (N 2) built by `build`; returns the
// error code, the message in `msg`.
template <typename F>
ErrorCode load_error(const std::string& config, F&& build, std::string* msg) {
  TempDir dir;
  dir.text("quantization_config.json", config);
  SafetensorsWriter s;
  build(s);
  dir.shard("model.safetensors", s);
  return code_of([&] { (void)load_quantized_weights(dir.str(), Device::cpu()); }, msg);
}

TEST(QuantizedWeights, InconsistentTensorsAreErrors) {
  const std::string cfg4 = R"({"bits": 4, "group_size": 64})";
  // "w.weight" U32 [2, cols] (or the given dtype/shape), scales and biases of the given dtypes/shapes.
  struct W {
    std::vector<uint64_t> pshape = {2, 16};
    std::string pd = "U32";
    std::vector<uint64_t> sshape = {2, 2};
    std::string sd = "BF16", bd = "BF16";
    std::vector<uint64_t> bshape = {};  // = sshape when empty
  };
  auto nbytes = [](const std::vector<uint64_t>& shape, const std::string& d) {
    uint64_t n = 1;
    for (auto x : shape) n *= x;
    return size_t(n * uint64_t(dtype_bytes(d)));
  };
  auto build = [&](W w) {
    return [=](SafetensorsWriter& s) {
      s.tensor("w.weight", w.pd, w.pshape, Bytes(nbytes(w.pshape, w.pd), 0x11));
      s.tensor("w.scales", w.sd, w.sshape, Bytes(nbytes(w.sshape, w.sd), 0));
      const auto bs = w.bshape.empty() ? w.sshape : w.bshape;
      s.tensor("w.biases", w.bd, bs, Bytes(nbytes(bs, w.bd), 0));
    };
  };
  {  // the valid baseline
    TempDir dir;
    dir.text("quantization_config.json", cfg4);
    SafetensorsWriter s;
    build(W{})(s);
    dir.shard("m.safetensors", s);
    const QuantizedWeights w = load_quantized_weights(dir.str(), Device::cpu());
    ASSERT_EQ(w.quantized.size(), 1u);
    EXPECT_EQ(w.quantized.at("w").shape, (std::vector<int64_t>{2, 128}));
  }
  struct Case {
    const char* what;
    std::string config;
    W w;
    ErrorCode code;
    std::vector<std::string> in_message;
  };
  const std::string disagree = "bits/group_size from config disagree with tensor shapes";
  const std::vector<Case> cases = {
      {"scales groups", cfg4, {.sshape = {2, 3}}, ErrorCode::Format, {disagree, "'w'", "'w.scales'"}},
      {"bits of config vs shapes", R"({"bits": 8, "group_size": 64})", {}, ErrorCode::Format, {disagree, "bits 8"}},
      {"K % group_size", cfg4, {.pshape = {2, 12}, .sshape = {2, 1}}, ErrorCode::Format, {disagree, "multiple"}},
      {"6-bit row not whole codes", R"({"bits": 6, "group_size": 32})", {.sshape = {2, 16}}, ErrorCode::Format,
       {disagree}},
      {"bits 3", R"({"bits": 3, "group_size": 64})", {}, ErrorCode::Unsupported, {"bits 3", "'w'"}},
      {"group_size 16", R"({"bits": 4, "group_size": 16})", {}, ErrorCode::Unsupported, {"group_size 16"}},
      {"override bits 2", R"({"per_tensor": {"w": {"bits": 2, "group_size": 64}}})", {}, ErrorCode::Unsupported,
       {"bits 2", "override 'w'"}},
      {"packed dtype", cfg4, {.pd = "F32"}, ErrorCode::Format, {"'w.weight'", "U32 or U8"}},
      {"packed rank", cfg4, {.pshape = {32}}, ErrorCode::Format, {"rank"}},
      {"packed empty", cfg4, {.pshape = {0, 16}, .sshape = {0, 2}}, ErrorCode::Format, {"no data"}},
      {"scales dtype", cfg4, {.sd = "I32", .bd = "I32"}, ErrorCode::Unsupported, {"'w.scales'", "I32"}},
      {"scales rank", cfg4, {.sshape = {1, 2, 2}}, ErrorCode::Format, {"'w.scales'"}},
      {"scales rows", cfg4, {.sshape = {3, 2}}, ErrorCode::Format, {"'w.scales'"}},
      {"biases shape", cfg4, {.bshape = {2, 3}}, ErrorCode::Format, {"'w.biases'"}},
      {"biases dtype", cfg4, {.bd = "F16"}, ErrorCode::Format, {"'w.biases'"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    TempDir dir;
    dir.text("quantization_config.json", c.config);
    SafetensorsWriter s;
    build(c.w)(s);
    dir.shard("m.safetensors", s);
    std::string msg;
    EXPECT_EQ(code_of([&] { (void)load_quantized_weights(dir.str(), Device::cpu()); }, &msg), c.code) << msg;
    for (const auto& part : c.in_message) EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
}

// ---- a loaded weight plugs into the affine ops ----

uint16_t bf16_of(double v) { return f32_to_bf16_bits(float(v)); }

TEST(QuantizedWeights, LoadedWeightsRunQuantizedMatmul) {
  TempDir dir;
  dir.text("quantization_config.json",
           R"({"bits": 4, "group_size": 32, "per_tensor": {"b": {"bits": 6, "group_size": 64}}})");
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> us(0.002, 0.05), ub(-0.4, 0.4);
  struct Written {
    std::string base, packed_dtype;
    std::vector<uint64_t> lead;
    int64_t n, k;
    int bits, gs;
    Bytes packed;
    std::vector<uint16_t> s, b;
  };
  std::vector<Written> ws = {{"a", "U32", {}, 6, 96, 4, 32, {}, {}, {}},
                             {"b", "U8", {}, 5, 128, 6, 64, {}, {}, {}},
                             {"experts", "U32", {3}, 4, 64, 4, 32, {}, {}, {}}};
  SafetensorsWriter sw;
  for (auto& w : ws) {
    const uint64_t e = w.lead.empty() ? 1 : w.lead[0];
    const uint64_t rows = e * uint64_t(w.n), row_bytes = uint64_t(w.k * w.bits / 8), groups = uint64_t(w.k / w.gs);
    w.packed = random_bytes(size_t(rows * row_bytes), 1000 + uint64_t(w.bits));
    w.s.resize(size_t(rows * groups));
    w.b.resize(w.s.size());
    for (auto& x : w.s) x = bf16_of(us(rng));
    for (auto& x : w.b) x = bf16_of(ub(rng));
    std::vector<uint64_t> ps = w.lead, ss = w.lead;
    ps.insert(ps.end(), {uint64_t(w.n), w.packed_dtype == "U32" ? row_bytes / 4 : row_bytes});
    ss.insert(ss.end(), {uint64_t(w.n), groups});
    sw.tensor(w.base + ".weight", w.packed_dtype, ps, w.packed);
    sw.tensor(w.base + ".scales", "BF16", ss, as_bytes_u16(w.s));
    sw.tensor(w.base + ".biases", "BF16", ss, as_bytes_u16(w.b));
  }
  dir.shard("model.safetensors", sw);
  const QuantizedWeights loaded = load_quantized_weights(dir.str(), Device::cpu());

  const int64_t M = 3;
  for (const auto& w : ws) {
    SCOPED_TRACE(w.base);
    const QuantizedWeight& q = loaded.quantized.at(w.base);
    ASSERT_TRUE(q.biases.has_value());
    Buffer x(DType::f32, {M, w.k}, Device::cpu());
    std::normal_distribution<double> nd;
    for (int64_t i = 0; i < M * w.k; ++i) x.tensor().data_as<float>()[i] = float(nd(rng));
    const int64_t top_k = 2, experts = w.lead.empty() ? 0 : int64_t(w.lead[0]);
    const std::vector<int32_t> ids = {2, 0, 1, 2, 0, 0};  // [M, top_k] for the routed op
    const std::vector<int64_t> yshape = experts ? std::vector<int64_t>{M, top_k, w.n} : std::vector<int64_t>{M, w.n};
    Buffer y(DType::f32, yshape, Device::cpu()), yp(DType::f32, yshape, Device::cpu());
    // The loaded weight also packs (pack_affine) and runs packed: the same reference, yp.
    const PackedAffine pw = pack_affine(q.packed, q.scales, *q.biases, q.bits, q.group_size);
    if (experts) {
      Buffer idb(DType::i32, {M, top_k}, Device::cpu());
      std::memcpy(idb.data(), ids.data(), ids.size() * 4);
      quantized_matmul_id(x, q.packed, q.scales, *q.biases, idb, y, q.bits, q.group_size);
      quantized_matmul_id(x, pw, idb, yp);
    } else {
      quantized_matmul(x, q.packed, q.scales, *q.biases, y, q.bits, q.group_size);
      quantized_matmul(x, pw, yp);
    }
    const int64_t row_bytes = w.k * w.bits / 8, groups = w.k / w.gs;
    double worst = 0;
    for (int64_t m = 0; m < M; ++m) {
      std::vector<double> xd(size_t(w.k));
      for (int64_t k = 0; k < w.k; ++k) xd[size_t(k)] = x.tensor().data_as<float>()[m * w.k + k];
      for (int64_t slot = 0; slot < (experts ? top_k : 1); ++slot) {
        const int64_t e = experts ? ids[size_t(m * top_k + slot)] : 0;
        for (int64_t n = 0; n < w.n; ++n) {
          const int64_t row = e * w.n + n;
          std::vector<double> s(static_cast<size_t>(groups)), b(static_cast<size_t>(groups));
          for (int64_t g = 0; g < groups; ++g) {
            s[size_t(g)] = bf16_bits_to_f32(w.s[size_t(row * groups + g)]);
            b[size_t(g)] = bf16_bits_to_f32(w.b[size_t(row * groups + g)]);
          }
          const auto r = ref::affine_dot(xd.data(), w.packed.data() + row * row_bytes, s.data(), b.data(), w.k, w.bits, w.gs);
          const int64_t at = (m * (experts ? top_k : 1) + slot) * w.n + n;
          for (const Buffer* out : {&y, &yp})
            worst = std::max(worst, std::fabs(double(out->tensor().data_as<float>()[at]) - r.y) / r.norm);
        }
      }
    }
    EXPECT_LE(worst, 1e-6);
  }
}

}  // namespace
}  // namespace lmk
