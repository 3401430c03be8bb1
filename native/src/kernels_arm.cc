// arm64 paths (Apple silicon, Linux arm64): NEON is part of the architecture, so no runtime
// check; the CRC32 instructions are used when the compiler targets them (__ARM_FEATURE_CRC32,
// the default for Apple's arm64 targets), else the table version stays.
#include "kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#if defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

#include <cstring>

namespace hearth {
namespace {

void shuffle16_neon(const uint8_t* src, uint8_t* lo, uint8_t* hi, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint8x16x2_t v = vld2q_u8(src + 2 * i);  // de-interleaves even and odd bytes
    vst1q_u8(lo + i, v.val[0]);
    vst1q_u8(hi + i, v.val[1]);
  }
  for (; i < n; i++) {
    lo[i] = src[2 * i];
    hi[i] = src[2 * i + 1];
  }
}

void unshuffle16_neon(const uint8_t* lo, const uint8_t* hi, uint8_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint8x16x2_t v;
    v.val[0] = vld1q_u8(lo + i);
    v.val[1] = vld1q_u8(hi + i);
    vst2q_u8(dst + 2 * i, v);
  }
  for (; i < n; i++) {
    dst[2 * i] = lo[i];
    dst[2 * i + 1] = hi[i];
  }
}

void q8_0_to_f16_neon(const uint8_t* src, uint8_t* dst, size_t values) {
  const size_t full = values / kQ8Values;
  for (size_t b = 0; b < full; b++) {
    const uint8_t* block = src + b * kQ8Block;
    uint8_t* out = dst + b * kQ8Values * 2;
    const uint16_t dh = static_cast<uint16_t>(block[0] | (block[1] << 8));
    if ((dh & 0x7c00) == 0x7c00) {
      detail::q8_block_to_f16(block, out, kQ8Values);
      continue;
    }
    // Exact int8 × f16 products; FCVT rounds to nearest even (the default FPCR mode Node runs in).
    const float32x4_t d = vdupq_n_f32(detail::f16_to_f32(dh));
    for (int k = 0; k < 4; k++) {
      const int16x8_t q = vmovl_s8(vld1_s8(reinterpret_cast<const int8_t*>(block + 2 + 8 * k)));
      const float32x4_t a = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), d);
      const float32x4_t c = vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(q)), d);
      const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(a), c);
      vst1q_u16(reinterpret_cast<uint16_t*>(out + 16 * k), vreinterpretq_u16_f16(h));
    }
  }
  if (values > full * kQ8Values)
    detail::q8_block_to_f16(src + full * kQ8Block, dst + full * kQ8Values * 2, values - full * kQ8Values);
}

#if defined(__ARM_FEATURE_CRC32)
uint32_t crc32c_arm(uint32_t crc, const uint8_t* p, size_t n) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = __crc32cb(crc, *p++);
    n--;
  }
  // Three streams, joined as in the x86 version (kernels_x86.cc).
  for (int pass = 0; pass < 2; pass++) {
    const size_t len = pass == 0 ? detail::kLong : detail::kShort;
    while (n >= 3 * len) {
      uint32_t c0 = crc, c1 = 0, c2 = 0;
      for (size_t i = 0; i < len; i += 8) {
        uint64_t w0, w1, w2;
        std::memcpy(&w0, p + i, 8);
        std::memcpy(&w1, p + len + i, 8);
        std::memcpy(&w2, p + 2 * len + i, 8);
        c0 = __crc32cd(c0, w0);
        c1 = __crc32cd(c1, w1);
        c2 = __crc32cd(c2, w2);
      }
      if (pass == 0) {
        crc = detail::crc_shift_long(c0) ^ c1;
        crc = detail::crc_shift_long(crc) ^ c2;
      } else {
        crc = detail::crc_shift_short(c0) ^ c1;
        crc = detail::crc_shift_short(crc) ^ c2;
      }
      p += 3 * len;
      n -= 3 * len;
    }
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    crc = __crc32cd(crc, w);
  }
  while (n-- > 0) crc = __crc32cb(crc, *p++);
  return crc;
}
#endif

}  // namespace

void select_arm(Impl& impl, char* features, size_t size) {
  impl.shuffle16 = shuffle16_neon;
  impl.unshuffle16 = unshuffle16_neon;
  impl.q8_0_to_f16 = q8_0_to_f16_neon;
  const char* names = "neon";
#if defined(__ARM_FEATURE_CRC32)
  impl.crc32c = crc32c_arm;
  names = "neon crc32";
#endif
  if (std::strlen(names) < size) std::strcpy(features, names);
}

}  // namespace hearth

#else

namespace hearth {
void select_arm(Impl&, char*, size_t) {}
}  // namespace hearth

#endif
