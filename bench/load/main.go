// Command rtcload is rtccdn's load generator: cheap WHEP viewers that count RTP without
// decoding, and a constant-bitrate WHIP publisher of pre-encoded frames. Built and cached by
// bench/load/build.sh; driven by the benchmarks in bench/. Loopback only.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rtcload viewers|publish [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "viewers":
		err = runViewers(os.Args[2:])
	case "publish":
		err = runPublish(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtcload:", err)
		os.Exit(1)
	}
}
