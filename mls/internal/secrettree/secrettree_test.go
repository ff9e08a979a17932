package secrettree

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"golang.org/x/crypto/cryptobyte"
)

func testSuite(t testing.TB) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTree(t testing.TB, n treemath.LeafCount, cfg Config) *Tree {
	t.Helper()
	s := testSuite(t)
	secret := bytes.Repeat([]byte{0x5a}, s.HashSize())
	tr, err := New(s, secret, n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func state(t *testing.T, tr *Tree) []byte {
	t.Helper()
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return len(b) > 0
}

// TestLazyDerivation: a 10,000-leaf tree starts with the root secret only;
// using a leaf derives just its path, keeps one sibling per level (none for
// siblings holding only leaves past 10,000), and deletes and zeroes each
// parent (RFC 9420 §9.2).
func TestLazyDerivation(t *testing.T) {
	tr := newTree(t, 10000, Config{})
	root, _ := treemath.Root(tr.shape)
	if len(tr.nodes) != 1 || tr.nodes[root] == nil || len(tr.leaves) != 0 {
		t.Fatalf("new tree holds %d node secrets and %d leaves", len(tr.nodes), len(tr.leaves))
	}
	rootSecret := tr.nodes[root]
	if err := tr.Consume(0, Application, 0); err != nil {
		t.Fatal(err)
	}
	if !allZero(rootSecret) {
		t.Error("root secret not zeroed after deriving its children")
	}
	if _, ok := tr.nodes[root]; ok {
		t.Error("root secret kept after deriving its children")
	}
	x, _ := treemath.LeafToNode(0)
	cp, _ := treemath.Copath(x, tr.shape)
	if len(tr.nodes) != len(cp) || len(tr.leaves) != 1 {
		t.Errorf("after one leaf: %d node secrets (copath %d), %d leaves", len(tr.nodes), len(cp), len(tr.leaves))
	}
	for _, s := range cp {
		if tr.nodes[s] == nil {
			t.Errorf("copath node %d secret not kept", s)
		}
	}
	// Leaf 9999 shares the root's right child; its right siblings cover
	// only leaves >= 10000 and are not kept.
	if err := tr.Consume(9999, Handshake, 0); err != nil {
		t.Fatal(err)
	}
	for x := range tr.nodes {
		if first, _, _ := treemath.LeafSpan(x, tr.shape); first >= 10000 {
			t.Errorf("kept node %d, which covers only leaves past the group", x)
		}
	}
	if _, err := tr.Peek(10000, Handshake, 0); !errors.Is(err, ErrUnknownLeaf) {
		t.Errorf("leaf 10000 of 10000: %v, want ErrUnknownLeaf", err)
	}
}

// TestShapeIsFullTree: the secret tree of a group with a leaf count that is
// not a power of two has the full tree's shape (RFC 9420 §7.7), so its keys
// equal those of the padded tree.
func TestShapeIsFullTree(t *testing.T) {
	five := newTree(t, 5, Config{})
	eight := newTree(t, 8, Config{})
	for leaf := treemath.LeafIndex(0); leaf < 5; leaf++ {
		a, err1 := five.Peek(leaf, Application, 3)
		b, err2 := eight.Peek(leaf, Application, 3)
		if err1 != nil || err2 != nil || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Nonce, b.Nonce) {
			t.Errorf("leaf %d: 5-leaf and 8-leaf trees disagree (%v, %v)", leaf, err1, err2)
		}
	}
	if _, err := five.Peek(5, Application, 0); !errors.Is(err, ErrUnknownLeaf) {
		t.Errorf("leaf 5 of 5: %v", err)
	}
	big := newTree(t, treemath.MaxLeafCount, Config{})
	if _, err := big.Peek(treemath.LeafIndex(treemath.MaxLeafCount-1), Handshake, 0); err != nil {
		t.Errorf("last leaf of a 2^31-leaf tree: %v", err)
	}
	if _, err := New(testSuite(t), make([]byte, 32), 0, Config{}); err == nil {
		t.Error("empty tree accepted")
	}
	if _, err := New(testSuite(t), make([]byte, 32), treemath.MaxLeafCount+1, Config{}); err == nil {
		t.Error("2^31+1 leaves accepted")
	}
	if _, err := New(testSuite(t), make([]byte, 31), 4, Config{}); err == nil {
		t.Error("31-byte encryption_secret accepted")
	}
}

// TestConsumedKeyIsGone: a consumed key can be neither peeked nor consumed
// again, a skipped key can be used once, and the memory of consumed keys is
// zeroed (RFC 9420 §9.2).
func TestConsumedKeyIsGone(t *testing.T) {
	tr := newTree(t, 4, Config{})
	if err := tr.Consume(1, Application, 5); err != nil {
		t.Fatal(err)
	}
	if tr.Retained() != 5 {
		t.Fatalf("retained %d keys after skipping 5", tr.Retained())
	}
	held := tr.retained[retainedID{1, Application, 2}]
	heldKey := held.key
	k, err := tr.Peek(1, Application, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Consume(1, Application, 2); err != nil {
		t.Fatal(err)
	}
	if !allZero(heldKey) {
		t.Error("consumed retained key not zeroed")
	}
	for _, gen := range []uint32{2, 5} {
		if _, err := tr.Peek(1, Application, gen); !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("Peek of consumed gen %d: %v", gen, err)
		}
		if err := tr.Consume(1, Application, gen); !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("Consume of consumed gen %d: %v", gen, err)
		}
	}
	// The other ratchet of the leaf is independent.
	h, err := tr.Peek(1, Handshake, 2)
	if err != nil || bytes.Equal(h.Key, k.Key) {
		t.Errorf("handshake gen 2: %v, equal to application key: %v", err, bytes.Equal(h.Key, k.Key))
	}
	if tr.Retained() != 4 {
		t.Errorf("retained %d keys, want 4", tr.Retained())
	}
}

// TestErrorsLeaveStateUnchanged: every refused request leaves the encoded
// state identical.
func TestErrorsLeaveStateUnchanged(t *testing.T) {
	tr := newTree(t, 8, Config{MaxForward: 10})
	if err := tr.Consume(3, Application, 4); err != nil {
		t.Fatal(err)
	}
	before := state(t, tr)
	for name, c := range map[string]struct {
		err  error
		want error
	}{
		"too far":       {tr.Consume(3, Application, 16), ErrGenerationTooFar},
		"too far peek":  {peekErr(tr.Peek(3, Application, 100)), ErrGenerationTooFar},
		"too far fresh": {tr.Consume(6, Handshake, 11), ErrGenerationTooFar},
		"consumed":      {tr.Consume(3, Application, 4), ErrKeyConsumed},
		"unknown leaf":  {tr.Consume(8, Application, 0), ErrUnknownLeaf},
		"bad ratchet":   {tr.Consume(3, RatchetType(2), 0), ErrUnknownRatchet},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", name, c.err, c.want)
		}
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Error("a refused request changed the tree")
	}
	// Exactly MaxForward ahead is allowed.
	if err := tr.Consume(3, Application, 15); err != nil {
		t.Errorf("generation MaxForward ahead: %v", err)
	}
	if err := tr.Consume(6, Handshake, 10); err != nil {
		t.Errorf("fresh leaf at MaxForward: %v", err)
	}
}

// opaque encodes b as opaque<V> (RFC 9420 §2.1.2).
func opaque(b []byte) []byte {
	return codec.MustMarshal(func(bb *cryptobyte.Builder) { codec.AddOpaque(bb, b) })
}

func peekErr(_ KeyNonce, err error) error { return err }

// TestFailedOpenLeavesRatchet: when the AEAD fails, Open changes nothing
// (not even the lazy path derivation), returns the AEAD's error, and the
// same generation still opens afterwards.
func TestFailedOpenLeavesRatchet(t *testing.T) {
	tr := newTree(t, 16, Config{})
	before := state(t, tr)
	aeadErr := errors.New("message authentication failed")
	var seen []byte
	err := tr.Open(9, Application, 7, func(k KeyNonce) error {
		seen = append([]byte(nil), k.Key...)
		return aeadErr
	})
	if !errors.Is(err, aeadErr) {
		t.Fatalf("Open returned %v, want the AEAD error", err)
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Fatal("failed Open changed the tree")
	}
	var kept KeyNonce
	err = tr.Open(9, Application, 7, func(k KeyNonce) error {
		kept = k
		if !bytes.Equal(k.Key, seen) {
			t.Error("second Open derived another key")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(kept.Key) || !allZero(kept.Nonce) {
		t.Error("Open did not zero the key after use")
	}
	if tr.Retained() != 7 {
		t.Errorf("retained %d after opening gen 7, want 7", tr.Retained())
	}
	if err := tr.Open(9, Application, 7, func(KeyNonce) error { return nil }); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("reopening gen 7: %v", err)
	}
	// A failed Open of a retained key keeps it.
	if err := tr.Open(9, Application, 3, func(KeyNonce) error { return aeadErr }); !errors.Is(err, aeadErr) {
		t.Fatal(err)
	}
	if _, err := tr.Peek(9, Application, 3); err != nil {
		t.Errorf("retained key lost after a failed Open: %v", err)
	}
}

// TestRetentionBounds: the per-ratchet bound keeps the newest skipped keys
// of a ratchet, the total bound drops the tree's oldest, and negative bounds
// keep nothing.
func TestRetentionBounds(t *testing.T) {
	tr := newTree(t, 4, Config{MaxRetainedPerRatchet: 5, MaxRetainedTotal: 8})
	if err := tr.Consume(0, Application, 10); err != nil {
		t.Fatal(err)
	}
	for gen := uint32(0); gen < 10; gen++ {
		_, err := tr.Peek(0, Application, gen)
		if kept := gen >= 5; kept != (err == nil) {
			t.Errorf("gen %d: %v (kept %v)", gen, err, kept)
		}
		if err != nil && !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("gen %d: %v, want ErrKeyConsumed", gen, err)
		}
	}
	// Another ratchet retains 4 more: 9 > 8 drops the oldest overall,
	// which is generation 5 of the first ratchet.
	if err := tr.Consume(1, Handshake, 4); err != nil {
		t.Fatal(err)
	}
	if tr.Retained() != 8 {
		t.Errorf("retained %d, want 8", tr.Retained())
	}
	if _, err := tr.Peek(0, Application, 5); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("oldest key survived the total bound: %v", err)
	}
	if _, err := tr.Peek(0, Application, 6); err != nil {
		t.Errorf("second-oldest key dropped: %v", err)
	}
	// Consuming a retained key out of the middle keeps both lists intact.
	if err := tr.Consume(0, Application, 7); err != nil {
		t.Fatal(err)
	}
	if err := tr.Consume(0, Application, 12); err != nil {
		t.Fatal(err)
	}
	if tr.Retained() != 8 || tr.leaves[0][Application].retained > 5 {
		t.Errorf("retained %d total, %d on the ratchet", tr.Retained(), tr.leaves[0][Application].retained)
	}
	checkLists(t, tr)

	none := newTree(t, 4, Config{MaxRetainedPerRatchet: -1})
	if err := none.Consume(2, Application, 50); err != nil {
		t.Fatal(err)
	}
	if none.Retained() != 0 {
		t.Errorf("retention off kept %d keys", none.Retained())
	}
	if _, err := none.Peek(2, Application, 49); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("retention off: %v", err)
	}
}

// checkLists verifies the two retained-key lists against the index.
func checkLists(t *testing.T, tr *Tree) {
	t.Helper()
	n := 0
	for e := tr.oldest; e != nil; e = e.next {
		if tr.retained[e.id] != e || (e.next != nil && e.next.prev != e) {
			t.Fatal("tree list inconsistent")
		}
		n++
	}
	if n != tr.Retained() || n != len(tr.retained) {
		t.Fatalf("tree list has %d keys, count %d, index %d", n, tr.Retained(), len(tr.retained))
	}
	total := 0
	for _, lr := range tr.leaves {
		for _, r := range lr {
			m := 0
			for e := r.oldest; e != nil; e = e.rNext {
				if e.rNext != nil && (e.rNext.id.gen <= e.id.gen || e.rNext.rPrev != e) {
					t.Fatal("ratchet list inconsistent")
				}
				m++
			}
			if m != r.retained {
				t.Fatalf("ratchet list has %d keys, count %d", m, r.retained)
			}
			total += m
		}
	}
	if total != n {
		t.Fatalf("ratchet lists hold %d keys, tree %d", total, n)
	}
}

// TestNextSendKey: sending takes generations in order and consumes them.
func TestNextSendKey(t *testing.T) {
	tr := newTree(t, 2, Config{})
	ref := newTree(t, 2, Config{})
	for gen := uint32(0); gen < 3; gen++ {
		k, err := tr.NextSendKey(1, Handshake)
		if err != nil || k.Generation != gen {
			t.Fatalf("send %d: generation %d, %v", gen, k.Generation, err)
		}
		want, _ := ref.Peek(1, Handshake, gen)
		if !bytes.Equal(k.Key, want.Key) || !bytes.Equal(k.Nonce, want.Nonce) {
			t.Errorf("send key %d differs from the receiver's", gen)
		}
		if _, err := tr.Peek(1, Handshake, gen); !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("sent key %d still available: %v", gen, err)
		}
	}
	if tr.Retained() != 0 {
		t.Errorf("sending retained %d keys", tr.Retained())
	}
	if _, err := tr.NextSendKey(2, Handshake); !errors.Is(err, ErrUnknownLeaf) {
		t.Errorf("send on leaf 2 of 2: %v", err)
	}
}

// TestRatchetExhaustion: after generation 2^32-1 a ratchet gives no more
// keys, and the state still round-trips.
func TestRatchetExhaustion(t *testing.T) {
	tr := newTree(t, 2, Config{})
	if _, err := tr.NextSendKey(0, Application); err != nil {
		t.Fatal(err)
	}
	tr.leaves[0][Application].next = math.MaxUint32 // as if 2^32-1 messages were sent
	k, err := tr.NextSendKey(0, Application)
	if err != nil || k.Generation != math.MaxUint32 {
		t.Fatalf("last generation: %d, %v", k.Generation, err)
	}
	if _, err := tr.NextSendKey(0, Application); !errors.Is(err, ErrRatchetExhausted) {
		t.Errorf("after the last generation: %v", err)
	}
	if _, err := tr.Peek(0, Application, math.MaxUint32); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("peek of the last generation: %v", err)
	}
	back, err := Unmarshal(state(t, tr), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.NextSendKey(0, Application); !errors.Is(err, ErrRatchetExhausted) {
		t.Errorf("restored exhausted ratchet: %v", err)
	}
}

// TestRetire: Retire zeroes every secret and blocks further use.
func TestRetire(t *testing.T) {
	tr := newTree(t, 8, Config{})
	if err := tr.Consume(5, Application, 3); err != nil {
		t.Fatal(err)
	}
	var held [][]byte
	for _, s := range tr.nodes {
		held = append(held, s)
	}
	for _, lr := range tr.leaves {
		held = append(held, lr[0].secret, lr[1].secret)
	}
	for _, k := range tr.retained {
		held = append(held, k.key, k.nonce)
	}
	tr.Retire()
	for i, h := range held {
		if !allZero(h) {
			t.Errorf("secret %d not zeroed", i)
		}
	}
	if _, err := tr.Peek(5, Application, 0); !errors.Is(err, ErrRetired) {
		t.Errorf("Peek after Retire: %v", err)
	}
	if err := tr.Consume(0, Application, 0); !errors.Is(err, ErrRetired) {
		t.Errorf("Consume after Retire: %v", err)
	}
	if err := tr.Open(0, Application, 0, func(KeyNonce) error { return nil }); !errors.Is(err, ErrRetired) {
		t.Errorf("Open after Retire: %v", err)
	}
	if _, err := tr.NextSendKey(0, Application); !errors.Is(err, ErrRetired) {
		t.Errorf("NextSendKey after Retire: %v", err)
	}
	if _, err := tr.MarshalBinary(); !errors.Is(err, ErrRetired) {
		t.Errorf("MarshalBinary after Retire: %v", err)
	}
}

// TestSenderDataSample: only the first KDF.Nh bytes of the ciphertext are
// sampled, and a shorter ciphertext is sampled whole (RFC 9420 §6.3.2).
func TestSenderDataSample(t *testing.T) {
	s := testSuite(t)
	secret := bytes.Repeat([]byte{1}, s.HashSize())
	ct := bytes.Repeat([]byte{2}, s.HashSize())
	k1, n1, err := SenderDataKeyNonce(s, secret, ct)
	if err != nil {
		t.Fatal(err)
	}
	k2, n2, _ := SenderDataKeyNonce(s, secret, append(append([]byte(nil), ct...), 3, 4, 5))
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Error("bytes past KDF.Nh changed the sender data key")
	}
	k3, _, _ := SenderDataKeyNonce(s, secret, ct[:5])
	k4, _, _ := SenderDataKeyNonce(s, secret, nil)
	if bytes.Equal(k3, k1) || bytes.Equal(k3, k4) || len(k3) != s.AEADKeySize() || len(n1) != s.AEADNonceSize() {
		t.Error("short ciphertexts not sampled whole")
	}
	if _, _, err := SenderDataKeyNonce(s, secret[:4], ct); err == nil {
		t.Error("short sender_data_secret accepted")
	}
}

// TestStateRoundTrip: a persisted and restored tree encodes identically,
// keeps consumed keys consumed and retained keys available, and derives the
// same keys as the original from then on.
func TestStateRoundTrip(t *testing.T) {
	tr := newTree(t, 100, Config{})
	steps := []struct {
		leaf treemath.LeafIndex
		typ  RatchetType
		gen  uint32
	}{{3, Application, 0}, {3, Application, 9}, {3, Application, 4}, {70, Handshake, 2}, {99, Application, 0}, {0, Handshake, 30}}
	for _, s := range steps {
		if err := tr.Consume(s.leaf, s.typ, s.gen); err != nil {
			t.Fatal(err)
		}
	}
	enc := state(t, tr)
	back, err := Unmarshal(enc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, state(t, back)) {
		t.Fatal("re-encoding a restored tree differs")
	}
	checkLists(t, back)
	for _, s := range steps {
		if _, err := back.Peek(s.leaf, s.typ, s.gen); !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("consumed %v available after restore: %v", s, err)
		}
	}
	for _, probe := range []struct {
		leaf treemath.LeafIndex
		typ  RatchetType
		gen  uint32
	}{{3, Application, 5}, {3, Application, 10}, {70, Handshake, 0}, {50, Application, 1}, {0, Handshake, 29}} {
		a, err1 := tr.Peek(probe.leaf, probe.typ, probe.gen)
		b, err2 := back.Peek(probe.leaf, probe.typ, probe.gen)
		if err1 != nil || err2 != nil || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Nonce, b.Nonce) {
			t.Errorf("%v: original %v, restored %v, keys equal %v", probe, err1, err2, bytes.Equal(a.Key, b.Key))
		}
	}
	// Restoring under tighter bounds drops the oldest retained keys.
	tight, err := Unmarshal(enc, Config{MaxRetainedTotal: 3})
	if err != nil {
		t.Fatal(err)
	}
	if tight.Retained() != 3 {
		t.Errorf("restored with MaxRetainedTotal 3: %d retained", tight.Retained())
	}
	checkLists(t, tight)
}

// TestStateCorrupt: truncations, trailing bytes and malformed or
// inconsistent states are refused with codec.ErrMalformed; no single-byte
// change panics.
func TestStateCorrupt(t *testing.T) {
	tr := newTree(t, 8, Config{})
	for _, s := range [][3]uint32{{1, 1, 3}, {6, 0, 0}} {
		if err := tr.Consume(treemath.LeafIndex(s[0]), RatchetType(s[1]), s[2]); err != nil {
			t.Fatal(err)
		}
	}
	enc := state(t, tr)
	for n := 0; n < len(enc); n++ {
		if _, err := Unmarshal(enc[:n], Config{}); !errors.Is(err, codec.ErrMalformed) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	if _, err := Unmarshal(append(append([]byte(nil), enc...), 0), Config{}); !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	for i := range enc {
		for _, bit := range []byte{0x01, 0x80} {
			mut := append([]byte(nil), enc...)
			mut[i] ^= bit
			if back, err := Unmarshal(mut, Config{}); err == nil {
				checkLists(t, back) // a flip inside a secret is still a valid state
			}
		}
	}

	s := testSuite(t)
	nh := s.HashSize()
	secret := bytes.Repeat([]byte{7}, nh)
	key, nonce := bytes.Repeat([]byte{8}, s.AEADKeySize()), bytes.Repeat([]byte{9}, s.AEADNonceSize())
	type ratchetEnc struct {
		next   uint64
		secret []byte
	}
	fresh := ratchetEnc{0, secret}
	build := func(version uint8, suite uint16, leaves uint32, nodes map[uint32][]byte, nodeOrder []uint32,
		leafStates []struct {
			leaf uint32
			r    [2]ratchetEnc
		}, retained []decodedRetained) []byte {
		var b []byte
		b = append(b, version, byte(suite>>8), byte(suite), byte(leaves>>24), byte(leaves>>16), byte(leaves>>8), byte(leaves))
		var body []byte
		for _, x := range nodeOrder {
			body = append(body, byte(x>>24), byte(x>>16), byte(x>>8), byte(x), byte(len(nodes[x])))
			body = append(body, nodes[x]...)
		}
		b = append(b, opaque(body)...)
		body = nil
		for _, l := range leafStates {
			body = append(body, byte(l.leaf>>24), byte(l.leaf>>16), byte(l.leaf>>8), byte(l.leaf))
			for _, r := range l.r {
				for sh := 56; sh >= 0; sh -= 8 {
					body = append(body, byte(r.next>>sh))
				}
				body = append(append(body, byte(len(r.secret))), r.secret...)
			}
		}
		b = append(b, opaque(body)...)
		body = nil
		for _, r := range retained {
			body = append(body, byte(r.leaf>>24), byte(r.leaf>>16), byte(r.leaf>>8), byte(r.leaf), r.typ,
				byte(r.gen>>24), byte(r.gen>>16), byte(r.gen>>8), byte(r.gen))
			body = append(append(body, byte(len(r.key))), r.key...)
			body = append(append(body, byte(len(r.nonce))), r.nonce...)
		}
		return append(b, opaque(body)...)
	}
	type leafState = struct {
		leaf uint32
		r    [2]ratchetEnc
	}
	// A valid 2-leaf state to start from: leaf 0 derived, node 2 (leaf 1) kept.
	valid := build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2},
		[]leafState{{0, [2]ratchetEnc{{3, secret}, fresh}}},
		[]decodedRetained{{0, 0, 1, key, nonce}, {0, 0, 2, key, nonce}})
	if _, err := Unmarshal(valid, Config{}); err != nil {
		t.Fatalf("hand-built valid state refused: %v", err)
	}
	bad := map[string][]byte{
		"version 2":          build(2, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"unknown suite":      build(1, 0x99, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"zero leaves":        build(1, 1, 0, nil, nil, nil, nil),
		"leaf uncovered":     build(1, 1, 2, nil, nil, []leafState{{0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"root and leaf":      build(1, 1, 2, map[uint32][]byte{1: secret, 2: secret}, []uint32{1, 2}, nil, nil),
		"root over ratchets": build(1, 1, 2, map[uint32][]byte{1: secret}, []uint32{1}, []leafState{{0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"node and ratchets":  build(1, 1, 2, map[uint32][]byte{0: secret, 2: secret}, []uint32{0, 2}, []leafState{{0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"node outside tree":  build(1, 1, 2, map[uint32][]byte{4: secret}, []uint32{4}, []leafState{{0, [2]ratchetEnc{fresh, fresh}}, {1, [2]ratchetEnc{fresh, fresh}}}, nil),
		"short node secret":  build(1, 1, 2, map[uint32][]byte{2: secret[:5]}, []uint32{2}, []leafState{{0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"unsorted nodes":     build(1, 1, 4, map[uint32][]byte{0: secret, 2: secret, 5: secret}, []uint32{5, 0, 2}, nil, nil),
		"duplicate leaves":   build(1, 1, 2, nil, nil, []leafState{{0, [2]ratchetEnc{fresh, fresh}}, {0, [2]ratchetEnc{fresh, fresh}}}, nil),
		"leaf past count":    build(1, 1, 2, map[uint32][]byte{0: secret}, []uint32{0}, []leafState{{1, [2]ratchetEnc{fresh, fresh}}, {2, [2]ratchetEnc{fresh, fresh}}}, nil),
		"exhausted secret":   build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{exhausted, secret}, fresh}}}, nil),
		"past exhausted":     build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{exhausted + 1, nil}, fresh}}}, nil),
		"missing secret":     build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{4, nil}, fresh}}}, nil),
		"retained ahead":     build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{3, secret}, fresh}}}, []decodedRetained{{0, 0, 3, key, nonce}}),
		"retained unsorted":  build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{3, secret}, fresh}}}, []decodedRetained{{0, 0, 2, key, nonce}, {0, 0, 1, key, nonce}}),
		"retained duplicate": build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{3, secret}, fresh}}}, []decodedRetained{{0, 0, 1, key, nonce}, {0, 0, 1, key, nonce}}),
		"retained no leaf":   build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{3, secret}, fresh}}}, []decodedRetained{{1, 0, 0, key, nonce}}),
		"retained bad type":  build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{3, secret}, {3, secret}}}}, []decodedRetained{{0, 2, 1, key, nonce}}),
		"retained short key": build(1, 1, 2, map[uint32][]byte{2: secret}, []uint32{2}, []leafState{{0, [2]ratchetEnc{{3, secret}, fresh}}}, []decodedRetained{{0, 0, 1, key[:3], nonce}}),
	}
	for name, enc := range bad {
		_, err := Unmarshal(enc, Config{})
		if !errors.Is(err, codec.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzUnmarshal: no input panics, and any accepted state re-encodes to
// itself and is usable.
func FuzzUnmarshal(f *testing.F) {
	tr := newTree(f, 8, Config{})
	_ = tr.Consume(2, Application, 4)
	enc, _ := tr.MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		back, err := Unmarshal(data, Config{})
		if err != nil {
			return
		}
		again, err := back.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted state does not re-encode to itself: %v", err)
		}
		for leaf := treemath.LeafIndex(0); treemath.LeafCount(leaf) < min(back.LeafCount(), 64); leaf++ {
			_, _ = back.Peek(leaf, Application, 0)
		}
	})
}
