// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): trace blocks, stream frames and page
// fingerprints. The SSE4.2 crc32 instruction where the CPU has it; a table everywhere else.
#include <stdint.h>
#include <string.h>
#include "CUring.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
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
#endif

uint32_t mp_crc32c(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = data;
#ifdef MP_HAVE_SSE42_PATH
    if (have_sse42()) return ~hard_update(~crc, p, len);
#endif
    return ~soft_update(~crc, p, len);
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
