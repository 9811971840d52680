/* rtccdn: the openssl shim's stand-in static library needs one source file;
 * it defines no symbols. */
typedef int rtccdn_openssl_shim_stub_t;
