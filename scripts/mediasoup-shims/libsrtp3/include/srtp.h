/*
 * rtccdn: stands in for libsrtp 3's <srtp.h> when building the mediasoup
 * worker against Debian's libsrtp 2 (see rtccdn_srtp3_compat.h).
 */
#ifndef RTCCDN_SRTP3_SHIM_SRTP_H
#define RTCCDN_SRTP3_SHIM_SRTP_H

#include <srtp2/srtp.h>
#include "rtccdn_srtp3_compat.h"

#define srtp_err_status_buffer_small RTCCDN_SRTP_ERR_BUFFER_SMALL
#define srtp_err_status_cryptex_err RTCCDN_SRTP_ERR_CRYPTEX

#define srtp_protect rtccdn_srtp3_protect
#define srtp_unprotect rtccdn_srtp3_unprotect
#define srtp_protect_rtcp rtccdn_srtp3_protect_rtcp
#define srtp_unprotect_rtcp rtccdn_srtp3_unprotect_rtcp
#define srtp_stream_remove rtccdn_srtp3_stream_remove

#endif /* RTCCDN_SRTP3_SHIM_SRTP_H */
