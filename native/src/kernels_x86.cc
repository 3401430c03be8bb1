// x86-64 SIMD paths. Each function carries its own target attribute, so the file builds with
// the baseline x86-64 flags and select_x86 only installs what CPUID says this CPU runs.
// (CPUID rather than __builtin_cpu_supports: it also covers F16C on every compiler, and MSVC.)
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define HK_TARGET(x)
#else
#include <cpuid.h>
#define HK_TARGET(x) __attribute__((target(x)))
#endif

namespace hearth {
namespace {

struct Cpu {
  bool sse42 = false, avx2 = false, f16c = false;
};

void cpuid(int leaf, int sub, unsigned r[4]) {
#if defined(_MSC_VER) && !defined(__clang__)
  int out[4];
  __cpuidex(out, leaf, sub);
  for (int i = 0; i < 4; i++) r[i] = static_cast<unsigned>(out[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

uint64_t xgetbv0() {
#if defined(_MSC_VER) && !defined(__clang__)
  return _xgetbv(0);
#else
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
#endif
}

Cpu detect() {
  Cpu cpu;
  unsigned r[4];
  cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  cpuid(1, 0, r);
  cpu.sse42 = (r[2] >> 20) & 1;
  const bool osxsave = (r[2] >> 27) & 1;
  const bool avx = (r[2] >> 28) & 1;
  const bool f16c = (r[2] >> 29) & 1;
  // AVX state (XMM and YMM) must be enabled by the OS, not just present in the CPU.
  const bool ymm = osxsave && avx && (xgetbv0() & 6) == 6;
  cpu.f16c = ymm && f16c;
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    cpu.avx2 = ymm && ((r[1] >> 5) & 1);
  }
  return cpu;
}

// ---- shuffle / unshuffle ----

void shuffle16_sse2(const uint8_t* src, uint8_t* lo, uint8_t* hi, size_t n) {
  const __m128i mask = _mm_set1_epi16(0x00ff);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i + 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i), _mm_packus_epi16(_mm_and_si128(a, mask), _mm_and_si128(b, mask)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i), _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
  }
  for (; i < n; i++) {
    lo[i] = src[2 * i];
    hi[i] = src[2 * i + 1];
  }
}

void unshuffle16_sse2(const uint8_t* lo, const uint8_t* hi, uint8_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i l = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + i));
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), _mm_unpacklo_epi8(l, h));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i + 16), _mm_unpackhi_epi8(l, h));
  }
  for (; i < n; i++) {
    dst[2 * i] = lo[i];
    dst[2 * i + 1] = hi[i];
  }
}

HK_TARGET("avx2")
void shuffle16_avx2(const uint8_t* src, uint8_t* lo, uint8_t* hi, size_t n) {
  const __m256i mask = _mm256_set1_epi16(0x00ff);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i + 32));
    // packus works per 128-bit lane: [a0 b0 | a1 b1] → reorder the quadwords to [a0 a1 b0 b1].
    const __m256i l = _mm256_packus_epi16(_mm256_and_si256(a, mask), _mm256_and_si256(b, mask));
    const __m256i h = _mm256_packus_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(b, 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i), _mm256_permute4x64_epi64(l, 0xd8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i), _mm256_permute4x64_epi64(h, 0xd8));
  }
  shuffle16_sse2(src + 2 * i, lo + i, hi + i, n - i);
}

HK_TARGET("avx2")
void unshuffle16_avx2(const uint8_t* lo, const uint8_t* hi, uint8_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    // unpack works per lane: pre-order the quadwords so each lane holds consecutive values.
    const __m256i l = _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + i)), 0xd8);
    const __m256i h = _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + i)), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * i), _mm256_unpacklo_epi8(l, h));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * i + 32), _mm256_unpackhi_epi8(l, h));
  }
  unshuffle16_sse2(lo + i, hi + i, dst + 2 * i, n - i);
}

// ---- q8_0 ----

HK_TARGET("avx2,f16c")
void q8_0_to_f16_avx2(const uint8_t* src, uint8_t* dst, size_t values) {
  const size_t full = values / kQ8Values;
  for (size_t b = 0; b < full; b++) {
    const uint8_t* block = src + b * kQ8Block;
    uint8_t* out = dst + b * kQ8Values * 2;
    const uint16_t dh = static_cast<uint16_t>(block[0] | (block[1] << 8));
    if ((dh & 0x7c00) == 0x7c00) {
      detail::q8_block_to_f16(block, out, kQ8Values);
      continue;
    }
    // The products are exact (int8 × f16), so vcvtps2ph's round-to-nearest-even gives the same
    // f16 as the scalar bit-level rounding, subnormal and overflowing results included.
    const __m256 d = _mm256_set1_ps(detail::f16_to_f32(dh));
    for (int k = 0; k < 4; k++) {
      const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block + 2 + 8 * k));
      const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * k), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
  }
  if (values > full * kQ8Values)
    detail::q8_block_to_f16(src + full * kQ8Block, dst + full * kQ8Values * 2, values - full * kQ8Values);
}

HK_TARGET("avx2,f16c")
bool f16_to_q8_0_avx2(const uint8_t* src, uint8_t* dst, size_t values) {
  const size_t full = values / kQ8Values;
  const __m256i exp_mask = _mm256_set1_epi16(0x7c00);
  const __m256i abs_mask = _mm256_set1_epi16(0x7fff);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (size_t b = 0; b < full; b++) {
    const uint8_t* in = src + b * kQ8Values * 2;
    uint8_t* block = dst + b * kQ8Block;
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 32));
    const __m256i bad = _mm256_or_si256(_mm256_cmpeq_epi16(_mm256_and_si256(v0, exp_mask), exp_mask),
                                        _mm256_cmpeq_epi16(_mm256_and_si256(v1, exp_mask), exp_mask));
    if (!_mm256_testz_si256(bad, bad)) return false;
    // f16 magnitudes order like their bits (no NaN here): the max is found on integers.
    const __m256i m = _mm256_max_epi16(_mm256_and_si256(v0, abs_mask), _mm256_and_si256(v1, abs_mask));
    __m128i r = _mm_max_epi16(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    r = _mm_max_epi16(r, _mm_srli_si128(r, 8));
    r = _mm_max_epi16(r, _mm_srli_si128(r, 4));
    r = _mm_max_epi16(r, _mm_srli_si128(r, 2));
    const float id = detail::q8_scale(static_cast<uint16_t>(_mm_extract_epi16(r, 0)), block);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
      const __m256 x = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 16 * k))), vid);
      // roundf: truncate, then step away from zero when the dropped fraction is at least 0.5
      // (x - trunc(x) is exact); adding 0.5 first would misround 0.49999997.
      const __m256 t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(x, t));
      const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), _mm256_or_ps(_mm256_and_ps(x, sign), one));
      q[k] = _mm256_cvtps_epi32(_mm256_add_ps(t, step));
    }
    // Packs work per lane; the permute restores the value order (values fit int8: |q| ≤ 127).
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(block + 2), _mm256_permutevar8x32_epi32(packed, order));
  }
  if (values > full * kQ8Values)
    return detail::f16_block_to_q8(src + full * kQ8Values * 2, dst + full * kQ8Block, values - full * kQ8Values);
  return true;
}

// ---- CRC-32C ----

HK_TARGET("sse4.2")
uint32_t crc32c_sse42(uint32_t crc, const uint8_t* p, size_t n) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = _mm_crc32_u8(crc, *p++);
    n--;
  }
  // Three independent streams hide the crc32 instruction's 3-cycle latency; the partial CRCs
  // are joined by advancing the earlier ones over the later streams' lengths (linear maps).
  // (A loop, not a lambda: a lambda would not inherit this function's target attribute.)
  for (int pass = 0; pass < 2; pass++) {
    const size_t len = pass == 0 ? detail::kLong : detail::kShort;
    while (n >= 3 * len) {
      uint64_t c0 = crc, c1 = 0, c2 = 0;
      for (size_t i = 0; i < len; i += 8) {
        uint64_t w0, w1, w2;
        std::memcpy(&w0, p + i, 8);
        std::memcpy(&w1, p + len + i, 8);
        std::memcpy(&w2, p + 2 * len + i, 8);
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
      }
      if (pass == 0) {
        crc = detail::crc_shift_long(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
        crc = detail::crc_shift_long(crc) ^ static_cast<uint32_t>(c2);
      } else {
        crc = detail::crc_shift_short(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
        crc = detail::crc_shift_short(crc) ^ static_cast<uint32_t>(c2);
      }
      p += 3 * len;
      n -= 3 * len;
    }
  }
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  crc = static_cast<uint32_t>(c);
  while (n-- > 0) crc = _mm_crc32_u8(crc, *p++);
  return crc;
}

void append(char* features, size_t size, const char* name) {
  const size_t used = std::strlen(features);
  const size_t add = std::strlen(name) + (used ? 1 : 0);
  if (used + add + 1 > size) return;
  if (used) features[used] = ' ';
  std::memcpy(features + used + (used ? 1 : 0), name, std::strlen(name) + 1);
}

}  // namespace

void select_x86(Impl& impl, char* features, size_t size) {
  Cpu cpu = detect();
  // HEARTH_KV_SIMD=sse2 pretends to be a baseline x86-64 CPU (tests of the SSE2 and table paths).
  const char* simd = std::getenv("HEARTH_KV_SIMD");
  if (simd != nullptr && std::strcmp(simd, "sse2") == 0) cpu = Cpu();
  // SSE2 is part of x86-64 itself.
  impl.shuffle16 = shuffle16_sse2;
  impl.unshuffle16 = unshuffle16_sse2;
  if (cpu.avx2) {
    impl.shuffle16 = shuffle16_avx2;
    impl.unshuffle16 = unshuffle16_avx2;
    append(features, size, "avx2");
  } else {
    append(features, size, "sse2");
  }
  if (cpu.avx2 && cpu.f16c) {
    impl.q8_0_to_f16 = q8_0_to_f16_avx2;
    impl.f16_to_q8_0 = f16_to_q8_0_avx2;
    append(features, size, "f16c");
  }
  if (cpu.sse42) {
    impl.crc32c = crc32c_sse42;
    append(features, size, "sse4.2");
  }
}

}  // namespace hearth

#else

namespace hearth {
void select_x86(Impl&, char*, size_t) {}
}  // namespace hearth

#endif
