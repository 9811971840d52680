/*
 * rtccdn: libsrtp 3 style entry points implemented on top of libsrtp 2.
 *
 * libsrtp 3 protects/unprotects from an input buffer into a separate output
 * buffer whose capacity is passed in (and the result length passed back) via
 * a size_t pointer; libsrtp 2 works in place with an int length. These
 * adapters copy input to output when they differ, check the output capacity
 * (including the SRTP/SRTCP trailer) and call the libsrtp 2 function.
 */
#ifndef RTCCDN_SRTP3_COMPAT_H
#define RTCCDN_SRTP3_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <srtp2/srtp.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes added in libsrtp 3 (values as in libsrtp 3's srtp.h). */
#define RTCCDN_SRTP_ERR_BUFFER_SMALL ((srtp_err_status_t)28)
#define RTCCDN_SRTP_ERR_CRYPTEX ((srtp_err_status_t)29)

srtp_err_status_t rtccdn_srtp3_protect(srtp_t ctx,
                                       const uint8_t *rtp,
                                       size_t rtp_len,
                                       uint8_t *srtp,
                                       size_t *srtp_len,
                                       size_t mki_index);

srtp_err_status_t rtccdn_srtp3_unprotect(srtp_t ctx,
                                         const uint8_t *srtp,
                                         size_t srtp_len,
                                         uint8_t *rtp,
                                         size_t *rtp_len);

srtp_err_status_t rtccdn_srtp3_protect_rtcp(srtp_t ctx,
                                            const uint8_t *rtcp,
                                            size_t rtcp_len,
                                            uint8_t *srtcp,
                                            size_t *srtcp_len,
                                            size_t mki_index);

srtp_err_status_t rtccdn_srtp3_unprotect_rtcp(srtp_t ctx,
                                              const uint8_t *srtcp,
                                              size_t srtcp_len,
                                              uint8_t *rtcp,
                                              size_t *rtcp_len);

srtp_err_status_t rtccdn_srtp3_stream_remove(srtp_t session, uint32_t ssrc);

#ifdef __cplusplus
}
#endif

#endif /* RTCCDN_SRTP3_COMPAT_H */
