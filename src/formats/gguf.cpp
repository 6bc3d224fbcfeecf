// GGUF reader (quant-formats.md §6). Every read goes through a bounds-checked cursor; counts are
// checked against the remaining bytes before anything is reserved.
#include "lmk/gguf.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstring>
#include <limits>
#include <sstream>

#include "formats/mapped_file.h"
#include "lmk/error.h"
#include "lmk/quant.h"

namespace lmk {

namespace {

constexpr uint64_t kInt64Max = uint64_t(std::numeric_limits<int64_t>::max());

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL: return 1;
    case GgufType::UINT16:
    case GgufType::INT16: return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32: return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64: return 8;
    default: return 0;  // STRING, ARRAY
  }
}

bool known_type(uint32_t t) { return t <= uint32_t(GgufType::FLOAT64); }

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;  // little-endian host (static_asserted in formats/blocks.h)
}

// Bounds-checked reader over the file bytes; errors name the file and the byte offset.
struct Cursor {
  const uint8_t* base;
  uint64_t size;
  uint64_t pos = 0;
  const std::string& file;

  uint64_t remaining() const { return size - pos; }

  [[noreturn]] void fail(ErrorCode code, uint64_t at, const std::string& msg) const {
    throw Error(code, detail::cat("GGUF '", file, "': ", msg, " (at byte ", at, ")"));
  }
  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail(ErrorCode::Format, pos, detail::cat("truncated: ", what, " needs ", n, " bytes, ", remaining(), " left"));
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v = load_le<T>(base + pos);
    pos += sizeof(T);
    return v;
  }
  std::span<const uint8_t> take(uint64_t n, const std::string& what) {
    need(n, what);
    std::span<const uint8_t> s(base + pos, size_t(n));
    pos += n;
    return s;
  }
  std::string_view string(const std::string& what, uint64_t cap) {
    const uint64_t at = pos;
    const uint64_t len = read<uint64_t>(what + " length");
    if (len > cap) fail(ErrorCode::Format, at, detail::cat(what, " length ", len, " exceeds the cap of ", cap, " bytes"));
    if (len > remaining())
      fail(ErrorCode::Format, at, detail::cat(what, " length ", len, " exceeds the ", remaining(), " bytes left"));
    std::string_view s(reinterpret_cast<const char*>(base + pos), size_t(len));
    pos += len;
    if (!formats::valid_utf8(s)) fail(ErrorCode::Format, at, what + " is not valid UTF-8");
    return s;
  }
};

struct TypeEntry {
  const char* name;
  bool removed;
};
// ggml_type ids 0..42 (include/ggml.h); removed ids keep a placeholder.
constexpr TypeEntry kGgmlTypes[] = {
    {"f32", false},      {"f16", false},      {"q4_0", false},      {"q4_1", false},     {"q4_2", true},
    {"q4_3", true},      {"q5_0", false},     {"q5_1", false},      {"q8_0", false},     {"q8_1", false},
    {"q2_K", false},     {"q3_K", false},     {"q4_K", false},      {"q5_K", false},     {"q6_K", false},
    {"q8_K", false},     {"iq2_xxs", false},  {"iq2_xs", false},    {"iq3_xxs", false},  {"iq1_s", false},
    {"iq4_nl", false},   {"iq3_s", false},    {"iq2_s", false},     {"iq4_xs", false},   {"i8", false},
    {"i16", false},      {"i32", false},      {"i64", false},       {"f64", false},      {"iq1_m", false},
    {"bf16", false},     {"q4_0_4_4", true},  {"q4_0_4_8", true},   {"q4_0_8_8", true},  {"tq1_0", false},
    {"tq2_0", false},    {"iq4_nl_4_4", true}, {"iq4_nl_4_8", true}, {"iq4_nl_8_8", true}, {"mxfp4", false},
    {"nvfp4", false},    {"q1_0", false},     {"type42", false},
};
constexpr uint32_t kGgmlTypeCount = sizeof(kGgmlTypes) / sizeof(kGgmlTypes[0]);
static_assert(kGgmlTypeCount == 43);

// lmkernels' supported set (quant-formats.md §1): REQ rows plus optional I8 and F64; I64 (27)
// is rejected as the spec's table says.
std::optional<DType> supported_ggml_type(uint32_t id) {
  if (id == 27) return std::nullopt;
  return dtype_from_ggml_id(int(id));
}

}  // namespace

std::string_view ggml_type_name(uint32_t id) {
  if (id >= kGgmlTypeCount) return "unknown";
  return kGgmlTypes[id].removed ? "removed" : kGgmlTypes[id].name;
}

const char* to_string(GgufType t) {
  static const char* const names[] = {"UINT8",  "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                      "BOOL",   "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  return known_type(uint32_t(t)) ? names[uint32_t(t)] : "INVALID";
}

// ---- GgufArray / GgufValue ----

namespace {
template <typename R>
R array_elem(const GgufArray& a, uint64_t i, const char* want) {
  if (i >= a.count) LMK_THROW(InvalidArgument, "GgufArray: index ", i, " out of range (", a.count, " elements)");
  const uint8_t* p = a.raw.data() + i * scalar_size(a.elem_type);
  switch (a.elem_type) {
    case GgufType::UINT8: return R(load_le<uint8_t>(p));
    case GgufType::INT8: return R(load_le<int8_t>(p));
    case GgufType::UINT16: return R(load_le<uint16_t>(p));
    case GgufType::INT16: return R(load_le<int16_t>(p));
    case GgufType::UINT32: return R(load_le<uint32_t>(p));
    case GgufType::INT32: return R(load_le<int32_t>(p));
    case GgufType::UINT64: return R(load_le<uint64_t>(p));
    case GgufType::INT64: return R(load_le<int64_t>(p));
    case GgufType::BOOL: return R(p[0] != 0);
    case GgufType::FLOAT32:
      if constexpr (std::is_floating_point_v<R>) return R(load_le<float>(p));
      break;
    case GgufType::FLOAT64:
      if constexpr (std::is_floating_point_v<R>) return R(load_le<double>(p));
      break;
    default: break;
  }
  LMK_THROW(InvalidArgument, "GgufArray: ", to_string(a.elem_type), " elements do not convert to ", want);
}
}  // namespace

int64_t GgufArray::int_at(uint64_t i) const { return array_elem<int64_t>(*this, i, "int64"); }
uint64_t GgufArray::uint_at(uint64_t i) const { return array_elem<uint64_t>(*this, i, "uint64"); }
double GgufArray::float_at(uint64_t i) const { return array_elem<double>(*this, i, "double"); }
std::string_view GgufArray::string_at(uint64_t i) const {
  if (elem_type != GgufType::STRING) LMK_THROW(InvalidArgument, "GgufArray: ", to_string(elem_type), " is not STRING");
  if (i >= count) LMK_THROW(InvalidArgument, "GgufArray: index ", i, " out of range (", count, " elements)");
  return strings[size_t(i)];
}

std::string GgufValue::str() const { return str(8); }

namespace {
// Shortest text that reads back to the same value (f32 values as f32).
std::string float_text(double v, bool f32) {
  char buf[64];
  auto r = f32 ? std::to_chars(buf, buf + sizeof buf, float(v)) : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
}  // namespace

std::string GgufValue::str(size_t max_items) const {
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, bool>) os << (x ? "true" : "false");
        else if constexpr (std::is_same_v<X, std::string_view>) os << '"' << x << '"';
        else if constexpr (std::is_same_v<X, GgufArray>) {
          os << '[';
          const uint64_t n = std::min<uint64_t>(x.count, max_items);
          for (uint64_t i = 0; i < n; ++i) {
            if (i) os << ", ";
            if (x.elem_type == GgufType::STRING) os << '"' << x.strings[size_t(i)] << '"';
            else if (x.elem_type == GgufType::FLOAT32 || x.elem_type == GgufType::FLOAT64)
              os << float_text(x.float_at(i), x.elem_type == GgufType::FLOAT32);
            else if (x.elem_type == GgufType::INT8 || x.elem_type == GgufType::INT16 ||
                     x.elem_type == GgufType::INT32 || x.elem_type == GgufType::INT64)
              os << x.int_at(i);
            else if (x.elem_type == GgufType::BOOL) os << (x.uint_at(i) ? "true" : "false");
            else os << x.uint_at(i);
          }
          if (x.count > n) os << ", ... (" << x.count << " " << to_string(x.elem_type) << ")";
          os << ']';
        } else if constexpr (std::is_same_v<X, double>) {
          os << float_text(x, type == GgufType::FLOAT32);
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // overflow excluded at parse time
  return n;
}

// ---- GgufFile ----

struct GgufFile::Impl {
  std::string path;
  formats::MappedFile map;  // empty for parse()
  std::span<const uint8_t> bytes;
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_start = 0;
  std::vector<std::string> warnings;
  std::vector<std::string> keys;
  std::unordered_map<std::string, GgufValue> kv;
  std::vector<GgufTensorInfo> tensors;
  std::vector<std::string> names;
  std::unordered_map<std::string, size_t> index;

  void parse(const GgufOptions& opts);
  GgufValue read_value(Cursor& c, GgufType type, const std::string& key, const GgufOptions& opts, uint64_t at);
  const GgufTensorInfo& find(std::string_view name) const {
    auto it = index.find(std::string(name));
    if (it == index.end()) LMK_THROW(InvalidArgument, "tensor '", name, "' not found in GGUF file '", path, "'");
    return tensors[it->second];
  }
};

GgufValue GgufFile::Impl::read_value(Cursor& c, GgufType type, const std::string& key, const GgufOptions& opts,
                                     uint64_t at) {
  GgufValue val;
  val.type = type;
  const std::string what = "value of key '" + key + "'";
  switch (type) {
    case GgufType::UINT8: val.v = uint64_t(c.read<uint8_t>(what)); break;
    case GgufType::UINT16: val.v = uint64_t(c.read<uint16_t>(what)); break;
    case GgufType::UINT32: val.v = uint64_t(c.read<uint32_t>(what)); break;
    case GgufType::UINT64: val.v = c.read<uint64_t>(what); break;
    case GgufType::INT8: val.v = int64_t(c.read<int8_t>(what)); break;
    case GgufType::INT16: val.v = int64_t(c.read<int16_t>(what)); break;
    case GgufType::INT32: val.v = int64_t(c.read<int32_t>(what)); break;
    case GgufType::INT64: val.v = c.read<int64_t>(what); break;
    case GgufType::FLOAT32: val.v = double(c.read<float>(what)); break;
    case GgufType::FLOAT64: val.v = c.read<double>(what); break;
    case GgufType::BOOL: {
      const uint64_t p = c.pos;
      const uint8_t b = c.read<uint8_t>(what);
      if (opts.strict_bool && b > 1) c.fail(ErrorCode::Format, p, detail::cat("key '", key, "': BOOL byte ", int(b), " is not 0 or 1"));
      val.v = b != 0;
      break;
    }
    case GgufType::STRING: val.v = c.string(what, opts.max_string_bytes); break;
    case GgufType::ARRAY: {
      GgufArray arr;
      const uint64_t tp = c.pos;
      const uint32_t et = c.read<uint32_t>("array type of key '" + key + "'");
      if (et == uint32_t(GgufType::ARRAY)) c.fail(ErrorCode::Format, tp, "key '" + key + "': nested arrays are not allowed");
      if (!known_type(et)) c.fail(ErrorCode::Format, tp, detail::cat("key '", key, "' has invalid GGUF array type ", et));
      arr.elem_type = GgufType(et);
      const uint64_t cp = c.pos;
      arr.count = c.read<uint64_t>("array count of key '" + key + "'");
      if (arr.count > opts.max_array_elems)
        c.fail(ErrorCode::Format, cp, detail::cat("key '", key, "': array of ", arr.count, " elements exceeds the cap of ",
                                                  opts.max_array_elems));
      const uint64_t min_size = arr.elem_type == GgufType::STRING ? 8 : scalar_size(arr.elem_type);
      if (arr.count > c.remaining() / min_size)
        c.fail(ErrorCode::Format, cp, detail::cat("key '", key, "': array of ", arr.count, " ", to_string(arr.elem_type),
                                                  " needs more than the ", c.remaining(), " bytes left"));
      if (arr.elem_type == GgufType::STRING) {
        arr.strings.reserve(size_t(arr.count));
        for (uint64_t i = 0; i < arr.count; ++i)
          arr.strings.push_back(c.string(detail::cat("element ", i, " of key '", key, "'"), opts.max_string_bytes));
      } else {
        const uint64_t p = c.pos;
        arr.raw = c.take(arr.count * min_size, what);
        if (arr.elem_type == GgufType::BOOL && opts.strict_bool)
          for (uint64_t i = 0; i < arr.count; ++i)
            if (arr.raw[size_t(i)] > 1)
              c.fail(ErrorCode::Format, p + i, detail::cat("key '", key, "': BOOL element ", i, " is not 0 or 1"));
      }
      val.v = std::move(arr);
      break;
    }
    default: c.fail(ErrorCode::Format, at, detail::cat("key '", key, "' has invalid GGUF type ", uint32_t(type)));
  }
  return val;
}

void GgufFile::Impl::parse(const GgufOptions& opts) {
  Cursor c{bytes.data(), bytes.size(), 0, path};
  if (bytes.size() < 24)
    c.fail(ErrorCode::Format, 0, detail::cat("truncated header: ", bytes.size(), " bytes, a GGUF file has at least 24"));
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != 0x46554747u) c.fail(ErrorCode::Format, 0, "bad magic (not a GGUF file)");
  version = c.read<uint32_t>("version");
  if (version == 1) c.fail(ErrorCode::Unsupported, 4, "GGUFv1 not supported");
  if (version > 65535) {
    const uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3) c.fail(ErrorCode::Unsupported, 4, "big-endian GGUF not supported");
    c.fail(ErrorCode::Format, 4, detail::cat("bad version ", version));
  }
  if (version == 0) c.fail(ErrorCode::Format, 4, "bad version 0");
  if (version > 3) c.fail(ErrorCode::Unsupported, 4, detail::cat("GGUF version ", version, " not supported (2, 3)"));

  const uint64_t tc_at = c.pos;
  const uint64_t tensor_count = c.read<uint64_t>("tensor_count");
  const uint64_t kv_at = c.pos;
  const uint64_t kv_count = c.read<uint64_t>("metadata_kv_count");
  // Minimal entry sizes (spec §6 checklist 2): a KV takes >= 14 bytes, a tensor info >= 24.
  if (tensor_count > opts.max_tensors)
    c.fail(ErrorCode::Format, tc_at, detail::cat("tensor_count ", tensor_count, " exceeds the cap of ", opts.max_tensors));
  if (kv_count > opts.max_kvs)
    c.fail(ErrorCode::Format, kv_at, detail::cat("metadata_kv_count ", kv_count, " exceeds the cap of ", opts.max_kvs));
  if (tensor_count > c.remaining() / 24)
    c.fail(ErrorCode::Format, tc_at, detail::cat("tensor_count ", tensor_count, " cannot fit in the ", c.remaining(), " bytes left"));
  if (kv_count > c.remaining() / 14 || kv_count * 14 > c.remaining() - tensor_count * 24)
    c.fail(ErrorCode::Format, kv_at, detail::cat("metadata_kv_count ", kv_count, " with ", tensor_count,
                                                 " tensors cannot fit in the ", c.remaining(), " bytes left"));

  keys.reserve(size_t(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    const uint64_t at = c.pos;
    const std::string key(c.string(detail::cat("key of KV ", i), opts.max_string_bytes));
    if (key.empty()) c.fail(ErrorCode::Format, at, detail::cat("KV ", i, " has an empty key"));
    if (kv.count(key)) c.fail(ErrorCode::Format, at, "duplicate metadata key '" + key + "'");
    const uint64_t tat = c.pos;
    const uint32_t t = c.read<uint32_t>("type of key '" + key + "'");
    if (!known_type(t)) c.fail(ErrorCode::Format, tat, detail::cat("key '", key, "' has invalid GGUF type ", t));
    GgufValue v = read_value(c, GgufType(t), key, opts, tat);
    if (key == "general.alignment") {
      if (v.type != GgufType::UINT32)
        c.fail(ErrorCode::Format, tat, detail::cat("general.alignment must be UINT32, got ", to_string(v.type)));
      const uint64_t a = std::get<uint64_t>(v.v);
      if (a == 0 || (a & (a - 1)) != 0)
        c.fail(ErrorCode::Format, tat, detail::cat("general.alignment ", a, " is not a non-zero power of two"));
      alignment = a;
    }
    keys.push_back(key);
    kv.emplace(key, std::move(v));
  }

  tensors.reserve(size_t(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const uint64_t at = c.pos;
    GgufTensorInfo ti;
    ti.name = std::string(c.string(detail::cat("name of tensor ", i), opts.max_string_bytes));
    if (ti.name.empty()) c.fail(ErrorCode::Format, at, detail::cat("tensor ", i, " has an empty name"));
    if (index.count(ti.name)) c.fail(ErrorCode::Format, at, "duplicate tensor name '" + ti.name + "'");
    if (ti.name.size() > 63)
      warnings.push_back(detail::cat("tensor '", ti.name, "': name longer than ggml's 63 bytes"));
    const std::string tn = "tensor '" + ti.name + "'";
    const uint64_t nd_at = c.pos;
    const uint32_t n_dims = c.read<uint32_t>("n_dims of " + tn);
    if (n_dims > 4) c.fail(ErrorCode::Format, nd_at, detail::cat(tn, ": n_dims ", n_dims, " exceeds 4"));
    uint64_t prod = 1;
    bool zero = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dat = c.pos;
      const uint64_t dim = c.read<uint64_t>(detail::cat("dim ", d, " of ", tn));
      if (dim > kInt64Max) c.fail(ErrorCode::Format, dat, detail::cat(tn, ": dim ", d, " = ", dim, " exceeds INT64_MAX"));
      if (dim == 0) zero = true;
      else if (prod > kInt64Max / dim) c.fail(ErrorCode::Format, dat, tn + ": element count overflows int64");
      else prod *= dim;
      ti.ne.push_back(int64_t(dim));
    }
    const uint64_t numel = zero ? 0 : prod;
    const uint64_t type_at = c.pos;
    ti.ggml_type = c.read<uint32_t>("type of " + tn);
    const uint64_t off_at = c.pos;
    ti.offset = c.read<uint64_t>("offset of " + tn);
    if (ti.ggml_type >= kGgmlTypeCount || kGgmlTypes[ti.ggml_type].removed)
      c.fail(ErrorCode::Format, type_at, detail::cat("unknown ggml type ", ti.ggml_type, " for ", tn));
    auto dt = supported_ggml_type(ti.ggml_type);
    if (!dt)
      c.fail(ErrorCode::Unsupported, type_at, detail::cat("unsupported ggml type ", ti.ggml_type, " (",
                                                          kGgmlTypes[ti.ggml_type].name, ") for tensor '", ti.name, "'"));
    ti.dtype = *dt;
    const auto& info = dtype_info(ti.dtype);
    const int64_t ne0 = n_dims > 0 ? ti.ne[0] : 1;
    if (ne0 % info.block_elems != 0)
      c.fail(ErrorCode::Format, type_at, detail::cat(tn, ": ne0 = ", ne0, " is not a multiple of the ", info.name,
                                                     " block size ", info.block_elems));
    const uint64_t nblocks = numel / uint64_t(info.block_elems);
    if (nblocks > kInt64Max / uint64_t(info.block_bytes))
      c.fail(ErrorCode::Format, type_at, tn + ": byte size overflows int64");
    ti.nbytes = nblocks * uint64_t(info.block_bytes);
    if (ti.offset % alignment != 0)
      c.fail(ErrorCode::Format, off_at, detail::cat(tn, ": offset ", ti.offset, " is not a multiple of the alignment ", alignment));
    ti.shape.assign(ti.ne.rbegin(), ti.ne.rend());
    index.emplace(ti.name, tensors.size());
    names.push_back(ti.name);
    tensors.push_back(std::move(ti));
  }

  const uint64_t end_infos = c.pos;
  if (tensor_count == 0) {
    data_start = end_infos;  // ggml neither pads nor seeks without tensors
  } else {
    if (!formats::align_up(end_infos, alignment, data_start) || data_start > bytes.size())
      c.fail(ErrorCode::Format, end_infos, detail::cat("tensor data would start at byte ", data_start, " past the end of the ",
                                                       bytes.size(), "-byte file"));
  }

  // Data ranges: inside the file, no overlaps (zero-byte tensors exempt), warn on gaps.
  std::vector<size_t> order;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& ti = tensors[i];
    const uint64_t room = bytes.size() - data_start;
    if (ti.offset > room || ti.nbytes > room - ti.offset)
      c.fail(ErrorCode::Format, end_infos, detail::cat("tensor '", ti.name, "': data [", ti.offset, ", +", ti.nbytes,
                                                       ") lies past the end of the file (", room, " data bytes)"));
    ti.file_offset = data_start + ti.offset;
    if (ti.nbytes > 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  uint64_t expect = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& ti = tensors[order[k]];
    if (k > 0) {
      const auto& prev = tensors[order[k - 1]];
      if (ti.offset < prev.offset + prev.nbytes)
        c.fail(ErrorCode::Format, end_infos, detail::cat("tensors '", prev.name, "' and '", ti.name, "' overlap"));
    }
    if (ti.offset > expect) warnings.push_back(detail::cat("gap of ", ti.offset - expect, " bytes before tensor '", ti.name, "'"));
    formats::align_up(ti.offset + ti.nbytes, alignment, expect);
  }
}

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path, const GgufOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->map = formats::MappedFile(path);
  impl->bytes = impl->map.bytes();
  impl->parse(opts);
  return GgufFile(std::move(impl));
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, const GgufOptions& opts, const std::string& name) {
  auto impl = std::make_unique<Impl>();
  impl->path = name;
  impl->bytes = bytes;
  impl->parse(opts);
  return GgufFile(std::move(impl));
}

const std::string& GgufFile::path() const { return impl_->path; }
uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
uint64_t GgufFile::data_start() const { return impl_->data_start; }
uint64_t GgufFile::file_size() const { return impl_->bytes.size(); }
std::span<const uint8_t> GgufFile::bytes() const { return impl_->bytes; }
const std::vector<std::string>& GgufFile::warnings() const { return impl_->warnings; }
size_t GgufFile::kv_count() const { return impl_->keys.size(); }
const std::vector<std::string>& GgufFile::keys() const { return impl_->keys; }

const GgufValue* GgufFile::get(std::string_view key) const {
  auto it = impl_->kv.find(std::string(key));
  return it == impl_->kv.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void bad_type(std::string_view key, const GgufValue& v, const char* want) {
  LMK_THROW(InvalidArgument, "GGUF key '", key, "' has type ", to_string(v.type), ", expected ", want);
}
}  // namespace

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING) bad_type(key, *v, "STRING");
  return std::get<std::string_view>(v->v);
}

std::optional<uint32_t> GgufFile::get_u32(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  switch (v->type) {
    case GgufType::UINT8:
    case GgufType::UINT16:
    case GgufType::UINT32: return uint32_t(std::get<uint64_t>(v->v));
    case GgufType::INT32:
      if (std::get<int64_t>(v->v) >= 0) return uint32_t(std::get<int64_t>(v->v));
      LMK_THROW(InvalidArgument, "GGUF key '", key, "' is negative (", std::get<int64_t>(v->v), ")");
    default: bad_type(key, *v, "UINT8/UINT16/UINT32 or non-negative INT32");
  }
}

std::optional<uint64_t> GgufFile::get_u64(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  if (auto* u = std::get_if<uint64_t>(&v->v)) return *u;
  if (auto* i = std::get_if<int64_t>(&v->v)) {
    if (*i >= 0) return uint64_t(*i);
    LMK_THROW(InvalidArgument, "GGUF key '", key, "' is negative (", *i, ")");
  }
  bad_type(key, *v, "an integer");
}

std::optional<int64_t> GgufFile::get_i64(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  if (auto* i = std::get_if<int64_t>(&v->v)) return *i;
  if (auto* u = std::get_if<uint64_t>(&v->v)) {
    if (*u <= kInt64Max) return int64_t(*u);
    LMK_THROW(InvalidArgument, "GGUF key '", key, "' value ", *u, " does not fit int64");
  }
  bad_type(key, *v, "an integer");
}

std::optional<double> GgufFile::get_f64(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::FLOAT32 && v->type != GgufType::FLOAT64) bad_type(key, *v, "FLOAT32 or FLOAT64");
  return std::get<double>(v->v);
}

std::optional<float> GgufFile::get_f32(std::string_view key) const {
  auto d = get_f64(key);
  if (!d) return std::nullopt;
  return float(*d);
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL) bad_type(key, *v, "BOOL");
  return std::get<bool>(v->v);
}

const GgufArray* GgufFile::get_array(std::string_view key) const {
  const GgufValue* v = get(key);
  if (!v) return nullptr;
  if (v->type != GgufType::ARRAY) bad_type(key, *v, "ARRAY");
  return &std::get<GgufArray>(v->v);
}

size_t GgufFile::tensor_count() const { return impl_->tensors.size(); }
const std::vector<std::string>& GgufFile::names() const { return impl_->names; }
bool GgufFile::has_tensor(std::string_view name) const { return impl_->index.count(std::string(name)) != 0; }
const GgufTensorInfo& GgufFile::info(std::string_view name) const { return impl_->find(name); }
const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return impl_->tensors; }

std::span<const uint8_t> GgufFile::raw_bytes(std::string_view name) const {
  const auto& ti = impl_->find(name);
  return impl_->bytes.subspan(size_t(ti.file_offset), size_t(ti.nbytes));
}

Tensor GgufFile::view(std::string_view name) const {
  const auto& ti = impl_->find(name);
  auto* p = const_cast<uint8_t*>(impl_->bytes.data() + ti.file_offset);
  return Tensor(p, ti.dtype, ti.shape, Device::cpu());
}

std::vector<float> GgufFile::load_f32(std::string_view name) const {
  const auto& ti = impl_->find(name);
  const int64_t n = ti.numel();
  if (n == 0) LMK_THROW(InvalidArgument, "GGUF '", impl_->path, "': tensor '", ti.name, "' has no elements");
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(ti.dtype, impl_->bytes.data() + ti.file_offset, out.data(), n);
  return out;
}

Buffer GgufFile::upload(std::string_view name, Device device, Stream& stream) const {
  const auto& ti = impl_->find(name);
  if (ti.nbytes == 0) LMK_THROW(InvalidArgument, "GGUF '", impl_->path, "': tensor '", ti.name, "' has no data to upload");
  Buffer b(ti.dtype, ti.shape, device);
  copy_bytes(b.data(), device, impl_->bytes.data() + ti.file_offset, Device::cpu(), int64_t(ti.nbytes), stream);
  return b;
}

}  // namespace lmk
