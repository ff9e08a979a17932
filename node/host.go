package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// defaultDialTimeout bounds one bootstrap dial when the caller's context has
// no earlier deadline.
const defaultDialTimeout = 15 * time.Second

// ErrNoBootstrapPeer reports that none of the configured bootstrap peers
// could be reached.
var ErrNoBootstrapPeer = errors.New("no bootstrap peer reachable")

// hostConfig is what the libp2p host needs from the node configuration.
type hostConfig struct {
	// Key is the node's long-term identity (see loadOrCreateIdentity).
	Key crypto.PrivKey
	// ListenAddrs are the multiaddrs to listen on, e.g.
	// /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1. Only TCP and
	// QUIC v1 are supported. With none, the host only dials out.
	ListenAddrs []ma.Multiaddr
}

// newHost builds the node's libp2p host: TCP and QUIC v1 transports, Noise and
// TLS 1.3 channel security, yamux on TCP, the resource manager with libp2p's
// auto-scaled default limits, and the default connection manager.
//
// Nothing here finds peers on its own: there is no mDNS, no public bootstrap
// list, no relay, no NAT port mapping and no metrics registration. Peers come
// only from the user's bootstrap list (connectBootstrapPeers) and from the
// DHT and GossipSub built on top of this host.
func newHost(cfg hostConfig) (host.Host, error) {
	if cfg.Key == nil {
		return nil, errors.New("host: no identity key")
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("host: resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrs(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(mgr),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		// libp2p.New closes what it built on failure, but the resource
		// manager was built by us.
		mgr.Close()
		return nil, fmt.Errorf("host: %w", err)
	}
	return h, nil
}

// parseBootstrapPeers turns user-supplied multiaddrs that end in /p2p/<peer
// ID> into address infos, merging addresses of the same peer.
func parseBootstrapPeers(addrs []string) ([]peer.AddrInfo, error) {
	mas := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap peer %q: %w", s, err)
		}
		mas = append(mas, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap peers: %w", err)
	}
	return infos, nil
}

// connectBootstrapPeers dials every peer in peers concurrently, each bounded
// by defaultDialTimeout (or ctx, if sooner). It returns how many connected and
// fails with ErrNoBootstrapPeer, joined with each dial error, only if peers
// is non-empty and none connected. The host's own ID is skipped.
func connectBootstrapPeers(ctx context.Context, h host.Host, peers []peer.AddrInfo) (int, error) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		connected int
		errs      []error
	)
	for _, info := range peers {
		if info.ID == h.ID() {
			continue
		}
		wg.Go(func() {
			dialCtx, cancel := context.WithTimeout(ctx, defaultDialTimeout)
			defer cancel()
			err := h.Connect(dialCtx, info)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("bootstrap peer %s: %w", info.ID, err))
				return
			}
			connected++
		})
	}
	wg.Wait()
	if connected == 0 && len(errs) > 0 {
		return 0, errors.Join(append([]error{ErrNoBootstrapPeer}, errs...)...)
	}
	return connected, nil
}
