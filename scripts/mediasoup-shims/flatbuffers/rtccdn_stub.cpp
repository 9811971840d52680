/* rtccdn: the flatbuffers shim's stand-in static library needs one source file;
 * it defines no symbols. */
typedef int rtccdn_flatbuffers_shim_stub_t;
