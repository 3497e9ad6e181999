// ioctl request numbers that Swift cannot compute from the _IOWR() macros, and system calls
// that glibc hides behind _GNU_SOURCE.
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/uio.h>
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
