// Command meshchat runs a meshchat node and talks to it: end-to-end encrypted
// group chat over libp2p, secured with MLS (RFC 9420), with no server.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "meshchat:", err)
		os.Exit(1)
	}
}
