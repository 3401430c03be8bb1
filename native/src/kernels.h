// The codec kernels as plain C++ over caller-owned memory (addon.cc validates the lengths).
// Semantics are those of engine/kv/kernels.ts; the output must equal kernels-fallback.ts byte for
// byte for every input.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hearth {

constexpr size_t kQ8Block = 34;   // bytes of a q8_0 block: f16 scale + 32 int8
constexpr size_t kQ8Values = 32;  // values per block

// n = number of 16-bit values (src has 2n bytes; lo and hi have n each).
void shuffle16(const uint8_t* src, uint8_t* lo, uint8_t* hi, size_t n);
void unshuffle16(const uint8_t* lo, const uint8_t* hi, uint8_t* dst, size_t n);
// values = number of f16 values; the q8_0 side has ceil(values / 32) blocks.
bool f16_to_q8_0(const uint8_t* src, uint8_t* dst, size_t values);
void q8_0_to_f16(const uint8_t* src, uint8_t* dst, size_t values);
uint32_t crc32c(uint32_t seed, const uint8_t* data, size_t n);

// Picks the implementations for this CPU; call once before the others.
void init();
// The instruction sets init() picked, e.g. "avx2 f16c sse4.2" (diagnostics).
const char* features();

// ---- shared by the SIMD files (kernels.cc defines them) ----
namespace detail {
uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t h);
// One block, scalar: the reference the SIMD paths use for partial blocks and odd cases.
bool f16_block_to_q8(const uint8_t* src, uint8_t* dst, size_t count);
void q8_block_to_f16(const uint8_t* block, uint8_t* dst, size_t count);
// The q8_0 header of a block whose largest magnitude has f16 bits amax_bits (no NaN/Inf):
// returns id (1/d or 0) and stores d as f16 at dst.
float q8_scale(uint16_t amax_bits, uint8_t* dst);
uint32_t crc32c_table(uint32_t crc, const uint8_t* p, size_t n);
// CRC-32C register advanced over kLong / kShort zero bytes (three-stream combining).
constexpr size_t kLong = 8192;
constexpr size_t kShort = 256;
uint32_t crc_shift_long(uint32_t crc);
uint32_t crc_shift_short(uint32_t crc);
}  // namespace detail

// ---- per-architecture entry points, null when the build or CPU lacks them ----
struct Impl {
  void (*shuffle16)(const uint8_t*, uint8_t*, uint8_t*, size_t);
  void (*unshuffle16)(const uint8_t*, const uint8_t*, uint8_t*, size_t);
  bool (*f16_to_q8_0)(const uint8_t*, uint8_t*, size_t);
  void (*q8_0_to_f16)(const uint8_t*, uint8_t*, size_t);
  uint32_t (*crc32c)(uint32_t, const uint8_t*, size_t);  // register in, register out (no inversion)
};
// Fills the fields this architecture can speed up and appends names to features (space-separated).
void select_x86(Impl& impl, char* features, size_t size);
void select_arm(Impl& impl, char* features, size_t size);

}  // namespace hearth
