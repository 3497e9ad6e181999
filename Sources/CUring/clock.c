// The monotonic clock and a sleep that survives signals, once for every module (Traces,
// Transport and MigrationEngine cannot share Swift code across the arrows).
#include <errno.h>
#include <time.h>
#include "CUring.h"

uint64_t mp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void mp_sleep_ns(uint64_t ns) {
    struct timespec left = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)}, rest;
    while (nanosleep(&left, &rest) != 0 && errno == EINTR) left = rest;
}
