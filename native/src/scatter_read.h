// readScatter: whole files read straight into their places in one buffer, in parallel, each with
// the CRC-32C of what was read. See scatter_read.cc.
#pragma once

#include <napi.h>

namespace hearth {

void register_scatter_read(Napi::Env env, Napi::Object exports);

}  // namespace hearth
