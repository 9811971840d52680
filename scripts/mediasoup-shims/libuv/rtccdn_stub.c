/* rtccdn: the libuv shim's stand-in static library needs one source file;
 * it defines no symbols. */
typedef int rtccdn_libuv_shim_stub_t;
