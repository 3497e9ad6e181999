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
__attribute__((target("sse4.2")))
static uint32_t hard_update(uint32_t crc, const uint8_t *p, size_t len) {
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); len--; }
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
