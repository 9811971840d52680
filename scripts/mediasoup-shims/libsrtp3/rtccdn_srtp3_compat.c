/*
 * rtccdn: libsrtp 3 style adapters over libsrtp 2 (see
 * include/rtccdn_srtp3_compat.h). Deliberately includes <srtp2/srtp.h> and
 * not the shim <srtp.h>, so the calls below reach the real libsrtp 2 API.
 * No global state: safe with several workers in one process.
 */
/* explicit_bzero() */
#define _DEFAULT_SOURCE

#include "rtccdn_srtp3_compat.h"

#include <limits.h>
#include <stdlib.h>
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

/*
 * The opaque policy: a libsrtp 2 policy (its |key| points into |key_material|)
 * plus the lengths needed to check the key against the profile at creation.
 */
struct rtccdn_srtp3_policy_ctx {
  srtp_policy_t policy;
  int profile_set;
  size_t key_len; /* master key + master salt; 0 until srtp_policy_add_key() */
  uint8_t key_material[SRTP_MAX_KEY_LEN];
};

srtp_err_status_t rtccdn_srtp3_policy_create(rtccdn_srtp3_policy_t *policy)
{
  rtccdn_srtp3_policy_t ctx;

  if (policy == NULL) {
    return srtp_err_status_bad_param;
  }
  ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL) {
    return srtp_err_status_alloc_fail;
  }
  ctx->policy.key = ctx->key_material;
  ctx->policy.next = NULL;
  *policy = ctx;

  return srtp_err_status_ok;
}

void rtccdn_srtp3_policy_destroy(rtccdn_srtp3_policy_t policy)
{
  if (policy == NULL) {
    return;
  }
  /* The key material must not outlive the policy in freed memory. */
  explicit_bzero(policy->key_material, sizeof(policy->key_material));
  free(policy);
}

srtp_err_status_t rtccdn_srtp3_policy_set_ssrc(rtccdn_srtp3_policy_t policy,
                                               srtp_ssrc_t ssrc)
{
  if (policy == NULL) {
    return srtp_err_status_bad_param;
  }
  policy->policy.ssrc = ssrc;

  return srtp_err_status_ok;
}

/*
 * The crypto policies of each profile, as RFC 5764 / RFC 7714 define them (and
 * as mediasoup set them itself before it moved to the libsrtp 3 policy API):
 * AES_CM_128_HMAC_SHA1_32 authenticates RTCP with an 80 bit tag.
 */
srtp_err_status_t rtccdn_srtp3_policy_set_profile(rtccdn_srtp3_policy_t policy,
                                                  srtp_profile_t profile)
{
  srtp_crypto_policy_t *rtp;
  srtp_crypto_policy_t *rtcp;

  if (policy == NULL) {
    return srtp_err_status_bad_param;
  }
  rtp = &policy->policy.rtp;
  rtcp = &policy->policy.rtcp;

  switch (profile) {
    case srtp_profile_aes128_cm_sha1_80:
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(rtcp);
      break;
    case srtp_profile_aes128_cm_sha1_32:
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(rtcp);
      break;
    case srtp_profile_aead_aes_128_gcm:
      srtp_crypto_policy_set_aes_gcm_128_16_auth(rtp);
      srtp_crypto_policy_set_aes_gcm_128_16_auth(rtcp);
      break;
    case srtp_profile_aead_aes_256_gcm:
      srtp_crypto_policy_set_aes_gcm_256_16_auth(rtp);
      srtp_crypto_policy_set_aes_gcm_256_16_auth(rtcp);
      break;
    default:
      return srtp_err_status_bad_param;
  }
  policy->profile_set = 1;

  return srtp_err_status_ok;
}

srtp_err_status_t rtccdn_srtp3_policy_add_key(rtccdn_srtp3_policy_t policy,
                                              const uint8_t *key,
                                              size_t key_len,
                                              const uint8_t *salt,
                                              size_t salt_len,
                                              const uint8_t *mki,
                                              size_t mki_len)
{
  (void)mki;

  if (policy == NULL || key == NULL || (salt == NULL && salt_len > 0)) {
    return srtp_err_status_bad_param;
  }
  /* libsrtp 2 takes key and salt as one buffer; several keys need MKIs. */
  if (policy->key_len != 0 || mki_len != 0) {
    return srtp_err_status_bad_param;
  }
  if (key_len == 0 || key_len > sizeof(policy->key_material) ||
      salt_len > sizeof(policy->key_material) - key_len) {
    return srtp_err_status_bad_param;
  }
  memcpy(policy->key_material, key, key_len);
  if (salt_len > 0) {
    memcpy(policy->key_material + key_len, salt, salt_len);
  }
  policy->key_len = key_len + salt_len;

  return srtp_err_status_ok;
}

srtp_err_status_t rtccdn_srtp3_policy_set_window_size(rtccdn_srtp3_policy_t policy,
                                                      size_t window_size)
{
  /* libsrtp 2 accepts 64 .. 0x7fff (checked again by srtp_create()). */
  if (policy == NULL || window_size > 0x7fff) {
    return srtp_err_status_bad_param;
  }
  policy->policy.window_size = (unsigned long)window_size;

  return srtp_err_status_ok;
}

srtp_err_status_t rtccdn_srtp3_policy_set_allow_repeat_tx(rtccdn_srtp3_policy_t policy,
                                                          bool allow)
{
  if (policy == NULL) {
    return srtp_err_status_bad_param;
  }
  policy->policy.allow_repeat_tx = allow ? 1 : 0;

  return srtp_err_status_ok;
}

srtp_err_status_t rtccdn_srtp3_create(srtp_t *session,
                                      const rtccdn_srtp3_policy_t policy)
{
  if (session == NULL || policy == NULL || !policy->profile_set) {
    return srtp_err_status_bad_param;
  }
  /* The key must be exactly what both crypto policies of the profile use. */
  if (policy->key_len == 0 ||
      policy->key_len != (size_t)policy->policy.rtp.cipher_key_len ||
      policy->key_len != (size_t)policy->policy.rtcp.cipher_key_len) {
    return srtp_err_status_bad_param;
  }

  /* libsrtp 2 copies what it needs from the policy (keys are expanded). */
  return srtp_create(session, &policy->policy);
}
