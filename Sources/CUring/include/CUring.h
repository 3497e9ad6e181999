// migpilot's C layer: the project's own small API over liburing, the kernel ABI that Debian's
// headers predate, and hardware CRC32C. Only plain integer and pointer types cross into Swift;
// liburing.h is included by uring.c alone (it defines _GNU_SOURCE/_XOPEN_SOURCE and clashes
// with Glibc's module when exposed to Swift).
#ifndef MIGPILOT_CURING_H
#define MIGPILOT_CURING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: kernel ABI missing from Debian 12's linux-libc-dev (Linux 6.7+)

/// userfaultfd features (include/uapi/linux/userfaultfd.h).
#define MP_UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define MP_UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#define MP_UFFD_FEATURE_MOVE (1ULL << 16)

/// PAGEMAP_SCAN page categories (include/uapi/linux/fs.h).
#define MP_PAGE_IS_WPALLOWED (1ULL << 0)
#define MP_PAGE_IS_WRITTEN (1ULL << 1)
#define MP_PAGE_IS_FILE (1ULL << 2)
#define MP_PAGE_IS_PRESENT (1ULL << 3)
#define MP_PAGE_IS_SWAPPED (1ULL << 4)
#define MP_PAGE_IS_PFNZERO (1ULL << 5)
#define MP_PAGE_IS_HUGE (1ULL << 6)
#define MP_PAGE_IS_SOFT_DIRTY (1ULL << 7)

/// PAGEMAP_SCAN flags.
#define MP_PM_SCAN_WP_MATCHING (1ULL << 0)
#define MP_PM_SCAN_CHECK_WPASYNC (1ULL << 1)

/// One run of pages that share categories, as PAGEMAP_SCAN reports it.
struct mp_page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};

/// The argument of the PAGEMAP_SCAN ioctl (struct pm_scan_arg).
struct mp_pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};

/// ioctl request numbers, computed in C because Swift cannot import _IOWR().
extern const unsigned long mp_ioctl_pagemap_scan;
extern const unsigned long mp_ioctl_uffdio_api;
extern const unsigned long mp_ioctl_uffdio_register;
extern const unsigned long mp_ioctl_uffdio_unregister;
extern const unsigned long mp_ioctl_uffdio_copy;
extern const unsigned long mp_ioctl_uffdio_zeropage;
extern const unsigned long mp_ioctl_uffdio_writeprotect;
extern const unsigned long mp_ioctl_uffdio_wake;

// MARK: userfaultfd (plain types only; the structs stay in kernel_abi.c)

/// The features this kernel's userfaultfd offers (a UFFDIO_API handshake on a throw-away
/// descriptor), or -1 with errno set.
int64_t mp_uffd_supported_features(void);

/// A userfaultfd (O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY) after the UFFDIO_API handshake
/// asking for `features`; -1 with errno set (EINVAL: a feature is refused).
int mp_uffd_open(uint64_t features);

/// UFFDIO_REGISTER of [start, start+len) in `mode` (MP_UFFDIO_REGISTER_MODE_*); 0 or -1/errno.
int mp_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode);
int mp_uffd_unregister(int fd, uint64_t start, uint64_t len);

/// UFFDIO_WRITEPROTECT: protect (1) or un-protect and wake (0) [start, start+len); 0 or -1/errno.
int mp_uffd_writeprotect(int fd, uint64_t start, uint64_t len, int protect);

/// UFFDIO_COPY of `len` bytes from `src` to [dst, dst+len) (missing pages only), waking the
/// threads that fault there. Returns the bytes copied (short when the kernel stopped early, e.g.
/// at a page that is already present), or -1/errno (EEXIST: the first page is present).
int64_t mp_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len);
/// UFFDIO_ZEROPAGE of [dst, dst+len): like mp_uffd_copy with zeros.
int64_t mp_uffd_zeropage(int fd, uint64_t dst, uint64_t len);

/// Reads one message: 1 for a page fault (its address and UFFD_PAGEFAULT_FLAG_* flags), 0 for
/// another event, -1 with errno set (EAGAIN: none waiting).
int mp_uffd_read_fault(int fd, uint64_t *address, uint64_t *flags);

#define MP_UFFDIO_REGISTER_MODE_MISSING (1ULL << 0)
#define MP_UFFDIO_REGISTER_MODE_WP (1ULL << 1)
#define MP_UFFD_PAGEFAULT_FLAG_WP (1ULL << 1)

// MARK: reading another process's memory

/// One buffer, laid out like struct iovec (which Swift cannot see without _GNU_SOURCE).
struct mp_iovec {
    void *base;
    size_t length;
};

/// process_vm_readv(2); returns bytes copied or -1 with errno set.
long mp_process_vm_readv(int pid, const struct mp_iovec *local, unsigned long local_count,
                         const struct mp_iovec *remote, unsigned long remote_count);

/// MADV_DONTNEED of `count` ranges of this process's memory through process_madvise(2), in
/// batches of up to 1,024 ranges (UIO_MAXIOV): the kernel flushes the TLB once a batch rather
/// than once a range, which matters when another thread of the process runs on another CPU
/// (every flush is then an IPI). Linux 6.13+ lets a process so advise itself. Returns the bytes
/// advised (less than asked when a batch stopped early), or -1 with errno set.
long mp_discard_ranges(const struct mp_iovec *ranges, unsigned long count);

/// UFFDIO_MOVE (Linux 6.8+) of each range in turn to the next bytes from `to`, a region
/// registered with the same userfaultfd `fd` and as large as the ranges together: the ranges'
/// pages leave (the ranges then read as missing) without being freed, which is the cost a
/// discard pays; holes are allowed. Returns the bytes of the ranges dealt with, in order:
/// their total, or fewer with errno set when a move failed there (the caller discards the rest).
long mp_uffd_move_ranges(int fd, const struct mp_iovec *ranges, unsigned long count, uint64_t to);

// MARK: time

/// CLOCK_MONOTONIC in nanoseconds (the clock the engine's condition variables wait on).
uint64_t mp_monotonic_ns(void);
/// Sleeps `ns` nanoseconds, resuming after a signal.
void mp_sleep_ns(uint64_t ns);

// MARK: memory

/// Keeps freed memory in the process for later allocations: large blocks from the heap rather
/// than fresh mappings, and no trimming of the heaps (see `Sys.keepFreedMemory()`).
void mp_keep_freed_memory(void);

/// Asks the CPU to fetch the cache line at `address` ahead of a read (a hint, never a fault):
/// for walks that touch one line a page, which the hardware prefetcher does not follow across
/// pages.
static inline void mp_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

// MARK: processes

/// Starts `argv[0]` (looked up in PATH when `search_path`; `argv` ends with NULL) with an empty
/// signal mask and every signal at its default; its stdin and stdout become `stdin_fd` and
/// `stdout_fd` when they are ≥ 0. Returns 0 with the child's pid, or an errno.
int mp_spawn(char *const argv[], int search_path, int stdin_fd, int stdout_fd, int *pid);

// MARK: checksums

/// CRC32C (Castagnoli) of `len` bytes, continuing from `crc` (0 to start). Uses the SSE4.2
/// instruction where the CPU has it, a table otherwise; both give the same value.
uint32_t mp_crc32c(uint32_t crc, const void *data, size_t len);

/// Copies `len` bytes from `src` to `dst` (which must not overlap) and returns `crc` continued
/// over them, as `mp_crc32c(crc, dst, len)` after a `memcpy` would, in one pass: the CRC is of
/// the bytes written to `dst`, even if `src` changes during the copy.
uint32_t mp_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);

/// A 64-bit content fingerprint of each of `count` pages of `page_size` bytes (a multiple of
/// 64): four interleaved CRC32C lanes, so that it runs at memory speed. Not a CRC of the page;
/// only equal content gives equal fingerprints (with the usual 2^-64 odds). A page of zeros
/// has fingerprint 0, so "never seen" and "zero" compare alike.
void mp_page_fingerprints(const void *pages, size_t count, size_t page_size, uint64_t *out);

// MARK: io_uring (opaque ring; liburing stays inside uring.c)

typedef struct mp_ring mp_ring;

/// A new ring with `entries` submission slots, or NULL with -errno in *error.
mp_ring *mp_ring_create(unsigned entries, unsigned flags, int *error);
void mp_ring_destroy(mp_ring *ring);

/// Queue a read/write/send/recv; returns 0, or -EBUSY when the submission queue is full.
int mp_ring_prep_read(mp_ring *ring, int fd, void *buf, unsigned len, uint64_t offset, uint64_t user_data);
int mp_ring_prep_write(mp_ring *ring, int fd, const void *buf, unsigned len, uint64_t offset, uint64_t user_data);
int mp_ring_prep_send(mp_ring *ring, int fd, const void *buf, size_t len, int flags, uint64_t user_data);
int mp_ring_prep_recv(mp_ring *ring, int fd, void *buf, size_t len, int flags, uint64_t user_data);

/// Submit what is queued and wait for at least `wait_for` completions; returns the number
/// submitted or -errno.
int mp_ring_submit_and_wait(mp_ring *ring, unsigned wait_for);

/// Make the SQE prepared last run before the next one (IOSQE_IO_LINK): a linked chain runs in
/// order, and a failure or short result cancels the rest of it (-ECANCELED).
void mp_ring_link_last(mp_ring *ring);

/// A timeout for the SQE prepared just before (which must be linked with mp_ring_link_last):
/// that operation is cancelled (-ECANCELED) if it has not completed after `nanoseconds`.
int mp_ring_prep_link_timeout(mp_ring *ring, uint64_t nanoseconds, uint64_t user_data);

/// Take one completion if there is one: 1 with its user data and result, 0 if none, or -errno.
int mp_ring_next_completion(mp_ring *ring, uint64_t *user_data, int32_t *result);

#ifdef __cplusplus
}
#endif
#endif
