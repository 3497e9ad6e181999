// ioctl request numbers that Swift cannot compute from the _IOWR() macros, and system calls
// that glibc hides behind _GNU_SOURCE.
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <linux/userfaultfd.h>
#include "CUring.h"

// PAGEMAP_SCAN is _IOWR('f', 16, struct pm_scan_arg) in Linux 6.7+ (include/uapi/linux/fs.h).
const unsigned long mp_ioctl_pagemap_scan = _IOWR('f', 16, struct mp_pm_scan_arg);
const unsigned long mp_ioctl_uffdio_api = UFFDIO_API;
const unsigned long mp_ioctl_uffdio_register = UFFDIO_REGISTER;
const unsigned long mp_ioctl_uffdio_unregister = UFFDIO_UNREGISTER;
const unsigned long mp_ioctl_uffdio_copy = UFFDIO_COPY;
const unsigned long mp_ioctl_uffdio_zeropage = UFFDIO_ZEROPAGE;
const unsigned long mp_ioctl_uffdio_writeprotect = UFFDIO_WRITEPROTECT;
const unsigned long mp_ioctl_uffdio_wake = UFFDIO_WAKE;

_Static_assert(sizeof(struct mp_iovec) == sizeof(struct iovec), "mp_iovec must match iovec");

long mp_process_vm_readv(int pid, const struct mp_iovec *local, unsigned long local_count,
                         const struct mp_iovec *remote, unsigned long remote_count) {
    return process_vm_readv(pid, (const struct iovec *)local, local_count,
                            (const struct iovec *)remote, remote_count, 0);
}

long mp_discard_ranges(const struct mp_iovec *ranges, unsigned long count) {
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0) return -1;
    long total = 0;
    for (unsigned long i = 0; i < count; i += 1024) {
        unsigned long n = count - i < 1024 ? count - i : 1024;
        size_t want = 0;
        for (unsigned long j = i; j < i + n; j++) want += ranges[j].length;
        long done;
        do {
            done = syscall(SYS_process_madvise, pidfd, (const struct iovec *)(ranges + i), n, MADV_DONTNEED, 0);
        } while (done < 0 && errno == EINTR);
        if (done < 0) {
            int saved = errno;
            close(pidfd);
            errno = saved;
            return -1;
        }
        total += done;
        if ((size_t)done < want) break;
    }
    close(pidfd);
    return total;
}

// UFFDIO_MOVE is _IOWR(UFFDIO, 0x05, struct uffdio_move) in Linux 6.8+ (include/uapi/linux/userfaultfd.h).
struct mp_uffdio_move {
    uint64_t dst, src, len, mode;
    int64_t move;
};
#define MP_UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct mp_uffdio_move)
#define MP_UFFDIO_MOVE_MODE_DONTWAKE (1ULL << 0)
#define MP_UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES (1ULL << 1)

long mp_uffd_move_ranges(int fd, const struct mp_iovec *ranges, unsigned long count, uint64_t to) {
    long done = 0;
    for (unsigned long i = 0; i < count; i++) {
        uint64_t src = (uint64_t)(uintptr_t)ranges[i].base, left = ranges[i].length;
        while (left > 0) {
            // No waking: nothing can wait on `to`, which only this call touches.
            struct mp_uffdio_move m = {.dst = to, .src = src, .len = left,
                                       .mode = MP_UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | MP_UFFDIO_MOVE_MODE_DONTWAKE};
            int rc = ioctl(fd, MP_UFFDIO_MOVE, &m);
            uint64_t moved = m.move > 0 ? (uint64_t)m.move : 0;
            if (moved > left) moved = left;
            src += moved; to += moved; left -= moved; done += (long)moved;
            // EAGAIN or EINTR after part of the range: go on from there; anything else, or no
            // progress at all, ends here, and the caller discards what is left.
            if (moved == 0 || (rc < 0 && errno != EAGAIN && errno != EINTR)) return done;
        }
    }
    return done;
}

// userfaultfd with O_CLOEXEC | O_NONBLOCK; user-mode faults only (no privilege needed).
static int uffd_new(void) {
    return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
}

int64_t mp_uffd_supported_features(void) {
    int fd = uffd_new();
    if (fd < 0) return -1;
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    int rc = ioctl(fd, UFFDIO_API, &api);
    int saved = errno;
    close(fd);
    if (rc < 0) { errno = saved; return -1; }
    return (int64_t)api.features;
}

int mp_uffd_open(uint64_t features) {
    int fd = uffd_new();
    if (fd < 0) return -1;
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int mp_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode) {
    struct uffdio_register reg = {.range = {.start = start, .len = len}, .mode = mode};
    return ioctl(fd, UFFDIO_REGISTER, &reg);
}

int mp_uffd_unregister(int fd, uint64_t start, uint64_t len) {
    struct uffdio_range range = {.start = start, .len = len};
    return ioctl(fd, UFFDIO_UNREGISTER, &range);
}

int mp_uffd_writeprotect(int fd, uint64_t start, uint64_t len, int protect) {
    struct uffdio_writeprotect wp = {.range = {.start = start, .len = len},
                                     .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
    return ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

int64_t mp_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len) {
    struct uffdio_copy copy = {.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = 0};
    if (ioctl(fd, UFFDIO_COPY, &copy) == 0) return copy.copy;
    int saved = errno;
    if (copy.copy > 0) return copy.copy;  // a partial copy: the caller goes on after it
    errno = saved;
    return -1;
}

int64_t mp_uffd_zeropage(int fd, uint64_t dst, uint64_t len) {
    struct uffdio_zeropage zero = {.range = {.start = dst, .len = len}, .mode = 0};
    if (ioctl(fd, UFFDIO_ZEROPAGE, &zero) == 0) return zero.zeropage;
    int saved = errno;
    if (zero.zeropage > 0) return zero.zeropage;
    errno = saved;
    return -1;
}

int mp_uffd_read_fault(int fd, uint64_t *address, uint64_t *flags) {
    struct uffd_msg msg;
    ssize_t n = read(fd, &msg, sizeof msg);
    if (n < 0) return -1;
    if (n != sizeof msg) { errno = EIO; return -1; }
    if (msg.event != UFFD_EVENT_PAGEFAULT) return 0;
    *address = msg.arg.pagefault.address;
    *flags = msg.arg.pagefault.flags;
    return 1;
}

_Static_assert(MP_UFFDIO_REGISTER_MODE_WP == UFFDIO_REGISTER_MODE_WP, "register mode WP");
_Static_assert(MP_UFFDIO_REGISTER_MODE_MISSING == UFFDIO_REGISTER_MODE_MISSING, "register mode MISSING");
_Static_assert(MP_UFFD_PAGEFAULT_FLAG_WP == UFFD_PAGEFAULT_FLAG_WP, "page fault flag WP");
