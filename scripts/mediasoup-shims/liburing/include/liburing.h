/*
 * rtccdn: wraps the system <liburing.h> and supplies helpers that appeared in
 * liburing 2.4, which mediasoup uses but Debian bookworm's liburing 2.3 lacks.
 * liburing >= 2.4 defines IO_URING_VERSION_MAJOR, in which case nothing is
 * added.
 */
#ifndef RTCCDN_LIBURING_SHIM_H
#define RTCCDN_LIBURING_SHIM_H

#include_next <liburing.h>

#ifndef IO_URING_VERSION_MAJOR

#ifndef RTCCDN_LIBURING_SYS_MAJOR
#define RTCCDN_LIBURING_SYS_MAJOR 2
#endif
#ifndef RTCCDN_LIBURING_SYS_MINOR
#define RTCCDN_LIBURING_SYS_MINOR 3
#endif

#ifdef __cplusplus
extern "C" {
#endif

static inline int io_uring_major_version(void)
{
  return RTCCDN_LIBURING_SYS_MAJOR;
}

static inline int io_uring_minor_version(void)
{
  return RTCCDN_LIBURING_SYS_MINOR;
}

/* IORING_OP_SEND with a destination address (kernel >= 6.0). */
static inline void io_uring_prep_sendto(struct io_uring_sqe *sqe,
                                        int sockfd,
                                        const void *buf,
                                        size_t len,
                                        int flags,
                                        const struct sockaddr *addr,
                                        socklen_t addrlen)
{
  io_uring_prep_send(sqe, sockfd, buf, len, flags);
  io_uring_prep_send_set_addr(sqe, addr, (__u16)addrlen);
}

#ifdef __cplusplus
}
#endif

#endif /* !IO_URING_VERSION_MAJOR */

#endif /* RTCCDN_LIBURING_SHIM_H */
