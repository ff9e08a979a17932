package node

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/dht"
	"github.com/meshchat/meshchat/mls"
)

// bareNode is a Node with only what KeyPackage management needs: a store, an
// MLS identity and a configuration.
func bareNode(t *testing.T, dir string, now func() time.Time) *Node {
	t.Helper()
	st, err := openBoltStore(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &Node{
		cfg:   Config{KeyPackages: 2, CipherSuite: DefaultCipherSuite},
		log:   slog.New(slog.DiscardHandler),
		id:    peer.ID("\x00\x04test"),
		store: st,
		kps:   make(map[string]*ownKeyPackage),
		// closed: no background republication (there is no DHT).
		closed: true,
		mlsCfg: &mls.Config{
			Now:                 now,
			KeyPackageLifetime:  keyPackageLifetime,
			SupportedExtensions: []mls.ExtensionType{groupExtensionType},
		},
	}
	if err := n.loadMLSIdentity(); err != nil {
		t.Fatal(err)
	}
	if err := n.loadKeyPackages(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKeyPackageBundleLifecycle: the bundle is created once and reloaded;
// KeyPackages close to expiry are retired (kept privately, out of the
// bundle) and replaced; a consumed one-time KeyPackage is deleted and
// replaced, the last-resort one is kept.
func TestKeyPackageBundleLifecycle(t *testing.T) {
	dir := t.TempDir()
	clock := time.Now().Add(-25 * 24 * time.Hour) // KeyPackages made 25 days ago
	n := bareNode(t, dir, func() time.Time { return clock })
	if err := n.ensureBundle(); err != nil {
		t.Fatal(err)
	}
	first := n.bundleEntries()
	if len(first) != 3 || !first[2].LastResort {
		t.Fatalf("bundle of %d entries (last resort last: %v)", len(first), first[len(first)-1].LastResort)
	}
	// Reloading from the store gives the same bundle.
	n.store.Close()
	clock = time.Now()
	n = bareNode(t, dir, func() time.Time { return clock })
	if err := n.ensureBundle(); err != nil {
		t.Fatal(err)
	}
	if again := n.bundleEntries(); len(again) != 3 || !sameEntries(first, again) {
		t.Fatal("bundle changed across a reload")
	}
	// 25 days into a 30-day lifetime: all three are retired and replaced.
	n.renewKeyPackages()
	renewed := n.bundleEntries()
	if len(renewed) != 3 {
		t.Fatalf("renewed bundle has %d entries", len(renewed))
	}
	for _, e := range renewed {
		for _, old := range first {
			if bytes.Equal(e.Data, old.Data) {
				t.Fatal("an old KeyPackage is still in the bundle")
			}
		}
	}
	if got := len(n.mailboxRefs()); got != 6 {
		t.Fatalf("%d private KeyPackages held, want 6 (3 retired, 3 new)", got)
	}
	// Consuming a one-time and the last-resort KeyPackage.
	var oneTime, lastResort *ownKeyPackage
	for _, kp := range n.kps {
		switch kp.kind {
		case kpOneTime:
			oneTime = kp
		case kpLastResort:
			lastResort = kp
		}
	}
	n.consumeKeyPackages([]*ownKeyPackage{oneTime, lastResort})
	if _, ok := n.kps[string(oneTime.ref)]; ok {
		t.Fatal("used one-time KeyPackage still held")
	}
	if _, ok := n.kps[string(lastResort.ref)]; !ok {
		t.Fatal("last-resort KeyPackage dropped after use")
	}
	after := n.bundleEntries()
	if len(after) != 3 {
		t.Fatalf("bundle has %d entries after use, want 3", len(after))
	}
	for _, e := range after {
		if bytes.Equal(e.Data, oneTime.priv.KeyPackage().Bytes()) {
			t.Fatal("used KeyPackage still in the bundle")
		}
	}
	var stored int
	_ = n.store.View(func(tx Tx) error {
		return tx.ForEach(bucketKeyPackages, nil, func(_, _ []byte) error { stored++; return nil })
	})
	if stored != len(n.kps) {
		t.Fatalf("%d KeyPackages stored, %d held", stored, len(n.kps))
	}
}

func sameEntries(a, b []dht.KeyPackage) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, e := range a {
		seen[string(e.Data)] = e.LastResort
	}
	for _, e := range b {
		lr, ok := seen[string(e.Data)]
		if !ok || lr != e.LastResort {
			return false
		}
	}
	return true
}
