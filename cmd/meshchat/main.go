// Command meshchat runs a meshchat node and talks to it: end-to-end encrypted
// group chat over libp2p, secured with MLS (RFC 9420), with no server.
//
// "meshchat daemon" runs the node in the foreground and serves a control API
// (HTTP and JSON on a Unix socket in the data directory); every other command
// except "demo" is a client of that API. "meshchat demo" runs a whole mesh of
// in-process nodes on 127.0.0.1 and checks that it works.
//
// Control API (all paths under /v1, JSON bodies, errors as {"error": "..."}):
//
//	GET    /v1/id                               peer ID and full multiaddrs
//	GET    /v1/groups                           the node's groups
//	POST   /v1/groups                           create {"name","policy":"open"|"invite"}
//	GET    /v1/groups/{topic}                   one group (epoch, authenticator, members)
//	POST   /v1/groups/{topic}/invites           new invite code {"code"}
//	POST   /v1/join                             join {"code","timeout_ms"}; waits until welcomed
//	POST   /v1/groups/{topic}/messages          send {"text"}
//	GET    /v1/groups/{topic}/messages          history as JSON lines; ?follow=1 then live; ?limit=N
//	GET    /v1/groups/{topic}/members           members in leaf order
//	POST   /v1/groups/{topic}/members           add {"peer_id"} (KeyPackage from the DHT)
//	DELETE /v1/groups/{topic}/members/{peer}    remove
//	POST   /v1/groups/{topic}/rotate            self-update commit (new epoch)
//
// Status codes: 400 malformed input, 404 unknown group, 409 not (or no longer)
// a member / already a member / not a member, 504 not admitted or not done in
// time, 500 anything else. A followed message stream ends with one line
// {"event": "removed"|"lagged"|"shutdown", "topic": ...} when this node is
// removed from the group, falls too far behind, or the daemon stops.
//
// The socket is created with mode 0600 and, on Linux, connections from other
// users are refused after checking SO_PEERCRED.
package main

import (
	"fmt"
	"os"
)

func main() {
	err := newRootCommand().Execute()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshchat:", oneLine(err))
	}
	os.Exit(exitCode(err))
}
