// readScatter: reads whole files into given places of one destination buffer, in parallel, with
// each file's CRC-32C computed on the bytes just read (while they are in the CPU cache).
//
// Why it exists: a restore reads every stored chunk of a chat (up to gigabytes) into the state
// image llama.cpp loads. Read into a buffer, then checksummed, then copied into place, that is
// three passes over memory; read straight into place with the checksum fused, it is one pass,
// split over the cores. The layout knowledge stays in TypeScript (engine/kv/store-scatter.ts says
// where each byte goes and verifies everything this returns): here a file is a head (its first
// bytes, into a small buffer) followed by pieces, in file order, each to an offset of `dest`.
#include "scatter_read.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#endif

#include "kernels.h"

namespace hearth {
namespace {

// The body checksum of a chunk file covers everything after its 96-byte header
// (engine/kv/chunk-file.ts); this is that offset, and no file is read with a shorter head.
constexpr size_t kChecksumFrom = 96;
// Read-then-checksum window: one device request's worth, and about a core's L2 cache.
constexpr size_t kWindow = 1024 * 1024;

struct Piece {
  size_t offset;  // in dest
  size_t length;
};

struct Job {
  std::string path;
  size_t size = 0;
  uint8_t* head = nullptr;
  size_t head_length = 0;
  std::vector<Piece> pieces;
  // Results: the CRC-32C of bytes [kChecksumFrom, size), or the failure.
  uint32_t crc = 0;
  std::string error;
};

// One contiguous range of the file and where it goes.
struct Span {
  uint8_t* into;
  size_t length;
};

#if defined(_WIN32)
struct File {
  int fd = -1;
  explicit File(const std::string& path) {
    int wide = MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
    std::wstring name(wide > 0 ? wide : 0, L'\0');
    if (wide > 0 && MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, name.data(), wide) > 0) fd = _wopen(name.c_str(), _O_RDONLY | _O_BINARY);
  }
  ~File() {
    if (fd >= 0) _close(fd);
  }
  bool size(size_t& out) const {
    struct _stat64 st;
    if (_fstat64(fd, &st) != 0) return false;
    out = static_cast<size_t>(st.st_size);
    return true;
  }
  // Reads the spans in order from the current position (files are read front to back).
  bool read(const std::vector<Span>& spans, size_t) const {
    for (const Span& span : spans) {
      uint8_t* into = span.into;
      size_t n = span.length;
      while (n > 0) {
        const int chunk = static_cast<int>(n > (1u << 30) ? (1u << 30) : n);
        const int got = _read(fd, into, chunk);
        if (got <= 0) return false;
        into += got;
        n -= static_cast<size_t>(got);
      }
    }
    return true;
  }
};
#else
struct File {
  int fd = -1;
  explicit File(const std::string& path) { fd = open(path.c_str(), O_RDONLY | O_CLOEXEC); }
  ~File() {
    if (fd >= 0) close(fd);
  }
  bool size(size_t& out) const {
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    out = static_cast<size_t>(st.st_size);
    return true;
  }
  // Reads the spans, in order, from offset `at` with as few preadv calls as it takes: one
  // request per window, as a plain read() of the same size would be. (Reading block by block, or
  // asking for readahead, split a cold file into more device requests, and the build machine's
  // disk is limited by requests: 63 cold 256 KiB files read in 2× the time of one read() each.)
  bool read(const std::vector<Span>& spans, size_t at) const {
    std::vector<struct iovec> iov;
    for (const Span& span : spans) iov.push_back({span.into, span.length});
    size_t first = 0;
    while (first < iov.size()) {
      const int count = static_cast<int>(iov.size() - first > IOV_MAX ? IOV_MAX : iov.size() - first);
      const ssize_t got = preadv(fd, iov.data() + first, count, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      at += static_cast<size_t>(got);
      // A short read: skip what arrived and go on.
      size_t left = static_cast<size_t>(got);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return true;
  }
};
#endif

std::string errno_text(const char* what) {
  const int code = errno;
  return std::string(what) + ": " + (code == ENOENT ? "ENOENT" : std::strerror(code));
}

void run(Job& job, uint8_t* dest) {
  File file(job.path);
  if (file.fd < 0) {
    job.error = errno_text("open");
    return;
  }
  size_t actual = 0;
  if (!file.size(actual)) {
    job.error = errno_text("stat");
    return;
  }
  if (actual != job.size) {
    job.error = "size " + std::to_string(actual);
    return;
  }
  // The file as spans in file order: its head, then the pieces.
  std::vector<Span> spans;
  spans.push_back({job.head, job.head_length});
  for (const Piece& piece : job.pieces) spans.push_back({dest + piece.offset, piece.length});
  // Read a window, then checksum it while it is still in the core's cache.
  uint32_t crc = 0;
  size_t at = 0;
  size_t skip = kChecksumFrom;  // the header is not part of the checksummed body
  std::vector<Span> window;
  size_t window_bytes = 0;
  auto flush = [&]() -> bool {
    if (window.empty()) return true;
    if (!file.read(window, at)) return false;
    for (const Span& span : window) {
      const size_t from = skip < span.length ? skip : span.length;
      skip -= from;
      crc = crc32c(crc, span.into + from, span.length - from);
    }
    at += window_bytes;
    window.clear();
    window_bytes = 0;
    return true;
  };
  for (const Span& span : spans) {
    for (size_t done = 0; done < span.length;) {
      const size_t n = span.length - done < kWindow - window_bytes ? span.length - done : kWindow - window_bytes;
      window.push_back({span.into + done, n});
      window_bytes += n;
      done += n;
      if (window_bytes == kWindow && !flush()) {
        job.error = errno_text("read");
        return;
      }
    }
  }
  if (!flush()) {
    job.error = errno_text("read");
    return;
  }
  job.crc = crc;
}

class ScatterWorker : public Napi::AsyncWorker {
 public:
  ScatterWorker(Napi::Env env, std::vector<Job> jobs, uint8_t* dest, unsigned threads, std::vector<Napi::ObjectReference> keep)
      : Napi::AsyncWorker(env, "hearth.readScatter"),
        deferred_(Napi::Promise::Deferred::New(env)),
        jobs_(std::move(jobs)),
        dest_(dest),
        threads_(threads),
        keep_(std::move(keep)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::atomic<size_t> next{0};
    auto work = [&]() {
      for (size_t i = next++; i < jobs_.size(); i = next++) run(jobs_[i], dest_);
    };
    std::vector<std::thread> extra;
    for (unsigned t = 1; t < threads_ && t < jobs_.size(); t++) extra.emplace_back(work);
    work();
    for (std::thread& thread : extra) thread.join();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array out = Napi::Array::New(env, jobs_.size());
    for (size_t i = 0; i < jobs_.size(); i++) {
      if (jobs_[i].error.empty()) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, jobs_[i].crc));
      else out.Set(static_cast<uint32_t>(i), Napi::String::New(env, jobs_[i].error));
    }
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Job> jobs_;
  uint8_t* dest_;
  unsigned threads_;
  std::vector<Napi::ObjectReference> keep_;
};

bool fail(Napi::Env env, const std::string& message) {
  Napi::RangeError::New(env, "readScatter: " + message).ThrowAsJavaScriptException();
  return false;
}

template <typename T>
bool typed(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type, const char* name, T& out) {
  if (index < info.Length() && info[index].IsTypedArray() && info[index].As<Napi::TypedArray>().TypedArrayType() == type) {
    out = info[index].As<T>();
    return true;
  }
  Napi::TypeError::New(info.Env(), std::string("readScatter: ") + name + " has the wrong type").ThrowAsJavaScriptException();
  return false;
}

// Every offset and length is checked here, on the JS thread, before any byte is read: a wrong
// plan is a RangeError, never a write outside the buffers.
bool build_jobs(const Napi::CallbackInfo& info, std::vector<Job>& jobs, uint8_t*& dest_data, unsigned& threads) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "readScatter: expected (paths, sizes, heads, headStarts, pieceStarts, pieces, dest, threads)").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array paths = info[0].As<Napi::Array>();
  Napi::Float64Array sizes, head_starts, piece_starts, pieces;
  Napi::Uint8Array heads, dest;
  if (!typed(info, 1, napi_float64_array, "sizes", sizes) || !typed(info, 2, napi_uint8_array, "heads", heads) ||
      !typed(info, 3, napi_float64_array, "headStarts", head_starts) || !typed(info, 4, napi_float64_array, "pieceStarts", piece_starts) ||
      !typed(info, 5, napi_float64_array, "pieces", pieces) || !typed(info, 6, napi_uint8_array, "dest", dest) || !info[7].IsNumber())
    return false;
  const size_t count = paths.Length();
  if (sizes.ElementLength() != count || head_starts.ElementLength() != count + 1 || piece_starts.ElementLength() != count + 1 || pieces.ElementLength() % 2 != 0)
    return fail(env, "the plan's arrays do not match the number of files");
  const double thread_arg = info[7].As<Napi::Number>().DoubleValue();
  threads = thread_arg >= 1 && thread_arg <= 64 ? static_cast<unsigned>(thread_arg) : 1;
  const size_t dest_length = dest.ByteLength();
  dest_data = dest.Data();
  jobs.resize(count);
  const double max_size = 9007199254740991.0;
  for (size_t i = 0; i < count; i++) {
    Napi::Value path = paths.Get(static_cast<uint32_t>(i));
    if (!path.IsString()) return fail(env, "a path is not a string");
    Job& job = jobs[i];
    job.path = path.As<Napi::String>().Utf8Value();
    const double size = sizes[i], h0 = head_starts[i], h1 = head_starts[i + 1], p0 = piece_starts[i], p1 = piece_starts[i + 1];
    if (!(size >= 0 && size <= max_size && h0 >= 0 && h1 >= h0 + kChecksumFrom && h1 <= heads.ByteLength() && p0 >= 0 && p1 >= p0 && p1 * 2 <= pieces.ElementLength()))
      return fail(env, "file " + std::to_string(i) + " has an invalid head or piece range");
    job.size = static_cast<size_t>(size);
    job.head = heads.Data() + static_cast<size_t>(h0);
    job.head_length = static_cast<size_t>(h1 - h0);
    size_t covered = job.head_length;
    for (size_t p = static_cast<size_t>(p0); p < static_cast<size_t>(p1); p++) {
      const double offset = pieces[2 * p], length = pieces[2 * p + 1];
      if (!(offset >= 0 && length >= 0 && offset + length <= static_cast<double>(dest_length)))
        return fail(env, "a piece of file " + std::to_string(i) + " lies outside the destination");
      job.pieces.push_back({static_cast<size_t>(offset), static_cast<size_t>(length)});
      covered += static_cast<size_t>(length);
    }
    if (covered != job.size) return fail(env, "the head and pieces of file " + std::to_string(i) + " do not add up to its size");
  }
  return true;
}

// readScatter(paths, sizes, heads, headStarts, pieceStarts, pieces, dest, threads)
//   → Promise<(number | string)[]>: per file, the CRC-32C of its bytes from offset 96 on, or
//   what failed ("open: ENOENT", "size 1234", "read: …"). Files are independent: one failure
//   does not stop the others.
Napi::Value ReadScatter(const Napi::CallbackInfo& info) {
  std::vector<Job> jobs;
  uint8_t* dest = nullptr;
  unsigned threads = 1;
  if (!build_jobs(info, jobs, dest, threads)) return info.Env().Undefined();
  std::vector<Napi::ObjectReference> keep;
  keep.push_back(Napi::Persistent(info[2].As<Napi::Object>()));
  keep.push_back(Napi::Persistent(info[6].As<Napi::Object>()));
  auto* worker = new ScatterWorker(info.Env(), std::move(jobs), dest, threads, std::move(keep));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void register_scatter_read(Napi::Env env, Napi::Object exports) {
  exports.Set("readScatter", Napi::Function::New(env, ReadScatter, "readScatter"));
}

}  // namespace hearth
