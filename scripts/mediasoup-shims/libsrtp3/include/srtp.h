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

#define srtp_policy_t rtccdn_srtp3_policy_t
#define srtp_policy_create rtccdn_srtp3_policy_create
#define srtp_policy_destroy rtccdn_srtp3_policy_destroy
#define srtp_policy_set_ssrc rtccdn_srtp3_policy_set_ssrc
#define srtp_policy_set_profile rtccdn_srtp3_policy_set_profile
#define srtp_policy_add_key rtccdn_srtp3_policy_add_key
#define srtp_policy_set_window_size rtccdn_srtp3_policy_set_window_size
#define srtp_policy_set_allow_repeat_tx rtccdn_srtp3_policy_set_allow_repeat_tx
#define srtp_create rtccdn_srtp3_create

#endif /* RTCCDN_SRTP3_SHIM_SRTP_H */
