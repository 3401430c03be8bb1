// The Node-API surface: five functions over caller-owned Uint8Arrays, in place, no allocation.
// Every length is checked here before any pointer is touched, so a caller's mistake is a JS
// TypeError/RangeError, never a write past a buffer. C++ exceptions are off (node-addon-api's
// NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS): errors are thrown as pending JS exceptions.
#include <napi.h>

#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "kernels.h"
#include "scatter_read.h"
#include "state_bridge.h"

namespace {

struct Bytes {
  uint8_t* data = nullptr;
  size_t length = 0;
};

bool arg_bytes(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name, Bytes& out) {
  if (index < info.Length() && info[index].IsTypedArray()) {
    const Napi::TypedArray array = info[index].As<Napi::TypedArray>();
    if (array.TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array bytes = info[index].As<Napi::Uint8Array>();
      out.data = bytes.Data();
      out.length = bytes.ElementLength();
      return true;
    }
  }
  Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a Uint8Array").ThrowAsJavaScriptException();
  return false;
}

bool check(const Napi::CallbackInfo& info, bool ok, const std::string& message) {
  if (!ok) Napi::RangeError::New(info.Env(), message).ThrowAsJavaScriptException();
  return ok;
}

std::string bytes_message(const char* fn, const char* what, size_t actual, size_t expected) {
  return std::string(fn) + ": " + what + " has " + std::to_string(actual) + " bytes, expected " +
         std::to_string(expected);
}

std::string odd_message(const char* fn, size_t length) {
  return std::string(fn) + ": the f16 buffer has an odd length (" + std::to_string(length) + ")";
}

size_t q8_bytes(size_t values) { return (values + hearth::kQ8Values - 1) / hearth::kQ8Values * hearth::kQ8Block; }

Napi::Value Shuffle16(const Napi::CallbackInfo& info) {
  const char* fn = "shuffle16";
  Bytes src, lo, hi;
  if (!arg_bytes(info, 0, fn, "src", src) || !arg_bytes(info, 1, fn, "lo", lo) || !arg_bytes(info, 2, fn, "hi", hi))
    return info.Env().Undefined();
  const size_t n = src.length / 2;
  if (check(info, src.length % 2 == 0, odd_message(fn, src.length)) &&
      check(info, lo.length == n, bytes_message(fn, "lo", lo.length, n)) &&
      check(info, hi.length == n, bytes_message(fn, "hi", hi.length, n)))
    hearth::shuffle16(src.data, lo.data, hi.data, n);
  return info.Env().Undefined();
}

Napi::Value Unshuffle16(const Napi::CallbackInfo& info) {
  const char* fn = "unshuffle16";
  Bytes lo, hi, dst;
  if (!arg_bytes(info, 0, fn, "lo", lo) || !arg_bytes(info, 1, fn, "hi", hi) || !arg_bytes(info, 2, fn, "dst", dst))
    return info.Env().Undefined();
  const size_t n = dst.length / 2;
  if (check(info, dst.length % 2 == 0, odd_message(fn, dst.length)) &&
      check(info, lo.length == n, bytes_message(fn, "lo", lo.length, n)) &&
      check(info, hi.length == n, bytes_message(fn, "hi", hi.length, n)))
    hearth::unshuffle16(lo.data, hi.data, dst.data, n);
  return info.Env().Undefined();
}

Napi::Value F16ToQ8_0(const Napi::CallbackInfo& info) {
  const char* fn = "f16ToQ8_0";
  Bytes src, dst;
  if (!arg_bytes(info, 0, fn, "src", src) || !arg_bytes(info, 1, fn, "dst", dst)) return info.Env().Undefined();
  const size_t values = src.length / 2;
  if (!check(info, src.length % 2 == 0, odd_message(fn, src.length)) ||
      !check(info, dst.length == q8_bytes(values), bytes_message(fn, "dst", dst.length, q8_bytes(values))))
    return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), hearth::f16_to_q8_0(src.data, dst.data, values));
}

Napi::Value Q8_0ToF16(const Napi::CallbackInfo& info) {
  const char* fn = "q8_0ToF16";
  Bytes src, dst;
  if (!arg_bytes(info, 0, fn, "src", src) || !arg_bytes(info, 1, fn, "dst", dst)) return info.Env().Undefined();
  const size_t values = dst.length / 2;
  if (check(info, dst.length % 2 == 0, odd_message(fn, dst.length)) &&
      check(info, src.length == q8_bytes(values), bytes_message(fn, "src", src.length, q8_bytes(values))))
    hearth::q8_0_to_f16(src.data, dst.data, values);
  return info.Env().Undefined();
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  Bytes data;
  if (!arg_bytes(info, 0, "crc32c", "data", data)) return info.Env().Undefined();
  uint32_t seed = 0;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) {
      Napi::TypeError::New(info.Env(), "crc32c: seed must be a number").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    seed = info[1].As<Napi::Number>().Uint32Value();
  }
  return Napi::Number::New(info.Env(), hearth::crc32c(seed, data.data, data.length));
}

// adviseHugePages(bytes) → whether the kernel was asked to back the buffer with huge pages.
// A restored or saved sequence state is one new buffer of up to gigabytes, written once: with
// 4 KiB pages that is a page fault per 4 KiB, which dominated restores in a virtual machine
// (~23 µs each, measured: 750 ms to first-touch 131 MB); 2 MiB pages need 512× fewer.
// Linux only (transparent huge pages in `madvise` mode); elsewhere, and on any error, false.
Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  Bytes bytes;
  if (!arg_bytes(info, 0, "adviseHugePages", "bytes", bytes)) return info.Env().Undefined();
  bool advised = false;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Only whole 2 MiB-aligned ranges inside the buffer: madvise needs page-aligned bounds, and
  // huge pages only fill aligned 2 MiB spans anyway.
  const uintptr_t huge = uintptr_t{2} << 20;
  const uintptr_t start = (reinterpret_cast<uintptr_t>(bytes.data) + huge - 1) & ~(huge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(bytes.data) + bytes.length) & ~(huge - 1);
  if (end > start) advised = madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) == 0;
#endif
  return Napi::Boolean::New(info.Env(), advised);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  hearth::init();
  exports.Set("shuffle16", Napi::Function::New(env, Shuffle16, "shuffle16"));
  exports.Set("unshuffle16", Napi::Function::New(env, Unshuffle16, "unshuffle16"));
  exports.Set("f16ToQ8_0", Napi::Function::New(env, F16ToQ8_0, "f16ToQ8_0"));
  exports.Set("q8_0ToF16", Napi::Function::New(env, Q8_0ToF16, "q8_0ToF16"));
  exports.Set("crc32c", Napi::Function::New(env, Crc32c, "crc32c"));
  exports.Set("features", Napi::String::New(env, hearth::features()));
  exports.Set("adviseHugePages", Napi::Function::New(env, AdviseHugePages, "adviseHugePages"));
  hearth::register_scatter_read(env, exports);
  hearth::register_state_bridge(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(hearth_kv, Init)
