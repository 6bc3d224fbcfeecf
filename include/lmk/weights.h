// MLX affine-quantized model directories (spec: quant-formats.md §5 "Quant config resolution",
// §7 "Loader API": the directory helper load_quantized_weights).
//
// A directory holds one or more `*.safetensors` shards plus the quantization config. The loader
// opens every shard (sorted by file name, byte-wise), merges their tensors, pairs each
// `<base>.scales` with its packed codes `<base>.weight` (or, when that is absent, `<base>`) and
// the optional `<base>.biases`, and copies everything to one device. The result plugs straight
// into the affine ops (lmk/affine.h):
//   quantized_matmul(x, qw.packed, qw.scales, *qw.biases, y, qw.bits, qw.group_size);
//
// Config resolution (choices where the spec leaves room are marked *):
//  * `quantization_config.json` is read when present; otherwise the `"quantization"` object of
//    `config.json`. (*) When both exist, quantization_config.json wins and config.json is not
//    read. (*) Only the key "quantization" of config.json is read — the spec names no other (a
//    "quantization_config" key is ignored like any other key). (*) A directory with neither
//    source is an error even when it holds no quantized tensors (mlx-native's helper also
//    fails without its config file); read such directories with SafetensorsFile directly.
//  * quantization_config.json: top-level `bits` (default 4) and `group_size` (default 64); a
//    `per_tensor` object maps tensor name -> {"bits": b, "group_size": g}, both required there.
//    Other top-level keys are ignored.
//  * config.json "quantization": `bits` (default 4) and `group_size` (default 64); every other
//    key except `quant_method` whose value is an object containing `bits` is a per-tensor
//    override, its `group_size` defaulting to the global one. Values of other kinds (strings,
//    false, objects without `bits`) are ignored. (*) A string `mode` other than "affine"
//    (MLX's non-affine formats) is rejected as Unsupported rather than loaded as affine.
//  * Numbers must be positive JSON integers (no fraction or exponent) that fit an int; JSON
//    must be valid UTF-8, and duplicate keys in the objects the loader interprets are errors.
//  * Lookup (QuantizationConfig::lookup), with the *packed* tensor's name: the exact name; the
//    name with one `.weight`/`.scales`/`.biases` suffix stripped; those two with a leading
//    `language_model.` removed (when present); those two with `language_model.` prepended
//    (when absent); else the global values.
//
// Pairing and validation:
//  * Packed codes: U32 [..., N, K*bits/32] or U8 [..., N, row_bytes] (rank >= 2; leading dims,
//    e.g. the expert dim of stacked MoE weights [E, N, ...], are kept). The logical shape
//    stored is [..., N, K] with K = cols*32/bits (U32) or row_bytes*8/bits (U8).
//  * scales: BF16, F16 or F32 (the dtypes the affine ops take), shape [..., N, K/group_size];
//    biases (optional): same dtype and shape as scales.
//  * bits must be 4, 6 or 8 and group_size 32, 64 or 128 (the affine ops' set; MLX's 2/3/5 bits
//    are rejected); K % group_size == 0 and the packed row must hold exactly K codes.
//  * (*) When `<base>.weight` exists it is the packed tensor even if a tensor `<base>` also
//    exists (that one then stays a plain tensor).
//
// Result: every tensor of the shards lands in exactly one place: a component of a
// QuantizedWeight, `tensors` (plain tensors, uploaded like SafetensorsFile::load_all: dtypes
// lmkernels lacks come as u8 buffers of raw bytes), or `ignored` with a reason: a `.biases`
// without its `.scales`, a `.scales` without a packed tensor (and that base's `.biases`), and
// plain tensors with zero elements (a Buffer cannot be empty).
//
// Errors (lmk::Error; messages name the directory or file and the tensor):
//   Io           the directory is missing or not a directory, cannot be listed, holds no
//                `*.safetensors` file, or holds neither quantization_config.json nor
//                config.json; a config file cannot be read; a shard cannot be opened
//   Format       invalid UTF-8 / JSON in a config file, a config value of the wrong type or
//                range, per_tensor entries without both fields, config.json without a
//                "quantization" object; a malformed shard (SafetensorsFile's checks); (*) the same
//                tensor name in two shards (file content, hence Format, naming both files); a
//                packed tensor that is not U32/U8 or has rank < 2; scales/biases ranks, leading
//                dims or dtypes disagreeing with the packed tensor; "bits/group_size from config
//                disagree with tensor shapes" (row bytes or scales shape); a tensor claimed by
//                two quantized weights
//   Unsupported  bits not in {4,6,8}, group_size not in {32,64,128} (naming the tensor and the
//                config key that supplied them), scales dtype other than BF16/F16/F32, config
//                `mode` other than "affine"
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmk/buffer.h"
#include "lmk/device.h"

namespace lmk {

struct QuantParams {
  int bits = 4;
  int group_size = 64;
};

struct QuantizationConfig {
  std::string source;  // path of the file the config came from ("<memory>" etc. for parse_*)
  QuantParams global;  // {4, 64} where the file gives no value
  std::map<std::string, QuantParams> per_tensor;  // key -> override, group_size resolved

  // Parameters for a tensor name, following the lookup order above. `matched_key`, when given,
  // receives the override key that matched ("" for the global values).
  QuantParams lookup(std::string_view tensor_name, std::string* matched_key = nullptr) const;
};

// Parse the two config formats from text (`label` names the source in errors and `source`).
QuantizationConfig parse_quantization_config_json(std::string_view json, const std::string& label = "<memory>");
QuantizationConfig parse_config_json_quantization(std::string_view json, const std::string& label = "<memory>");
// The config of a model directory: quantization_config.json, else config.json "quantization".
QuantizationConfig load_quantization_config(const std::string& dir);

struct QuantizedWeight {
  std::string name;            // base name (without .weight/.scales/.biases)
  std::string packed_name;     // "<base>.weight" or "<base>"
  std::vector<int64_t> shape;  // logical [..., N, K]
  int bits = 0;
  int group_size = 0;
  Buffer packed;                 // u32 [..., N, K*bits/32] or u8 [..., N, row_bytes], as stored
  Buffer scales;                 // [..., N, K/group_size], f32/f16/bf16
  std::optional<Buffer> biases;  // same shape and dtype as scales; nullopt when absent
};

struct IgnoredTensor {
  std::string name;
  std::string file;    // the shard holding it
  std::string reason;  // e.g. "biases without scales"
};

struct QuantizedWeights {
  QuantizationConfig config;
  std::vector<std::string> files;                   // shards read, in order
  std::map<std::string, QuantizedWeight> quantized;  // by base name
  std::map<std::string, Buffer> tensors;            // plain tensors by name
  std::vector<IgnoredTensor> ignored;               // sorted by name
};

QuantizedWeights load_quantized_weights(const std::string& dir, Device device, Stream& stream = default_stream());

}  // namespace lmk
