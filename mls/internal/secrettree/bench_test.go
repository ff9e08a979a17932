package secrettree

import (
	"testing"

	"github.com/meshchat/meshchat/mls/internal/treemath"
)

// BenchmarkFirstKey: the first key of a leaf in a fresh 10,000-leaf tree,
// including the lazy derivation of its path (14 levels).
func BenchmarkFirstKey(b *testing.B) {
	s := testSuite(b)
	secret := make([]byte, s.HashSize())
	b.ReportAllocs()
	for b.Loop() {
		tr, err := New(s, secret, 10000, Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.Open(7777, Application, 0, func(KeyNonce) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNextSendKey: one message's key on a ratchet already in use, the
// steady-state cost per message (one generation step).
func BenchmarkNextSendKey(b *testing.B) {
	tr := newTree(b, 10000, Config{})
	b.ReportAllocs()
	for b.Loop() {
		k, err := tr.NextSendKey(42, Application)
		if err != nil {
			b.Fatal(err)
		}
		k.Zero()
	}
}

// BenchmarkOpenInOrder: receiving the next generation of a sender.
func BenchmarkOpenInOrder(b *testing.B) {
	tr := newTree(b, 10000, Config{})
	b.ReportAllocs()
	for gen := uint32(0); b.Loop(); gen++ {
		if err := tr.Open(42, Application, gen, func(KeyNonce) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatchetForward10000: a key 10,000 generations ahead of a fresh
// ratchet (MaxForward raised to allow it), without and with retaining the
// last 1,000 skipped keys.
func BenchmarkRatchetForward10000(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"retain=0", Config{MaxForward: 10000, MaxRetainedPerRatchet: -1}},
		{"retain=1000", Config{MaxForward: 10000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr := newTree(b, 16, bc.cfg)
				if err := tr.Consume(3, Application, 10000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPeekAhead1000: peeking the key 1,000 generations ahead (the
// default MaxForward), which derives without committing.
func BenchmarkPeekAhead1000(b *testing.B) {
	tr := newTree(b, 16, Config{})
	b.ReportAllocs()
	for b.Loop() {
		k, err := tr.Peek(3, Application, 1000)
		if err != nil {
			b.Fatal(err)
		}
		k.Zero()
	}
}

// BenchmarkOutOfOrder: opening a late message whose key was retained when a
// later generation arrived first.
func BenchmarkOutOfOrder(b *testing.B) {
	const window = 1000
	var tr *Tree
	gen := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		if gen == 0 {
			b.StopTimer()
			tr = newTree(b, 64, Config{})
			if err := tr.Consume(5, Application, window); err != nil {
				b.Fatal(err)
			}
			gen = window
			b.StartTimer()
		}
		gen--
		if err := tr.Open(5, Application, gen, func(KeyNonce) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalState: persisting a tree with 100 leaves in use and 1,000
// retained keys.
func BenchmarkMarshalState(b *testing.B) {
	tr := newTree(b, 1000, Config{})
	for l := treemath.LeafIndex(0); l < 100; l++ {
		if err := tr.Consume(l, Application, 10); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
