# The KV codec's hot loops as a Node-API addon (see README.md). Node-API version 8 keeps one
# binary loadable by Node 20+ and Electron without a rebuild. SIMD paths are compiled with
# per-function target attributes and picked at load time by CPU detection, so the baseline
# flags stay plain x86-64 / arm64 and the binary runs on any CPU of its architecture.
{
  # The state bridge (src/state_bridge.cc) compiles only when scripts/build-native.ts found
  # node-llama-cpp's addon headers and llama.cpp's headers for its bundled release: it passes
  # their folder and versions as these variables (node-gyp turns --name=value into -Dname=value).
  "variables": {
    "llama_headers%": "",
    "node_llama_cpp_version%": "",
    "llama_cpp_release%": ""
  },
  "targets": [
    {
      "target_name": "hearth_kv",
      "sources": ["src/addon.cc", "src/kernels.cc", "src/kernels_x86.cc", "src/kernels_arm.cc", "src/state_bridge.cc", "src/scatter_read.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      "defines": ["NAPI_VERSION=8"],
      # -ffp-contract=off: no fused multiply-adds, so float results equal the TypeScript
      # fallback's (kernels-fallback.ts) bit for bit. No -ffast-math for the same reason.
      "cflags": ["-O3", "-ffp-contract=off", "-fno-math-errno"],
      "cflags_cc": ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno"],
      "cflags!": ["-O2"],
      "cflags_cc!": ["-O2", "-std=gnu++17", "-std=gnu++20"],
      "xcode_settings": {
        "GCC_OPTIMIZATION_LEVEL": "3",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CFLAGS": ["-ffp-contract=off", "-fno-math-errno"],
        "OTHER_CPLUSPLUSFLAGS": ["-ffp-contract=off", "-fno-math-errno"]
      },
      "conditions": [
        ["llama_headers!=''", {
          "include_dirs": ["<(llama_headers)/addon", "<(llama_headers)/include", "<(llama_headers)/ggml/include"],
          "defines": [
            "HEARTH_STATE_BRIDGE",
            "HEARTH_NODE_LLAMA_CPP_VERSION=\"<(node_llama_cpp_version)\"",
            "HEARTH_LLAMA_CPP_RELEASE=\"<(llama_cpp_release)\""
          ]
        }]
      ],
      "msvs_settings": {
        "VCCLCompilerTool": {
          "Optimization": 2,
          "AdditionalOptions": ["/std:c++17", "/fp:precise"]
        }
      }
    }
  ]
}
