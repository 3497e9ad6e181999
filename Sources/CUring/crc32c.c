// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): trace blocks, stream frames (pass 1's
// copied into the send buffer as their CRC is computed) and page fingerprints. Carry-less multiplication (VPCLMULQDQ) for long buffers and the SSE4.2 crc32
// instruction for the rest where the CPU has them; a table everywhere else.
#include <stdint.h>
#include <string.h>
#include "CUring.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MP_HAVE_SSE42_PATH 1
#endif

static uint32_t table[256];
static int table_ready;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        table[i] = c;
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t soft_update(uint32_t crc, const uint8_t *p, size_t len) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    while (len--) crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xff];
    return crc;
}

static uint32_t soft_update_u64(uint32_t crc, uint64_t v) {
    uint8_t b[8];
    memcpy(b, &v, 8);
    return soft_update(crc, b, 8);
}

#ifdef MP_HAVE_SSE42_PATH
// One crc32 instruction has a latency of three cycles and a throughput of one: a single chain
// runs at a third of what the unit can do. Long buffers are cut into blocks of three lanes of
// LANE bytes computed side by side, then joined: crc(A B C) = shift(shift(crc(A)) ^ crc(B)) ^
// crc(C), where shift appends LANE zero bytes to a raw CRC state — a linear map over GF(2),
// applied with four byte tables built once from the instruction itself.
#define LANE 1360  // three lanes fill a 4 KiB page but for 16 bytes
static uint32_t lane_shift[4][256];
static int lane_shift_ready;

__attribute__((target("sse4.2")))
static uint32_t raw_zeros(uint32_t c, size_t len) {
    uint64_t x = c;
    for (size_t i = 0; i < len; i += 8) x = _mm_crc32_u64(x, 0);
    return (uint32_t)x;
}

__attribute__((target("sse4.2")))
static void build_lane_shift(void) {
    uint32_t basis[32];
    for (int bit = 0; bit < 32; bit++) basis[bit] = raw_zeros(1u << bit, LANE);
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++) if (b & (1 << j)) v ^= basis[8 * k + j];
            lane_shift[k][b] = v;
        }
    __atomic_store_n(&lane_shift_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t shift_lane(uint32_t c) {
    return lane_shift[0][c & 0xff] ^ lane_shift[1][(c >> 8) & 0xff] ^ lane_shift[2][(c >> 16) & 0xff] ^ lane_shift[3][c >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t hard_update(uint32_t crc, const uint8_t *p, size_t len) {
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); len--; }
    if (len >= 3 * LANE) {
        if (!__atomic_load_n(&lane_shift_ready, __ATOMIC_ACQUIRE)) build_lane_shift();
        while (len >= 3 * LANE) {
            uint64_t a = c, b = 0, d = 0;
            for (size_t i = 0; i < LANE; i += 8) {
                uint64_t va, vb, vd;
                memcpy(&va, p + i, 8);
                memcpy(&vb, p + LANE + i, 8);
                memcpy(&vd, p + 2 * LANE + i, 8);
                a = _mm_crc32_u64(a, va);
                b = _mm_crc32_u64(b, vb);
                d = _mm_crc32_u64(d, vd);
            }
            c = shift_lane(shift_lane((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
            p += 3 * LANE;
            len -= 3 * LANE;
        }
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

__attribute__((target("sse4.2")))
static void hard_fingerprints(const uint8_t *p, size_t count, size_t page_size, uint64_t *out) {
    for (size_t i = 0; i < count; i++, p += page_size) {
        uint64_t l0 = 0, l1 = 0, l2 = 0, l3 = 0;
        for (size_t off = 0; off < page_size; off += 32) {
            uint64_t v0, v1, v2, v3;
            memcpy(&v0, p + off, 8);
            memcpy(&v1, p + off + 8, 8);
            memcpy(&v2, p + off + 16, 8);
            memcpy(&v3, p + off + 24, 8);
            l0 = _mm_crc32_u64(l0, v0);
            l1 = _mm_crc32_u64(l1, v1);
            l2 = _mm_crc32_u64(l2, v2);
            l3 = _mm_crc32_u64(l3, v3);
        }
        out[i] = ((l0 << 32) | l1) ^ (((l2 << 32) | l3) * 0x9E3779B97F4A7C15ull);
    }
}

static int have_sse42(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    return cached;
}

// Long buffers on CPUs with VPCLMULQDQ: folding. The three crc32 lanes above read three places
// at once, and on a buffer that is not in cache (a paused guest's pages, sent from where they
// are) their loads wait on memory: 6.2 GB/s here, against 22 GB/s on cached data. Folding reads
// the buffer front to back, with a prefetch 2 KiB ahead: 11.5–14.4 GB/s on the same memory,
// near plain reads of it, and 24–25 GB/s cached (Benchmarks/crc.sh). Four 256-bit accumulators each hold two 16-byte blocks; a block
// B followed by D bytes is worth B·x^(8D) mod P, which carry-less multiplies compute: its first
// 8 bytes (the high-degree half, bit j the coefficient of x^(63-j)) times x^(8D+31) mod P, its
// last 8 times x^(8D-33) mod P, both constants bit-reflected, the products landing in the
// block's own layout. What is left is one block worth as much as everything before it: its
// CRC, then the tail, go through the crc32 instruction.
#define FOLD_STEP 128      // bytes a loop turn folds: four accumulators of 32 bytes
#define FOLD_SHORTEST 4096 // below this the lanes are as fast, and the set-up is not worth it
#define FOLD_PREFETCH 2048
static uint64_t fold_16[2], fold_step[2];
static int fold_ready;

// x^n mod P, bit-reflected into 32 bits (bit i the coefficient of x^(31-i)).
static uint64_t reflected_x_pow_mod(unsigned n) {
    uint32_t r = 1;
    for (unsigned i = 0; i < n; i++) r = (r & 0x80000000u) ? (r << 1) ^ 0x1EDC6F41u : r << 1;
    uint32_t out = 0;
    for (int i = 0; i < 32; i++) if (r & (1u << i)) out |= 1u << (31 - i);
    return out;
}

static void build_fold_constants(void) {
    fold_16[0] = reflected_x_pow_mod(8 * 16 + 31);
    fold_16[1] = reflected_x_pow_mod(8 * 16 - 33);
    fold_step[0] = reflected_x_pow_mod(8 * FOLD_STEP + 31);
    fold_step[1] = reflected_x_pow_mod(8 * FOLD_STEP - 33);
    __atomic_store_n(&fold_ready, 1, __ATOMIC_RELEASE);
}

__attribute__((target("pclmul,sse4.2")))
static inline __m128i fold_block(__m128i x, __m128i k, __m128i next) {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

__attribute__((target("vpclmulqdq,avx2,pclmul,sse4.2")))
static inline __m256i fold_pair(__m256i x, __m256i k, __m256i next) {
    return _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00), _mm256_clmulepi64_epi128(x, k, 0x11)), next);
}

// The four accumulators folded into one block, then the `len` < FOLD_STEP bytes left at `p`
// folded in 16 at a time; that block's CRC, then the last bytes', through the crc32 instruction.
__attribute__((target("vpclmulqdq,avx2,pclmul,sse4.2")))
static uint32_t fold_finish(__m256i x0, __m256i x1, __m256i x2, __m256i x3, const uint8_t *p, size_t len) {
    const __m128i k16 = _mm_set_epi64x((long long)fold_16[1], (long long)fold_16[0]);
    __m128i a = _mm256_castsi256_si128(x0);
    a = fold_block(a, k16, _mm256_extracti128_si256(x0, 1));
    a = fold_block(a, k16, _mm256_castsi256_si128(x1));
    a = fold_block(a, k16, _mm256_extracti128_si256(x1, 1));
    a = fold_block(a, k16, _mm256_castsi256_si128(x2));
    a = fold_block(a, k16, _mm256_extracti128_si256(x2, 1));
    a = fold_block(a, k16, _mm256_castsi256_si128(x3));
    a = fold_block(a, k16, _mm256_extracti128_si256(x3, 1));
    for (; len >= 16; p += 16, len -= 16) a = fold_block(a, k16, _mm_loadu_si128((const void *)p));
    uint64_t r = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(a));
    r = _mm_crc32_u64(r, (uint64_t)_mm_extract_epi64(a, 1));
    return hard_update((uint32_t)r, p, len);
}

// The raw CRC state `c` continued over `len` ≥ FOLD_STEP bytes at `p`.
__attribute__((target("vpclmulqdq,avx2,pclmul,sse4.2")))
static uint32_t fold_update(uint32_t c, const uint8_t *p, size_t len) {
    if (!__atomic_load_n(&fold_ready, __ATOMIC_ACQUIRE)) build_fold_constants();
    const __m256i k = _mm256_set_epi64x((long long)fold_step[1], (long long)fold_step[0], (long long)fold_step[1], (long long)fold_step[0]);
    __m256i x0 = _mm256_loadu_si256((const void *)p), x1 = _mm256_loadu_si256((const void *)(p + 32));
    __m256i x2 = _mm256_loadu_si256((const void *)(p + 64)), x3 = _mm256_loadu_si256((const void *)(p + 96));
    x0 = _mm256_xor_si256(x0, _mm256_set_epi64x(0, 0, 0, c));  // the state, as if XORed into the first bytes
    for (p += FOLD_STEP, len -= FOLD_STEP; len >= FOLD_STEP; p += FOLD_STEP, len -= FOLD_STEP) {
        _mm_prefetch((const char *)p + FOLD_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)p + FOLD_PREFETCH + 64, _MM_HINT_T0);
        x0 = fold_pair(x0, k, _mm256_loadu_si256((const void *)p));
        x1 = fold_pair(x1, k, _mm256_loadu_si256((const void *)(p + 32)));
        x2 = fold_pair(x2, k, _mm256_loadu_si256((const void *)(p + 64)));
        x3 = fold_pair(x3, k, _mm256_loadu_si256((const void *)(p + 96)));
    }
    return fold_finish(x0, x1, x2, x3, p, len);
}

// One FOLD_STEP of `src` loaded into `y` and stored at `dst`.
__attribute__((target("avx2")))
static inline void copy_step(uint8_t *dst, const uint8_t *src, __m256i y[4]) {
    for (int i = 0; i < 4; i++) {
        y[i] = _mm256_loadu_si256((const void *)(src + 32 * i));
        _mm256_storeu_si256((void *)(dst + 32 * i), y[i]);
    }
}

// fold_update that also stores every block it loads at `dst`: the CRC is of the bytes written
// there, even when `src` changes under the copy (a running guest's page). One pass over the
// data instead of a copy and then a read of the copy.
__attribute__((target("vpclmulqdq,avx2,pclmul,sse4.2")))
static uint32_t fold_copy(uint32_t c, uint8_t *dst, const uint8_t *src, size_t len) {
    if (!__atomic_load_n(&fold_ready, __ATOMIC_ACQUIRE)) build_fold_constants();
    const __m256i k = _mm256_set_epi64x((long long)fold_step[1], (long long)fold_step[0], (long long)fold_step[1], (long long)fold_step[0]);
    __m256i x[4], y[4];
    copy_step(dst, src, x);
    x[0] = _mm256_xor_si256(x[0], _mm256_set_epi64x(0, 0, 0, c));
    for (src += FOLD_STEP, dst += FOLD_STEP, len -= FOLD_STEP; len >= FOLD_STEP; src += FOLD_STEP, dst += FOLD_STEP, len -= FOLD_STEP) {
        _mm_prefetch((const char *)src + FOLD_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)src + FOLD_PREFETCH + 64, _MM_HINT_T0);
        copy_step(dst, src, y);
        for (int i = 0; i < 4; i++) x[i] = fold_pair(x[i], k, y[i]);
    }
    memcpy(dst, src, len);  // the tail, folded from where it was written
    return fold_finish(x[0], x[1], x[2], x[3], dst, len);
}

static int have_vpclmulqdq(void) {
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul") && have_sse42();
    return cached;
}
#endif

uint32_t mp_crc32c(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = data;
#ifdef MP_HAVE_SSE42_PATH
    if (len >= FOLD_SHORTEST && have_vpclmulqdq()) return ~fold_update(~crc, p, len);
    if (have_sse42()) return ~hard_update(~crc, p, len);
#endif
    return ~soft_update(~crc, p, len);
}

uint32_t mp_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len) {
#ifdef MP_HAVE_SSE42_PATH
    if (len >= FOLD_SHORTEST && have_vpclmulqdq()) return ~fold_copy(~crc, dst, src, len);
#endif
    memcpy(dst, src, len);
    return mp_crc32c(crc, dst, len);
}

void mp_page_fingerprints(const void *pages, size_t count, size_t page_size, uint64_t *out) {
    const uint8_t *p = pages;
#ifdef MP_HAVE_SSE42_PATH
    if (have_sse42()) {
        hard_fingerprints(p, count, page_size, out);
        return;
    }
#endif
    for (size_t i = 0; i < count; i++, p += page_size) {
        uint64_t l[4] = {0, 0, 0, 0};
        for (size_t off = 0; off < page_size; off += 32) {
            for (int k = 0; k < 4; k++) {
                uint64_t v;
                memcpy(&v, p + off + 8 * k, 8);
                l[k] = soft_update_u64((uint32_t)l[k], v);
            }
        }
        out[i] = ((l[0] << 32) | l[1]) ^ (((l[2] << 32) | l[3]) * 0x9E3779B97F4A7C15ull);
    }
}
