/*
 * rtccdn: libsrtp 3 style adapters over libsrtp 2 (see
 * include/rtccdn_srtp3_compat.h). Deliberately includes <srtp2/srtp.h> and
 * not the shim <srtp.h>, so the calls below reach the real libsrtp 2 API.
 * No global state: safe with several workers in one process.
 */
#include "rtccdn_srtp3_compat.h"

#include <limits.h>
#include <string.h>

/* SRTCP appends the 4 byte E flag + SRTCP index on top of the auth trailer. */
#define RTCCDN_SRTCP_INDEX_LEN 4

typedef enum {
  RTCCDN_OP_PROTECT,
  RTCCDN_OP_UNPROTECT,
  RTCCDN_OP_PROTECT_RTCP,
  RTCCDN_OP_UNPROTECT_RTCP
} rtccdn_srtp_op;

/*
 * Copies |in| to |out| (unless they are the same buffer), checks that |out|
 * can hold the result and runs the in-place libsrtp 2 operation on |out|.
 */
static srtp_err_status_t rtccdn_run(rtccdn_srtp_op op,
                                    srtp_t ctx,
                                    const uint8_t *in,
                                    size_t in_len,
                                    uint8_t *out,
                                    size_t *out_len,
                                    size_t mki_index)
{
  size_t growth;
  int len;
  srtp_err_status_t status;

  if (ctx == NULL || in == NULL || out == NULL || out_len == NULL) {
    return srtp_err_status_bad_param;
  }
  if (mki_index > UINT_MAX) {
    return srtp_err_status_bad_mki;
  }

  switch (op) {
    case RTCCDN_OP_PROTECT:
      growth = SRTP_MAX_TRAILER_LEN;
      break;
    case RTCCDN_OP_PROTECT_RTCP:
      growth = SRTP_MAX_TRAILER_LEN + RTCCDN_SRTCP_INDEX_LEN;
      break;
    default:
      /* Unprotecting only ever shrinks the packet. */
      growth = 0;
      break;
  }

  if (in_len > (size_t)INT_MAX - growth) {
    return srtp_err_status_bad_param;
  }
  if (*out_len < in_len + growth) {
    return RTCCDN_SRTP_ERR_BUFFER_SMALL;
  }
  if (out != in) {
    memmove(out, in, in_len);
  }

  len = (int)in_len;

  switch (op) {
    case RTCCDN_OP_PROTECT:
      /* libsrtp 2: srtp_protect() == srtp_protect_mki(..., use_mki = 0, 0). */
      status = mki_index == 0
                   ? srtp_protect(ctx, out, &len)
                   : srtp_protect_mki(ctx, out, &len, 1, (unsigned int)mki_index);
      break;
    case RTCCDN_OP_UNPROTECT:
      status = srtp_unprotect(ctx, out, &len);
      break;
    case RTCCDN_OP_PROTECT_RTCP:
      status = mki_index == 0
                   ? srtp_protect_rtcp(ctx, out, &len)
                   : srtp_protect_rtcp_mki(ctx, out, &len, 1, (unsigned int)mki_index);
      break;
    case RTCCDN_OP_UNPROTECT_RTCP:
      status = srtp_unprotect_rtcp(ctx, out, &len);
      break;
    default:
      return srtp_err_status_bad_param;
  }

  if (status != srtp_err_status_ok) {
    return status;
  }
  if (len < 0) {
    return srtp_err_status_fail;
  }

  *out_len = (size_t)len;

  return srtp_err_status_ok;
}

srtp_err_status_t rtccdn_srtp3_protect(srtp_t ctx,
                                       const uint8_t *rtp,
                                       size_t rtp_len,
                                       uint8_t *srtp,
                                       size_t *srtp_len,
                                       size_t mki_index)
{
  return rtccdn_run(RTCCDN_OP_PROTECT, ctx, rtp, rtp_len, srtp, srtp_len, mki_index);
}

srtp_err_status_t rtccdn_srtp3_unprotect(srtp_t ctx,
                                         const uint8_t *srtp,
                                         size_t srtp_len,
                                         uint8_t *rtp,
                                         size_t *rtp_len)
{
  return rtccdn_run(RTCCDN_OP_UNPROTECT, ctx, srtp, srtp_len, rtp, rtp_len, 0);
}

srtp_err_status_t rtccdn_srtp3_protect_rtcp(srtp_t ctx,
                                            const uint8_t *rtcp,
                                            size_t rtcp_len,
                                            uint8_t *srtcp,
                                            size_t *srtcp_len,
                                            size_t mki_index)
{
  return rtccdn_run(RTCCDN_OP_PROTECT_RTCP, ctx, rtcp, rtcp_len, srtcp, srtcp_len, mki_index);
}

srtp_err_status_t rtccdn_srtp3_unprotect_rtcp(srtp_t ctx,
                                              const uint8_t *srtcp,
                                              size_t srtcp_len,
                                              uint8_t *rtcp,
                                              size_t *rtcp_len)
{
  return rtccdn_run(RTCCDN_OP_UNPROTECT_RTCP, ctx, srtcp, srtcp_len, rtcp, rtcp_len, 0);
}

srtp_err_status_t rtccdn_srtp3_stream_remove(srtp_t session, uint32_t ssrc)
{
  return srtp_remove_stream(session, (unsigned int)ssrc);
}
