// The sequence-state bridge (see state_bridge.h and README.md). node-llama-cpp moves a sequence's
// state only through files; llama.cpp's C API can do it through memory. This file reaches the
// llama_context node-llama-cpp created and calls that API on it:
// - libllama is its own shared library, already loaded by node-llama-cpp's addon. Its functions
//   are looked up in that very loaded copy (RTLD_NOLOAD / GetModuleHandle): linking our own copy
//   would give a second llama.cpp whose functions do not know the first one's objects.
// - node-llama-cpp's AddonContext (its header ships with the package) holds the llama_context*.
//   Node-API keeps an object's wrapped pointer in one place per environment, so napi_unwrap from
//   this addon returns the AddonContext node-llama-cpp's addon wrapped.
// Reading a field of another addon's object is only right for the layout it was compiled against,
// so `check` proves the layout on the live objects before any pointer from it is used (the model
// pointer and the context size stored beside the context pointer must equal what JS knows), and
// engine/worker/state-transfer.ts uses the bridge only for the node-llama-cpp version and build it
// was compiled and tested for, after a probe. Callers hold node-llama-cpp's own evaluation and
// context locks around every call: llama.cpp contexts are not thread-safe.
#include "state_bridge.h"

#include <cstring>
#include <string>
#include <vector>

#ifdef HEARTH_STATE_BRIDGE
#include "AddonContext.h"
#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#else
#include <link.h>
#endif
#endif
#endif

namespace hearth {

#ifdef HEARTH_STATE_BRIDGE
namespace {

struct LlamaApi {
  decltype(&llama_state_seq_get_size) get_size = nullptr;
  decltype(&llama_state_seq_get_data) get_data = nullptr;
  decltype(&llama_state_seq_set_data) set_data = nullptr;
  decltype(&llama_n_ctx) n_ctx = nullptr;
  decltype(&llama_n_seq_max) n_seq_max = nullptr;
  std::string library;
};

LlamaApi api;
bool api_ready = false;

bool is_libllama(const char* path) {
  if (path == nullptr || *path == '\0') return false;
  const char* base = std::strrchr(path, '/');
  base = base ? base + 1 : path;
  // libllama.v0.4.0.so, libllama.so, libllama.dylib; not libllama-common.so.
  return std::strncmp(base, "libllama.", 9) == 0;
}

#if defined(_WIN32)
using Symbol = FARPROC;
#else
using Symbol = void*;
#endif

template <typename T>
bool bind(T& slot, Symbol symbol) {
  slot = reinterpret_cast<T>(symbol);
  return slot != nullptr;
}

#if !defined(_WIN32) && !defined(__APPLE__)
int collect_libllama(struct dl_phdr_info* info, size_t, void* data) {
  if (is_libllama(info->dlpi_name)) static_cast<std::vector<std::string>*>(data)->push_back(info->dlpi_name);
  return 0;
}
#endif

// The paths of the libllama copies loaded in this process (one, normally).
std::vector<std::string> loaded_libllama() {
  std::vector<std::string> found;
#if defined(_WIN32)
  char path[MAX_PATH];
  HMODULE module = GetModuleHandleA("llama.dll");
  if (module != nullptr && GetModuleFileNameA(module, path, MAX_PATH) > 0) found.push_back(path);
#elif defined(__APPLE__)
  for (uint32_t i = 0, n = _dyld_image_count(); i < n; i++)
    if (is_libllama(_dyld_get_image_name(i))) found.push_back(_dyld_get_image_name(i));
#else
  dl_iterate_phdr(collect_libllama, &found);
#endif
  return found;
}

// Looks the functions up in the loaded libllama. Returns an empty string, or why not.
std::string open_api() {
  if (api_ready) return "";
  const std::vector<std::string> found = loaded_libllama();
  if (found.empty()) return "llama.cpp's library (libllama) is not loaded in this process";
  if (found.size() > 1) return "several copies of llama.cpp's library are loaded in this process";
  LlamaApi next;
  next.library = found[0];
#if defined(_WIN32)
  // Takes a reference: the library cannot be unloaded while the bridge may call it.
  HMODULE handle = nullptr;
  if (!GetModuleHandleExA(0, next.library.c_str(), &handle) || handle == nullptr) return "llama.cpp's library could not be opened";
  auto lookup = [&](const char* name) { return GetProcAddress(handle, name); };
#else
  // RTLD_NOLOAD: only the copy already loaded, never a second one; the reference keeps it loaded.
  void* handle = dlopen(next.library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return "llama.cpp's library could not be opened";
  auto lookup = [&](const char* name) { return dlsym(handle, name); };
#endif
  if (!bind(next.get_size, lookup("llama_state_seq_get_size")) || !bind(next.get_data, lookup("llama_state_seq_get_data")) ||
      !bind(next.set_data, lookup("llama_state_seq_set_data")) || !bind(next.n_ctx, lookup("llama_n_ctx")) ||
      !bind(next.n_seq_max, lookup("llama_n_seq_max")))
    return "llama.cpp's library lacks the sequence state functions";
  api = next;
  api_ready = true;
  return "";
}

// The AddonContext wrapped in `value`, or nullptr with a JS error thrown.
AddonContext* context_of(Napi::Env env, Napi::Value value) {
  void* raw = nullptr;
  if (!value.IsObject() || napi_unwrap(env, value, &raw) != napi_ok || raw == nullptr) {
    Napi::TypeError::New(env, "stateBridge: not a node-llama-cpp context").ThrowAsJavaScriptException();
    return nullptr;
  }
  return static_cast<AddonContext*>(raw);
}

// The live llama_context and a valid sequence id, or nullptr with a JS error thrown.
llama_context* live_context(const Napi::CallbackInfo& info, int32_t& seq) {
  Napi::Env env = info.Env();
  if (!api_ready) {
    Napi::Error::New(env, "stateBridge: not open").ThrowAsJavaScriptException();
    return nullptr;
  }
  AddonContext* context = context_of(env, info[0]);
  if (context == nullptr) return nullptr;
  if (context->ctx == nullptr || context->disposed) {
    Napi::Error::New(env, "stateBridge: the context is disposed").ThrowAsJavaScriptException();
    return nullptr;
  }
  if (!info[1].IsNumber()) {
    Napi::TypeError::New(env, "stateBridge: the sequence id must be a number").ThrowAsJavaScriptException();
    return nullptr;
  }
  seq = info[1].As<Napi::Number>().Int32Value();
  if (seq < 0 || static_cast<uint32_t>(seq) >= api.n_seq_max(context->ctx)) {
    Napi::RangeError::New(env, "stateBridge: the sequence id is out of range").ThrowAsJavaScriptException();
    return nullptr;
  }
  return context->ctx;
}

bool bytes_arg(const Napi::CallbackInfo& info, size_t index, Napi::Uint8Array& out) {
  if (index < info.Length() && info[index].IsTypedArray() && info[index].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    out = info[index].As<Napi::Uint8Array>();
    return true;
  }
  Napi::TypeError::New(info.Env(), "stateBridge: the buffer must be a Uint8Array").ThrowAsJavaScriptException();
  return false;
}

// open() → '' or why the bridge cannot be used.
Napi::Value Open(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), open_api());
}

// check(addonContext, addonModel, nCtx, nSeqMax) → '' when the layout this addon was compiled
// against is the one of the live objects, or why not. `nCtx` is llama_n_ctx as node-llama-cpp's
// own getContextSize() reports it through its own pointer, `nSeqMax` its sequence count. Only
// fields of the two wrapped objects are read until they prove the layout; only then is the
// context pointer beside them followed.
Napi::Value Check(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string opened = open_api();
  if (!opened.empty()) return Napi::String::New(env, opened);
  void* context_raw = nullptr;
  void* model_raw = nullptr;
  if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsNumber() || !info[3].IsNumber())
    return Napi::String::New(env, "the bridge was given no context, model or sizes");
  if (napi_unwrap(env, info[0], &context_raw) != napi_ok || context_raw == nullptr)
    return Napi::String::New(env, "node-llama-cpp's context object could not be unwrapped");
  if (napi_unwrap(env, info[1], &model_raw) != napi_ok || model_raw == nullptr)
    return Napi::String::New(env, "node-llama-cpp's model object could not be unwrapped");
  const auto* context = static_cast<const AddonContext*>(context_raw);
  const uint32_t n_ctx = info[2].As<Napi::Number>().Uint32Value();
  const uint32_t n_seq_max = info[3].As<Napi::Number>().Uint32Value();
  // llama.cpp may round the context size it was asked for up (padding), never down.
  if (static_cast<const void*>(context->model) != model_raw || context->context_params.n_ctx == 0 ||
      context->context_params.n_ctx > n_ctx || context->context_params.n_seq_max != n_seq_max)
    return Napi::String::New(env, "node-llama-cpp's context does not have the memory layout the bridge was built for");
  if (context->ctx == nullptr) return Napi::String::New(env, "the context is not loaded");
  if (api.n_ctx(context->ctx) != n_ctx || api.n_seq_max(context->ctx) != n_seq_max)
    return Napi::String::New(env, "the context pointer does not lead to this context");
  return Napi::String::New(env, "");
}

// size(addonContext, seq) → bytes of the sequence's state.
Napi::Value Size(const Napi::CallbackInfo& info) {
  int32_t seq = 0;
  llama_context* ctx = live_context(info, seq);
  if (ctx == nullptr) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), static_cast<double>(api.get_size(ctx, seq)));
}

// The copy runs on the thread pool: a state is up to gigabytes, too long for the event loop.
// The references keep the context and the buffer alive until it is done.
class CopyWorker : public Napi::AsyncWorker {
 public:
  CopyWorker(Napi::Env env, bool load, llama_context* ctx, int32_t seq, Napi::Value context, Napi::Uint8Array bytes)
      : Napi::AsyncWorker(env, load ? "hearth.stateSet" : "hearth.stateGet"),
        deferred_(Napi::Promise::Deferred::New(env)),
        load_(load),
        ctx_(ctx),
        seq_(seq),
        data_(bytes.Data()),
        length_(bytes.ByteLength()),
        context_(Napi::Persistent(context.As<Napi::Object>())),
        bytes_(Napi::Persistent(static_cast<Napi::Object>(bytes))) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    if (load_) {
      done_ = api.set_data(ctx_, data_, length_, seq_);
      if (done_ == 0) SetError("llama.cpp refused the sequence state");
      return;
    }
    const size_t need = api.get_size(ctx_, seq_);
    if (need != length_) {
      SetError("the sequence state is " + std::to_string(need) + " bytes, not the " + std::to_string(length_) + " planned");
      return;
    }
    done_ = api.get_data(ctx_, data_, length_, seq_);
    if (done_ != length_) SetError("llama.cpp wrote " + std::to_string(done_) + " of " + std::to_string(length_) + " bytes of sequence state");
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(done_))); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  const bool load_;
  llama_context* const ctx_;
  const int32_t seq_;
  uint8_t* const data_;
  const size_t length_;
  size_t done_ = 0;
  Napi::ObjectReference context_;
  Napi::ObjectReference bytes_;
};

Napi::Value Copy(const Napi::CallbackInfo& info, bool load) {
  int32_t seq = 0;
  llama_context* ctx = live_context(info, seq);
  Napi::Uint8Array bytes;
  if (ctx == nullptr || !bytes_arg(info, 2, bytes)) return info.Env().Undefined();
  auto* worker = new CopyWorker(info.Env(), load, ctx, seq, info[0], bytes);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// get(addonContext, seq, buffer) → Promise<bytes>: the state into `buffer`, which must be exactly size() bytes.
Napi::Value Get(const Napi::CallbackInfo& info) { return Copy(info, false); }
// set(addonContext, seq, buffer) → Promise<bytes read>: replaces the sequence's state.
Napi::Value Set(const Napi::CallbackInfo& info) { return Copy(info, true); }

}  // namespace
#endif

void register_state_bridge(Napi::Env env, Napi::Object exports) {
  Napi::Object bridge = Napi::Object::New(env);
#ifdef HEARTH_STATE_BRIDGE
  Napi::Object build = Napi::Object::New(env);
  build.Set("nodeLlamaCpp", Napi::String::New(env, HEARTH_NODE_LLAMA_CPP_VERSION));
  build.Set("llamaCpp", Napi::String::New(env, HEARTH_LLAMA_CPP_RELEASE));
  bridge.Set("build", build);
  bridge.Set("open", Napi::Function::New(env, Open, "open"));
  bridge.Set("check", Napi::Function::New(env, Check, "check"));
  bridge.Set("size", Napi::Function::New(env, Size, "size"));
  bridge.Set("get", Napi::Function::New(env, Get, "get"));
  bridge.Set("set", Napi::Function::New(env, Set, "set"));
#else
  bridge.Set("build", env.Null());
  bridge.Set("reason", Napi::String::New(env, "the native addon was built without node-llama-cpp's and llama.cpp's headers"));
#endif
  exports.Set("stateBridge", bridge);
}

}  // namespace hearth
