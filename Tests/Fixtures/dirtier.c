// Test fixture: writes a known number of distinct pages per second, so that a recorder can be
// checked against the truth. Usage: dirtier MEMORY_MIB PAGES_PER_SECOND SECONDS [churn]
// Fills all of its memory first (so every page holds data), prints "ready" on stdout, then
// every 5 ms writes the next pages of a sequential sweep with a value never written before.
// With "churn" it also maps a new, filled 1 MiB region every 100 ms and unmaps the one it
// mapped 500 ms earlier: mappings appear and vanish while it runs.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "churn") == 0)) {
        fprintf(stderr, "usage: dirtier MEMORY_MIB PAGES_PER_SECOND SECONDS [churn]\n");
        return 64;
    }
    size_t pages = (size_t)atol(argv[1]) * 256;
    double rate = atof(argv[2]);
    double seconds = atof(argv[3]);
    uint8_t *mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t p = 0; p < pages; p++) memset(mem + p * 4096, 0x5a, 4096);
    printf("ready\n");
    fflush(stdout);
    const uint64_t tick = 5000000;  // 5 ms
    uint64_t start = now_ns(), stamp = 1;
    size_t next = 0;
    double owed = 0;
    int churn = argc == 5;
    uint8_t *regions[5] = {0};
    for (uint64_t k = 1; (double)(k * tick) < seconds * 1e9; k++) {
        uint64_t deadline = start + k * tick;
        uint64_t t = now_ns();
        if (t < deadline) {
            struct timespec ts = {0, (long)(deadline - t)};
            nanosleep(&ts, NULL);
        }
        if (churn && k % 20 == 0) {  // every 100 ms
            uint8_t **slot = &regions[(k / 20) % 5];
            if (*slot) munmap(*slot, 1 << 20);
            *slot = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (*slot == MAP_FAILED) { perror("mmap"); return 1; }
            memset(*slot, (int)(k & 0x7f) + 1, 1 << 20);
        }
        owed += rate * (double)tick / 1e9;
        while (owed >= 1) {
            uint64_t *word = (uint64_t *)(mem + next * 4096);
            *word = stamp++;
            next = (next + 1) % pages;
            owed -= 1;
        }
    }
    return 0;
}
