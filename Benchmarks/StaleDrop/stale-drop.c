// The two ways a destination can get rid of its stale pages at the switch to postcopy, timed
// on this kernel with one thread (Benchmarks/stale-drop.sh): MADV_DONTNEED through
// process_madvise, 1,024 runs a call (what the engine does to a short run), and UFFDIO_MOVE
// into a scratch region registered with the same userfaultfd, one call a run (a long run).
// Each shape drops `runs` runs of `length` populated pages, a page kept between runs; the last
// lines fit time = per_run × runs + per_page × pages to each mechanism over every shape.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct move_arg { uint64_t dst, src, len, mode; int64_t move; };
#define MOVE_IOCTL _IOWR(UFFDIO, 0x05, struct move_arg)
#define FEATURE_MOVE (1ULL << 16)
#define ALLOW_SRC_HOLES (1ULL << 1)
#define DONTWAKE (1ULL << 0)

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static char *populated(size_t bytes) {
    char *p = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(p, bytes, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    return p;
}

static double drop(size_t length, size_t runs) {
    size_t ps = 4096, stride = (length + 1) * ps;
    char *p = populated(runs * stride);
    struct iovec *v = malloc(runs * sizeof *v);
    for (size_t r = 0; r < runs; r++) { v[r].iov_base = p + r * stride; v[r].iov_len = length * ps; }
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    double t0 = now();
    for (size_t i = 0; i < runs; i += 1024) {
        size_t n = runs - i < 1024 ? runs - i : 1024;
        if (syscall(SYS_process_madvise, pidfd, v + i, n, MADV_DONTNEED, 0) < 0) { perror("process_madvise"); exit(1); }
    }
    double t = now() - t0;
    close(pidfd); free(v); munmap(p, runs * stride);
    return t;
}

static double move(size_t length, size_t runs) {
    size_t ps = 4096, stride = (length + 1) * ps, moved = runs * length * ps;
    char *p = populated(runs * stride);
    char *scratch = mmap(0, moved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(scratch, moved, MADV_NOHUGEPAGE);
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    struct uffdio_api api = {.api = UFFD_API, .features = FEATURE_MOVE};
    if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) { perror("userfaultfd with UFFD_FEATURE_MOVE"); exit(1); }
    struct uffdio_register a = {.range = {(uintptr_t)p, runs * stride}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    struct uffdio_register b = {.range = {(uintptr_t)scratch, moved}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(fd, UFFDIO_REGISTER, &a) || ioctl(fd, UFFDIO_REGISTER, &b)) { perror("UFFDIO_REGISTER"); exit(1); }
    double t0 = now();
    for (size_t r = 0; r < runs; r++) {
        struct move_arg m = {.dst = (uintptr_t)(scratch + r * length * ps), .src = (uintptr_t)(p + r * stride),
                             .len = length * ps, .mode = ALLOW_SRC_HOLES | DONTWAKE};
        if (ioctl(fd, MOVE_IOCTL, &m)) { perror("UFFDIO_MOVE"); exit(1); }
    }
    double t = now() - t0;
    close(fd); munmap(scratch, moved); munmap(p, runs * stride);
    return t;
}

int main(void) {
    const size_t shapes[][2] = {{1, 16000}, {2, 16000}, {4, 12000}, {13, 8000}, {64, 2000}, {512, 250}, {10000, 12}};
    const int n = sizeof shapes / sizeof shapes[0];
    double sums[2][5] = {{0}};  // per mechanism: Σr², Σrp, Σp², Σrt, Σpt (least squares without intercept)
    printf("| run length | runs | drop (process_madvise) ms | µs a run | move (UFFDIO_MOVE) ms | µs a run |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        size_t length = shapes[i][0], runs = shapes[i][1];
        double t[2] = {1e9, 1e9};
        for (int rep = 0; rep < 3; rep++) {  // the best of three: the kernel's cost, not the host's hiccups
            double d = drop(length, runs), m = move(length, runs);
            if (d < t[0]) t[0] = d;
            if (m < t[1]) t[1] = m;
        }
        double r = (double)runs, p = (double)(runs * length);
        for (int k = 0; k < 2; k++) {
            sums[k][0] += r * r; sums[k][1] += r * p; sums[k][2] += p * p; sums[k][3] += r * t[k]; sums[k][4] += p * t[k];
        }
        printf("| %zu | %zu | %.2f | %.2f | %.2f | %.2f |\n", length, runs, t[0] * 1e3, t[0] * 1e6 / r, t[1] * 1e3, t[1] * 1e6 / r);
    }
    const char *names[2] = {"drop", "move"};
    for (int k = 0; k < 2; k++) {
        double *s = sums[k], det = s[0] * s[2] - s[1] * s[1];
        double perRun = (s[3] * s[2] - s[4] * s[1]) / det, perPage = (s[0] * s[4] - s[1] * s[3]) / det;
        printf("fit %s: %.3f µs a run + %.3f µs a page\n", names[k], perRun * 1e6, perPage * 1e6);
    }
    return 0;
}
