/* rtccdn: the liburing shim's stand-in static library needs one source file;
 * it defines no symbols. */
typedef int rtccdn_liburing_shim_stub_t;
