/* rtccdn: the usrsctp shim's stand-in static library needs one source file;
 * it defines no symbols. */
typedef int rtccdn_usrsctp_shim_stub_t;
