// Writes a small seed corpus of valid GGUF and safetensors files (argv[1]/gguf, argv[1]/safetensors).
#include <cstdio>
#include <filesystem>
#include <string>

#include "formats_writer.h"

using namespace lmk::testfmt;

static std::vector<uint8_t> bytes_of(std::initializer_list<float> v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.begin(), b.size());
  return b;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "gguf");
  std::filesystem::create_directories(dir / "safetensors");

  {  // metadata of every type, a few tensors
    GgufWriter w;
    w.kv_string("general.architecture", "llama");
    w.kv_scalar<uint32_t>("general.alignment", kU32, 32);
    w.kv_scalar<uint8_t>("a.u8", kU8, 7);
    w.kv_scalar<int16_t>("a.i16", kI16, -3);
    w.kv_scalar<float>("a.f32", kF32, 0.5f);
    w.kv_scalar<uint8_t>("a.bool", kBool, 1);
    w.kv_scalar<uint64_t>("a.u64", kU64, 9);
    w.kv_scalar<double>("a.f64", kF64, 2.0);
    w.kv_array<int32_t>("a.arr", kI32, {1, -2, 3});
    w.kv_string_array("tokenizer.ggml.tokens", {"<s>", "a", "b"});
    w.tensor("w", {4, 2}, 0, bytes_of({1, 2, 3, 4, 5, 6, 7, 8}));
    std::vector<uint8_t> q4(18, 0x88), q8(34, 1), k4(144, 0x11), k6(210, 0x22), x(136, 0x33);
    q4[1] = 0x3c;
    q8[1] = 0x3c;
    w.tensor("q4_0", {32}, 2, q4);
    w.tensor("q8_0", {32}, 8, q8);
    w.tensor("q4_K", {256}, 12, k4);
    w.tensor("q6_K", {256}, 14, k6);
    w.tensor("iq4_xs", {256}, 23, x);
    write_file((dir / "gguf" / "full.gguf").string(), w.build());
  }
  {
    GgufWriter w;
    w.version = 2;
    w.kv_string("k", "v");
    write_file((dir / "gguf" / "meta_only_v2.gguf").string(), w.build());
  }
  {
    GgufWriter w;
    w.set_alignment(1);
    w.tensor("h", {3}, 1, {0, 0x3c, 0, 0xc0, 1, 0});
    w.tensor("bf", {1}, 30, {0x80, 0x3f});
    write_file((dir / "gguf" / "align1.gguf").string(), w.build());
  }
  {
    SafetensorsWriter w;
    w.metadata = {{"format", "pt"}};
    w.tensor("a", "F32", {2}, bytes_of({1, 2}));
    w.tensor("b", "BF16", {1, 1}, {0x80, 0x3f});
    w.tensor("c", "U32", {}, {1, 0, 0, 0});
    w.tensor("e", "I64", {0}, {});
    write_file((dir / "safetensors" / "small.safetensors").string(), w.build());
  }
  {
    SafetensorsWriter w;
    w.tensor("model.layers.0.mlp.weight", "U32", {2, 4}, std::vector<uint8_t>(32, 0xAB));
    w.tensor("model.layers.0.mlp.scales", "BF16", {2, 1}, {0, 0x3c, 0, 0x3c});
    w.tensor("model.layers.0.mlp.biases", "BF16", {2, 1}, {0, 0, 0, 0});
    write_file((dir / "safetensors" / "mlx.safetensors").string(), w.build());
  }
  return 0;
}
