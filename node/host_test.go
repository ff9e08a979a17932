package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// mocknet (benchmarks only) can leave a stream that GossipSub
		// opened while its host was closing without a reset; the
		// goroutines blocked on it belong to mocknet's in-memory pipes.
		// Tests on real hosts are checked without exception.
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*stream).transport"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*stream).Write"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*stream).Read"),
	)
}

var loopbackListen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func testHost(t *testing.T, listen ...string) host.Host {
	t.Helper()
	key, err := loadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var addrs []ma.Multiaddr
	for _, s := range listen {
		addrs = append(addrs, ma.StringCast(s))
	}
	h, err := newHost(hostConfig{Key: key, ListenAddrs: addrs})
	if err != nil {
		t.Fatalf("newHost: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// p2pAddrs returns h's listen addresses with /p2p/<id>, filtered by a
// substring of the transport ("/tcp/" or "/quic-v1").
func p2pAddrs(t *testing.T, h host.Host, transport string) []string {
	t.Helper()
	var out []string
	for _, a := range h.Addrs() {
		if strings.Contains(a.String(), transport) {
			out = append(out, a.String()+"/p2p/"+h.ID().String())
		}
	}
	if len(out) == 0 {
		t.Fatalf("host has no %s address among %v", transport, h.Addrs())
	}
	return out
}

func TestHostIdentityMatchesKey(t *testing.T) {
	dir := t.TempDir()
	key, err := loadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHost(hostConfig{Key: key, ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want, err := peerIDFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if h.ID() != want {
		t.Fatalf("host ID %s, want %s", h.ID(), want)
	}
	if _, ok := h.Network().ResourceManager().(*network.NullResourceManager); ok {
		t.Fatal("resource manager is off")
	}
	if n := len(h.Network().Peers()); n != 0 {
		t.Fatalf("fresh host is connected to %d peers; it must find none on its own", n)
	}
}

func TestHostConnectsOverTCPAndQUIC(t *testing.T) {
	server := testHost(t, loopbackListen...)
	for _, tc := range []struct {
		transport string
		want      string
	}{{"/tcp/", "tcp"}, {"/quic-v1", "quic-v1"}} {
		t.Run(tc.want, func(t *testing.T) {
			client := testHost(t) // dial-only
			peers, err := parseBootstrapPeers(p2pAddrs(t, server, tc.transport))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n, err := connectBootstrapPeers(ctx, client, peers)
			if err != nil || n != 1 {
				t.Fatalf("connect: n=%d err=%v", n, err)
			}
			conns := client.Network().ConnsToPeer(server.ID())
			if len(conns) == 0 {
				t.Fatal("no connection after successful bootstrap")
			}
			st := conns[0].ConnState()
			if !strings.Contains(conns[0].RemoteMultiaddr().String(), tc.transport) {
				t.Errorf("connection over %s, want %s", conns[0].RemoteMultiaddr(), tc.transport)
			}
			switch tc.want {
			case "tcp":
				if st.Security != noise.ID && st.Security != libp2ptls.ID {
					t.Errorf("TCP security = %q, want noise or tls", st.Security)
				}
			case "quic-v1":
				if st.Transport != "quic-v1" {
					t.Errorf("transport = %q, want quic-v1", st.Transport)
				}
			}
		})
	}
}

func TestBootstrapAllUnreachable(t *testing.T) {
	client := testHost(t)
	// A closed host: its address no longer answers.
	gone := testHost(t, "/ip4/127.0.0.1/tcp/0")
	addrs := p2pAddrs(t, gone, "/tcp/")
	gone.Close()
	peers, err := parseBootstrapPeers(addrs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := connectBootstrapPeers(ctx, client, peers)
	if n != 0 || !errors.Is(err, ErrNoBootstrapPeer) {
		t.Fatalf("n=%d err=%v, want 0 and ErrNoBootstrapPeer", n, err)
	}
}

func TestBootstrapNoneConfigured(t *testing.T) {
	client := testHost(t)
	n, err := connectBootstrapPeers(context.Background(), client, nil)
	if n != 0 || err != nil {
		t.Fatalf("n=%d err=%v, want 0, nil", n, err)
	}
}

func TestParseBootstrapPeers(t *testing.T) {
	id := "12D3KooWGRUVh8FnYbwnURTTxUDvPXZo8TAzw7TtqHNqr9zDXnKD"
	got, err := parseBootstrapPeers([]string{
		"/ip4/127.0.0.1/tcp/4001/p2p/" + id,
		"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + id,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID.String() != id || len(got[0].Addrs) != 2 {
		t.Fatalf("got %v, want one peer with two addresses", got)
	}
	for _, bad := range []string{
		"/ip4/127.0.0.1/tcp/4001", // no peer ID
		"not a multiaddr",
		"/ip4/127.0.0.1/tcp/4001/p2p/notapeerid",
	} {
		if _, err := parseBootstrapPeers([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
