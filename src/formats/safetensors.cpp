// safetensors reader (quant-formats.md §7).
#include "lmk/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "formats/json.h"
#include "formats/mapped_file.h"
#include "lmk/error.h"

namespace lmk {

namespace {

struct DtypeEntry {
  const char* name;
  int64_t size;
  std::optional<DType> dtype;
};
const DtypeEntry kDtypes[] = {
    {"BOOL", 1, std::nullopt},    {"U8", 1, DType::u8},          {"I8", 1, DType::i8},
    {"F8_E5M2", 1, std::nullopt}, {"F8_E4M3", 1, std::nullopt},  {"I16", 2, DType::i16},
    {"U16", 2, std::nullopt},     {"F16", 2, DType::f16},        {"BF16", 2, DType::bf16},
    {"I32", 4, DType::i32},       {"U32", 4, DType::u32},        {"F32", 4, DType::f32},
    {"F64", 8, DType::f64},       {"I64", 8, DType::i64},        {"U64", 8, std::nullopt},
};

const DtypeEntry* find_dtype(std::string_view n) {
  for (const auto& e : kDtypes)
    if (n == e.name) return &e;
  return nullptr;
}

}  // namespace

int64_t safetensors_dtype_size(std::string_view n) {
  const DtypeEntry* e = find_dtype(n);
  return e ? e->size : 0;
}

int64_t SafetensorsTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // overflow excluded at parse time
  return n;
}

struct SafetensorsFile::Impl {
  std::string path;
  formats::MappedFile map;
  std::span<const uint8_t> bytes;
  uint64_t header_len = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<SafetensorsTensorInfo> tensors;
  std::vector<std::string> names;
  std::unordered_map<std::string, size_t> index;

  [[noreturn]] void fail(ErrorCode code, uint64_t at, const std::string& msg) const {
    throw Error(code, detail::cat("safetensors '", path, "': ", msg, " (at byte ", at, ")"));
  }
  void parse(const SafetensorsOptions& opts);
  void parse_header(std::string_view header, uint64_t data_len);
  const SafetensorsTensorInfo& find(std::string_view name) const {
    auto it = index.find(std::string(name));
    if (it == index.end()) LMK_THROW(InvalidArgument, "tensor '", name, "' not found in safetensors file '", path, "'");
    return tensors[it->second];
  }
};

void SafetensorsFile::Impl::parse(const SafetensorsOptions& opts) {
  const uint64_t size = bytes.size();
  if (size < 8) fail(ErrorCode::Format, 0, detail::cat("file of ", size, " bytes is shorter than the 8-byte header length"));
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n == 0) fail(ErrorCode::Format, 0, "header length is 0");
  if (n > opts.max_header_bytes)
    fail(ErrorCode::Format, 0, detail::cat("header length ", n, " exceeds the cap of ", opts.max_header_bytes, " bytes"));
  if (n > size - 8) fail(ErrorCode::Format, 0, detail::cat("header length ", n, " exceeds the ", size - 8, " bytes after it"));
  header_len = n;
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), size_t(n));
  if (!formats::valid_utf8(header)) fail(ErrorCode::Format, 8, "header is not valid UTF-8");
  parse_header(header, size - 8 - n);
}

void SafetensorsFile::Impl::parse_header(std::string_view header, uint64_t data_len) {
  formats::JsonReader r(header);
  uint64_t entry_at = 8;
  try {
    if (r.peek() != '{') r.fail("the header must be a JSON object");
    r.expect('{');
    std::unordered_set<std::string> seen;
    bool have_metadata = false;
    if (!r.consume('}')) {
      do {
        entry_at = 8 + r.pos();
        std::string key = r.string();
        if (!seen.insert(key).second) r.fail("duplicate key '" + key + "'");
        r.expect(':');
        if (key == "__metadata__") {
          have_metadata = true;
          if (r.peek() != '{') r.fail("__metadata__ must be an object of strings");
          r.expect('{');
          std::unordered_set<std::string> mkeys;
          if (!r.consume('}')) {
            do {
              std::string mk = r.string();
              if (!mkeys.insert(mk).second) r.fail("duplicate __metadata__ key '" + mk + "'");
              r.expect(':');
              if (r.peek() != '"') r.fail("__metadata__ value of '" + mk + "' must be a string");
              metadata.emplace_back(std::move(mk), r.string());
            } while (r.consume(','));
            r.expect('}');
          }
          continue;
        }
        if (key.empty()) r.fail("empty tensor name");
        SafetensorsTensorInfo ti;
        ti.name = key;
        if (r.peek() != '{') r.fail("entry of tensor '" + key + "' must be an object");
        r.expect('{');
        bool has_dtype = false, has_shape = false, has_offsets = false;
        if (!r.consume('}')) {
          do {
            const std::string field = r.string();
            r.expect(':');
            if (field == "dtype") {
              if (has_dtype) r.fail("tensor '" + key + "': duplicate field 'dtype'");
              has_dtype = true;
              if (r.peek() != '"') r.fail("tensor '" + key + "': dtype must be a string");
              ti.dtype_name = r.string();
            } else if (field == "shape") {
              if (has_shape) r.fail("tensor '" + key + "': duplicate field 'shape'");
              has_shape = true;
              r.expect('[');
              if (!r.consume(']')) {
                do {
                  if (ti.shape.size() >= 64) r.fail("tensor '" + key + "': shape has more than 64 dims");
                  const uint64_t d = r.unsigned_integer("shape entry");
                  if (d > uint64_t(std::numeric_limits<int64_t>::max())) r.fail("tensor '" + key + "': dim exceeds INT64_MAX");
                  ti.shape.push_back(int64_t(d));
                } while (r.consume(','));
                r.expect(']');
              }
            } else if (field == "data_offsets") {
              if (has_offsets) r.fail("tensor '" + key + "': duplicate field 'data_offsets'");
              has_offsets = true;
              r.expect('[');
              ti.begin = r.unsigned_integer("data_offsets begin");
              r.expect(',');
              ti.end = r.unsigned_integer("data_offsets end");
              if (r.peek() == ',') r.fail("tensor '" + key + "': data_offsets must have exactly 2 entries");
              r.expect(']');
            } else {
              r.fail("tensor '" + key + "': unexpected field '" + field + "'");
            }
          } while (r.consume(','));
          r.expect('}');
        }
        if (!has_dtype || !has_shape || !has_offsets)
          r.fail("tensor '" + key + "' needs the fields dtype, shape and data_offsets");
        index.emplace(key, tensors.size());
        names.push_back(key);
        tensors.push_back(std::move(ti));
        tensors.back().file_offset = entry_at;  // position for errors below; replaced later
      } while (r.consume(','));
      r.expect('}');
    }
    if (!r.at_end()) r.fail("trailing characters after the header object");
    (void)have_metadata;
  } catch (const formats::JsonError& e) {
    fail(ErrorCode::Format, 8 + e.offset, "bad header JSON: " + e.message);
  }

  const uint64_t data_start = 8 + header_len;
  for (auto& ti : tensors) {
    const uint64_t at = ti.file_offset;
    const DtypeEntry* de = find_dtype(ti.dtype_name);
    if (!de) fail(ErrorCode::Unsupported, at, "tensor '" + ti.name + "': unsupported dtype '" + ti.dtype_name + "'");
    ti.dtype = de->dtype;
    ti.element_size = de->size;
    uint64_t n = 1;
    bool zero = false;
    for (int64_t d : ti.shape) {
      if (d == 0) zero = true;
      else if (n > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(d))
        fail(ErrorCode::Format, at, "tensor '" + ti.name + "': element count overflows int64");
      else n *= uint64_t(d);
    }
    if (zero) n = 0;
    if (n > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(de->size))
      fail(ErrorCode::Format, at, "tensor '" + ti.name + "': byte size overflows int64");
    const uint64_t nbytes = n * uint64_t(de->size);
    if (ti.begin > ti.end)
      fail(ErrorCode::Format, at, detail::cat("tensor '", ti.name, "': data_offsets begin ", ti.begin, " > end ", ti.end));
    if (ti.end - ti.begin != nbytes)
      fail(ErrorCode::Format, at, detail::cat("tensor '", ti.name, "': data_offsets span ", ti.end - ti.begin,
                                             " bytes, shape and dtype need ", nbytes));
    if (ti.end > data_len)
      fail(ErrorCode::Format, at, detail::cat("tensor '", ti.name, "': data_offsets end ", ti.end,
                                             " lies past the data buffer of ", data_len, " bytes"));
    ti.file_offset = data_start + ti.begin;
  }
  // The data buffer must be tiled exactly: sorted by begin, no overlap, no gap, nothing after.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].begin != tensors[b].begin ? tensors[a].begin < tensors[b].begin : tensors[a].end < tensors[b].end;
  });
  uint64_t cursor = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (size_t i : order) {
    const auto& ti = tensors[i];
    if (ti.begin < cursor)
      fail(ErrorCode::Format, data_start + ti.begin,
           detail::cat("tensors '", prev ? prev->name : "", "' and '", ti.name, "' overlap"));
    if (ti.begin > cursor)
      fail(ErrorCode::Format, data_start + cursor,
           detail::cat("gap of ", ti.begin - cursor, " bytes in the data buffer before tensor '", ti.name, "'"));
    cursor = ti.end;
    prev = &ti;
  }
  if (cursor != data_len)
    fail(ErrorCode::Format, data_start + cursor,
         detail::cat(data_len - cursor, " trailing bytes after the last tensor in the data buffer"));
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::string& path, const SafetensorsOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->map = formats::MappedFile(path);
  impl->bytes = impl->map.bytes();
  impl->parse(opts);
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, const SafetensorsOptions& opts,
                                       const std::string& name) {
  auto impl = std::make_unique<Impl>();
  impl->path = name;
  impl->bytes = bytes;
  impl->parse(opts);
  return SafetensorsFile(std::move(impl));
}

const std::string& SafetensorsFile::path() const { return impl_->path; }
uint64_t SafetensorsFile::header_size() const { return impl_->header_len; }
uint64_t SafetensorsFile::data_offset() const { return 8 + impl_->header_len; }
std::span<const uint8_t> SafetensorsFile::file_bytes() const { return impl_->bytes; }
const std::vector<std::pair<std::string, std::string>>& SafetensorsFile::metadata() const { return impl_->metadata; }

std::optional<std::string> SafetensorsFile::metadata(std::string_view key) const {
  for (const auto& [k, v] : impl_->metadata)
    if (k == key) return v;
  return std::nullopt;
}

const std::vector<std::string>& SafetensorsFile::names() const { return impl_->names; }
bool SafetensorsFile::has_tensor(std::string_view name) const { return impl_->index.count(std::string(name)) != 0; }
const SafetensorsTensorInfo& SafetensorsFile::info(std::string_view name) const { return impl_->find(name); }
const std::vector<SafetensorsTensorInfo>& SafetensorsFile::tensors() const { return impl_->tensors; }

std::span<const uint8_t> SafetensorsFile::bytes(std::string_view name) const {
  const auto& ti = impl_->find(name);
  return impl_->bytes.subspan(size_t(ti.file_offset), size_t(ti.nbytes()));
}

namespace {
DType require_dtype(const std::string& path, const SafetensorsTensorInfo& ti) {
  if (!ti.dtype)
    LMK_THROW(Unsupported, "safetensors '", path, "': tensor '", ti.name, "' has dtype ", ti.dtype_name,
              ", which lmkernels has no tensor dtype for (use bytes())");
  return *ti.dtype;
}
}  // namespace

Tensor SafetensorsFile::view(std::string_view name) const {
  const auto& ti = impl_->find(name);
  const DType dt = require_dtype(impl_->path, ti);
  return Tensor(const_cast<uint8_t*>(impl_->bytes.data() + ti.file_offset), dt, ti.shape, Device::cpu());
}

Buffer SafetensorsFile::upload(std::string_view name, Device device, Stream& stream) const {
  const auto& ti = impl_->find(name);
  const DType dt = require_dtype(impl_->path, ti);
  if (ti.nbytes() == 0)
    LMK_THROW(InvalidArgument, "safetensors '", impl_->path, "': tensor '", ti.name, "' has no data to upload");
  Buffer b(dt, ti.shape, device);
  copy_bytes(b.data(), device, impl_->bytes.data() + ti.file_offset, Device::cpu(), int64_t(ti.nbytes()), stream);
  return b;
}

std::map<std::string, Buffer> SafetensorsFile::load_all(Device device, Stream& stream) const {
  std::map<std::string, Buffer> out;
  for (const auto& ti : impl_->tensors) {
    if (ti.nbytes() == 0) continue;
    if (ti.dtype) {
      out.emplace(ti.name, upload(ti.name, device, stream));
    } else {  // no lmkernels dtype (BOOL, U16, U64, F8_*): the raw bytes as u8
      Buffer b(int64_t(ti.nbytes()), device);
      copy_bytes(b.data(), device, impl_->bytes.data() + ti.file_offset, Device::cpu(), int64_t(ti.nbytes()), stream);
      out.emplace(ti.name, std::move(b));
    }
  }
  return out;
}

}  // namespace lmk
