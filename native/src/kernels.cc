// Portable kernels, the CRC-32C tables and the dispatch. The scalar code mirrors
// engine/kv/kernels-fallback.ts step for step: same float32 operations in the same order, the
// same f32 → f16 rounding done on bits, so results match without relying on the FPU's modes.
#include "kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace hearth {
namespace detail {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    // ±0 or a subnormal: mantissa × 2^-24 is exact in float32.
    const float v = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (exponent == 31) {
    bits = sign | 0x7f800000 | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// Round to nearest, ties to even; see f32BitsToF16 in kernels-fallback.ts for the reasoning.
static uint16_t f32_bits_to_f16(uint32_t bits) {
  const uint32_t sign = (bits >> 16) & 0x8000;
  const uint32_t abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return static_cast<uint16_t>(abs > 0x7f800000 ? sign | 0x7e00 : sign | 0x7c00);
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);
  if (abs >= 0x38800000) return static_cast<uint16_t>(sign | ((abs - 0x38000000 + 0xfff + ((abs >> 13) & 1)) >> 13));
  const uint32_t exponent = abs >> 23;
  if (exponent < 102) return static_cast<uint16_t>(sign);
  const uint32_t mantissa = (abs & 0x7fffff) | 0x800000;
  const uint32_t shift = 126 - exponent;
  uint32_t q = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1))) q++;
  return static_cast<uint16_t>(sign | q);
}

uint16_t f32_to_f16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return f32_bits_to_f16(bits);
}

static inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
static inline void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

float q8_scale(uint16_t amax_bits, uint8_t* dst) {
  // quantize_row_q8_0_ref: d and 1/d in float32; q is computed with the float32 d, not the
  // f16-rounded one that is stored.
  const float amax = f16_to_f32(amax_bits);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store16(dst, f32_to_f16(d));
  return id;
}

bool f16_block_to_q8(const uint8_t* src, uint8_t* dst, size_t count) {
  uint16_t bits[kQ8Values];
  uint16_t amax_bits = 0;
  for (size_t j = 0; j < count; j++) {
    const uint16_t h = load16(src + 2 * j);
    if ((h & 0x7c00) == 0x7c00) return false;
    bits[j] = h;
    const uint16_t magnitude = h & 0x7fff;
    if (magnitude > amax_bits) amax_bits = magnitude;
  }
  const float id = q8_scale(amax_bits, dst);
  int8_t* q = reinterpret_cast<int8_t*>(dst + 2);
  for (size_t j = 0; j < count; j++) {
    const float x = f16_to_f32(bits[j]) * id;
    q[j] = static_cast<int8_t>(std::roundf(x));
  }
  for (size_t j = count; j < kQ8Values; j++) q[j] = 0;
  return true;
}

void q8_block_to_f16(const uint8_t* block, uint8_t* dst, size_t count) {
  const uint16_t dh = load16(block);
  const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
  if ((dh & 0x7c00) == 0x7c00) {
    // Damaged data only (the encoder never writes a non-finite scale): pinned results, as in
    // the fallback, because NaN bits differ between CPUs.
    for (size_t j = 0; j < count; j++) {
      uint16_t h;
      if ((dh & 0x3ff) != 0 || q[j] == 0) h = 0x7e00;
      else h = static_cast<uint16_t>((((q[j] < 0) ? 0x8000 : 0) ^ (dh & 0x8000)) | 0x7c00);
      store16(dst + 2 * j, h);
    }
    return;
  }
  const float d = f16_to_f32(dh);
  // int8 × f16 needs at most 19 significant bits: the float32 product is exact.
  for (size_t j = 0; j < count; j++) store16(dst + 2 * j, f32_to_f16(static_cast<float>(q[j]) * d));
}

// ---- CRC-32C ----

static uint32_t crc_table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

static void build_shift(uint32_t (&table)[4][256], size_t zeros) {
  // The register after `zeros` zero bytes is linear in the register before: find the image of
  // each of the 32 unit vectors, then tabulate per byte of the input register.
  uint32_t column[32];
  for (int i = 0; i < 32; i++) {
    uint32_t r = 1u << i;
    for (size_t k = 0; k < zeros; k++) r = crc_table[0][r & 0xff] ^ (r >> 8);
    column[i] = r;
  }
  for (int k = 0; k < 4; k++) {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t r = 0;
      for (int j = 0; j < 8; j++)
        if (b & (1u << j)) r ^= column[8 * k + j];
      table[k][b] = r;
    }
  }
}

static void build_crc_tables() {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    crc_table[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = crc_table[0][n];
    for (int t = 1; t < 8; t++) {
      c = crc_table[0][c & 0xff] ^ (c >> 8);
      crc_table[t][n] = c;
    }
  }
  build_shift(shift_long, kLong);
  build_shift(shift_short, kShort);
}

static inline uint32_t apply_shift(const uint32_t (&table)[4][256], uint32_t crc) {
  return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}
uint32_t crc_shift_long(uint32_t crc) { return apply_shift(shift_long, crc); }
uint32_t crc_shift_short(uint32_t crc) { return apply_shift(shift_short, crc); }

uint32_t crc32c_table(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    const uint32_t a = crc ^ (p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24));
    crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^ crc_table[5][(a >> 16) & 0xff] ^
          crc_table[4][a >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

}  // namespace detail

// ---- portable whole-buffer versions ----

static void shuffle16_scalar(const uint8_t* src, uint8_t* lo, uint8_t* hi, size_t n) {
  for (size_t i = 0; i < n; i++) {
    lo[i] = src[2 * i];
    hi[i] = src[2 * i + 1];
  }
}

static void unshuffle16_scalar(const uint8_t* lo, const uint8_t* hi, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) {
    dst[2 * i] = lo[i];
    dst[2 * i + 1] = hi[i];
  }
}

static bool f16_to_q8_0_scalar(const uint8_t* src, uint8_t* dst, size_t values) {
  for (size_t first = 0; first < values; first += kQ8Values) {
    const size_t count = values - first < kQ8Values ? values - first : kQ8Values;
    if (!detail::f16_block_to_q8(src + 2 * first, dst + (first / kQ8Values) * kQ8Block, count)) return false;
  }
  return true;
}

static void q8_0_to_f16_scalar(const uint8_t* src, uint8_t* dst, size_t values) {
  for (size_t first = 0; first < values; first += kQ8Values) {
    const size_t count = values - first < kQ8Values ? values - first : kQ8Values;
    detail::q8_block_to_f16(src + (first / kQ8Values) * kQ8Block, dst + 2 * first, count);
  }
}

static Impl impl = {shuffle16_scalar, unshuffle16_scalar, f16_to_q8_0_scalar, q8_0_to_f16_scalar,
                    detail::crc32c_table};
static char feature_names[128] = "";

void init() {
  detail::build_crc_tables();
  // HEARTH_KV_SIMD=portable keeps the portable code (tests use it to check those paths on
  // machines whose CPU would otherwise pick SIMD).
  const char* simd = std::getenv("HEARTH_KV_SIMD");
  if (simd == nullptr || std::strcmp(simd, "portable") != 0) {
    select_x86(impl, feature_names, sizeof feature_names);
    select_arm(impl, feature_names, sizeof feature_names);
  }
  if (feature_names[0] == 0) std::strcpy(feature_names, "portable");
}

const char* features() { return feature_names; }

void shuffle16(const uint8_t* src, uint8_t* lo, uint8_t* hi, size_t n) { impl.shuffle16(src, lo, hi, n); }
void unshuffle16(const uint8_t* lo, const uint8_t* hi, uint8_t* dst, size_t n) { impl.unshuffle16(lo, hi, dst, n); }
bool f16_to_q8_0(const uint8_t* src, uint8_t* dst, size_t values) { return impl.f16_to_q8_0(src, dst, values); }
void q8_0_to_f16(const uint8_t* src, uint8_t* dst, size_t values) { impl.q8_0_to_f16(src, dst, values); }
uint32_t crc32c(uint32_t seed, const uint8_t* data, size_t n) { return ~impl.crc32c(~seed, data, n); }

}  // namespace hearth
