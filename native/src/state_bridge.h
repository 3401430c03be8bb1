// The sequence-state bridge: llama.cpp's llama_state_seq_{get_size,get_data,set_data} called on
// the llama_context that node-llama-cpp created, so a sequence's state moves through memory instead
// of a scratch file. See README.md ("The state bridge") for why and how it is guarded.
#pragma once

#include <napi.h>

namespace hearth {

// Adds `stateBridge` to the addon's exports: an object with `build` (what the bridge was compiled
// against, or null with `reason` when it was compiled out) and its functions.
void register_state_bridge(Napi::Env env, Napi::Object exports);

}  // namespace hearth
