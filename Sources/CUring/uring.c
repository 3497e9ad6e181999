// The only file that includes liburing.h: the ring stays opaque to Swift.
#include <errno.h>
#include <stdlib.h>
#include <liburing.h>
#include "CUring.h"

struct mp_ring {
    struct io_uring ring;
    struct io_uring_sqe *last;       // the SQE prepared last, for mp_ring_link_last
    struct __kernel_timespec timeout; // read by the kernel at submission
};

mp_ring *mp_ring_create(unsigned entries, unsigned flags, int *error) {
    mp_ring *r = calloc(1, sizeof *r);
    if (!r) {
        *error = -ENOMEM;
        return NULL;
    }
    int rc = io_uring_queue_init(entries, &r->ring, flags);
    if (rc < 0) {
        free(r);
        *error = rc;
        return NULL;
    }
    *error = 0;
    return r;
}

void mp_ring_destroy(mp_ring *r) {
    if (!r) return;
    io_uring_queue_exit(&r->ring);
    free(r);
}


int mp_ring_prep_read(mp_ring *r, int fd, void *buf, unsigned len, uint64_t offset, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_read(sqe, fd, buf, len, offset);
    io_uring_sqe_set_data64(sqe, user_data);
    r->last = sqe;
    return 0;
}

int mp_ring_prep_write(mp_ring *r, int fd, const void *buf, unsigned len, uint64_t offset, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_write(sqe, fd, buf, len, offset);
    io_uring_sqe_set_data64(sqe, user_data);
    r->last = sqe;
    return 0;
}

int mp_ring_prep_send(mp_ring *r, int fd, const void *buf, size_t len, int flags, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_send(sqe, fd, buf, len, flags);
    io_uring_sqe_set_data64(sqe, user_data);
    r->last = sqe;
    return 0;
}

int mp_ring_prep_recv(mp_ring *r, int fd, void *buf, size_t len, int flags, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_recv(sqe, fd, buf, len, flags);
    io_uring_sqe_set_data64(sqe, user_data);
    r->last = sqe;
    return 0;
}

int mp_ring_submit_and_wait(mp_ring *r, unsigned wait_for) {
    return io_uring_submit_and_wait(&r->ring, wait_for);
}

int mp_ring_next_completion(mp_ring *r, uint64_t *user_data, int32_t *result) {
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_peek_cqe(&r->ring, &cqe);
    if (rc == -EAGAIN) return 0;
    if (rc < 0) return rc;
    *user_data = io_uring_cqe_get_data64(cqe);
    *result = cqe->res;
    io_uring_cqe_seen(&r->ring, cqe);
    return 1;
}

void mp_ring_link_last(mp_ring *r) {
    if (r->last) r->last->flags |= IOSQE_IO_LINK;
}

int mp_ring_prep_link_timeout(mp_ring *r, uint64_t nanoseconds, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    r->timeout.tv_sec = (long long)(nanoseconds / 1000000000ULL);
    r->timeout.tv_nsec = (long long)(nanoseconds % 1000000000ULL);
    io_uring_prep_link_timeout(sqe, &r->timeout, 0);
    io_uring_sqe_set_data64(sqe, user_data);
    r->last = sqe;
    return 0;
}
