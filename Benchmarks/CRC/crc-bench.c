// CRC32C of stream frames (Sources/CUring/crc32c.c, as the engine calls it) against plain
// reads and memcpy of the same bytes, in the same run: 64 KiB frames (16 pages, one `pages`
// frame) from a 448 MiB region that is not in cache, as a paused guest's pages are when the
// source sends them from where they are, and one frame read again and again (cached). Then
// pass 1's way: each frame copied into a 4 MiB send buffer (one flush) with its CRC, by memcpy
// and then mp_crc32c over the copy, and by mp_crc32c_copy in one pass.
// Benchmarks/crc.sh builds and runs it. Best of five passes each, GB/s of bytes read.
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "CUring.h"

#define REGION (448ul << 20)
#define FRAME (64ul << 10)
#define FLUSH (4ul << 20)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Every byte loaded and folded into a sum the compiler must keep: the floor of any pass.
__attribute__((target("avx2")))
static uint64_t read_all(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a;
    for (size_t i = 0; i < n; i += 64) {
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const void *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_loadu_si256((const void *)(p + i + 32)));
    }
    a = _mm256_xor_si256(a, b);
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 1);
}

int main(void) {
    uint8_t *region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint8_t *frame = malloc(FRAME), *flush = malloc(FLUSH);
    if (region == MAP_FAILED || !frame || !flush) { perror("memory"); return 1; }
    memset(flush, 1, FLUSH);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < REGION; i += 8) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(region + i, &x, 8); }
    memcpy(frame, region, FRAME);
    double best[7] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    uint64_t keep = 0;
    int avx2 = __builtin_cpu_supports("avx2");
    for (int pass = 0; pass < 5; pass++) {
        double t = now();
        for (size_t o = 0; o < REGION; o += FRAME) keep ^= mp_crc32c(0, region + o, FRAME);
        if (now() - t < best[0]) best[0] = now() - t;
        if (avx2) {
            t = now();
            keep ^= read_all(region, REGION);
            if (now() - t < best[1]) best[1] = now() - t;
        }
        t = now();
        for (size_t o = 0; o < REGION; o += FRAME) { memcpy(frame, region + o, FRAME); keep ^= frame[o % FRAME]; }
        if (now() - t < best[2]) best[2] = now() - t;
        t = now();
        for (int k = 0; k < 7168; k++) keep ^= mp_crc32c((uint32_t)k, frame, FRAME);
        if (now() - t < best[3]) best[3] = now() - t;
        if (avx2) {
            t = now();
            for (int k = 0; k < 7168; k++) { __asm__ volatile("" ::: "memory"); keep ^= read_all(frame, FRAME); }
            if (now() - t < best[4]) best[4] = now() - t;
        }
        t = now();
        for (size_t o = 0; o < REGION; o += FRAME) {
            uint8_t *to = flush + o % FLUSH;
            memcpy(to, region + o, FRAME);
            keep ^= mp_crc32c(0, to, FRAME);
        }
        if (now() - t < best[5]) best[5] = now() - t;
        t = now();
        for (size_t o = 0; o < REGION; o += FRAME) keep ^= mp_crc32c_copy(0, flush + o % FLUSH, region + o, FRAME);
        if (now() - t < best[6]) best[6] = now() - t;
    }
    double gb = REGION / 1e9;
    printf("| 64 KiB frames | CRC32C GB/s | read GB/s | memcpy GB/s | CRC/read |\n|---|---|---|---|---|\n");
    printf("| from memory (448 MiB, not cached) | %.2f | %.2f | %.2f | %.2f |\n", gb / best[0], avx2 ? gb / best[1] : 0, gb / best[2], avx2 ? best[1] / best[0] : 0);
    printf("| cached (one frame, 7,168 times) | %.2f | %.2f | | %.2f |\n", 7168 * FRAME / 1e9 / best[3], avx2 ? 7168 * FRAME / 1e9 / best[4] : 0, avx2 ? best[4] / best[3] : 0);
    printf("\n| 64 KiB frames from memory into a 4 MiB buffer | memcpy, then CRC32C of the copy | mp_crc32c_copy | one pass / two |\n|---|---|---|---|\n");
    printf("| GB/s | %.2f | %.2f | %.2fx |\n", gb / best[5], gb / best[6], best[5] / best[6]);
    fprintf(stderr, "(%llx)\n", (unsigned long long)keep);
    return 0;
}
