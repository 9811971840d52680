/*
 * rtccdn: libsrtp 3 style entry points implemented on top of libsrtp 2.
 *
 * - protect/unprotect: libsrtp 3 works from an input buffer into a separate
 *   output buffer whose capacity is passed in (and the result length passed
 *   back) via a size_t pointer; libsrtp 2 works in place with an int length.
 *   These adapters copy input to output when they differ, check the output
 *   capacity (including the SRTP/SRTCP trailer) and call the libsrtp 2
 *   function.
 * - the opaque policy object: libsrtp 3 builds a session policy through
 *   srtp_policy_create() and setters; libsrtp 2 takes a filled-in struct.
 *   rtccdn_srtp3_policy_t wraps one libsrtp 2 srtp_policy_t (a single master
 *   key, no MKI) plus its own copy of the key material.
 */
#ifndef RTCCDN_SRTP3_COMPAT_H
#define RTCCDN_SRTP3_COMPAT_H

#include <stdbool.h>
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

/* libsrtp 3's opaque session policy. */
typedef struct rtccdn_srtp3_policy_ctx *rtccdn_srtp3_policy_t;

srtp_err_status_t rtccdn_srtp3_policy_create(rtccdn_srtp3_policy_t *policy);

void rtccdn_srtp3_policy_destroy(rtccdn_srtp3_policy_t policy);

srtp_err_status_t rtccdn_srtp3_policy_set_ssrc(rtccdn_srtp3_policy_t policy,
                                               srtp_ssrc_t ssrc);

/* Sets the RTP and RTCP crypto policies of an SRTP protection profile. */
srtp_err_status_t rtccdn_srtp3_policy_set_profile(rtccdn_srtp3_policy_t policy,
                                                  srtp_profile_t profile);

/* One master key and salt; an MKI (mki_len > 0) or a second key is not supported. */
srtp_err_status_t rtccdn_srtp3_policy_add_key(rtccdn_srtp3_policy_t policy,
                                              const uint8_t *key,
                                              size_t key_len,
                                              const uint8_t *salt,
                                              size_t salt_len,
                                              const uint8_t *mki,
                                              size_t mki_len);

srtp_err_status_t rtccdn_srtp3_policy_set_window_size(rtccdn_srtp3_policy_t policy,
                                                      size_t window_size);

srtp_err_status_t rtccdn_srtp3_policy_set_allow_repeat_tx(rtccdn_srtp3_policy_t policy,
                                                          bool allow);

/* srtp_create() from a policy object; the policy can be destroyed afterwards. */
srtp_err_status_t rtccdn_srtp3_create(srtp_t *session,
                                      const rtccdn_srtp3_policy_t policy);

#ifdef __cplusplus
}
#endif

#endif /* RTCCDN_SRTP3_COMPAT_H */
