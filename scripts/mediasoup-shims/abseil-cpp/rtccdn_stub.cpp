/* rtccdn: the abseil-cpp shim's stand-in static library needs one source file;
 * it defines no symbols. */
typedef int rtccdn_abseil_cpp_shim_stub_t;
