package secrettree

import (
	"errors"
	"math"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/treemath"
)

// Class 4 and 5 (issue 9), RFC 9420 §9, §15.3: a leaf index past the tree
// (the leaf count, 2^31-1, 2^31, 2^32-1) and a generation far ahead are
// errors for every operation, never a panic or a wrapped-around index, and
// leave the tree unchanged; leaf 0 is an ordinary leaf.
func TestHardeningIndicesAndGenerations(t *testing.T) {
	tr := newTree(t, 5, Config{}) // a 5-leaf tree has the shape of 8
	before := state(t, tr)
	for _, leaf := range []treemath.LeafIndex{5, 7, 8, math.MaxInt32, 1 << 31, math.MaxUint32} {
		ops := map[string]error{}
		_, ops["NextSendKey"] = tr.NextSendKey(leaf, Application)
		_, ops["Peek"] = tr.Peek(leaf, Application, 0)
		ops["Consume"] = tr.Consume(leaf, Handshake, 0)
		ops["Open"] = tr.Open(leaf, Application, 0, func(KeyNonce) error { return nil })
		for op, err := range ops {
			if !errors.Is(err, ErrUnknownLeaf) {
				t.Errorf("class4/§9 %s of leaf %d: %v, want ErrUnknownLeaf", op, leaf, err)
			}
		}
	}
	for _, gen := range []uint32{DefaultMaxForward + 1, 1 << 31, math.MaxUint32} {
		if err := tr.Open(0, Application, gen, func(KeyNonce) error { return nil }); !errors.Is(err, ErrGenerationTooFar) {
			t.Errorf("class5/§15.3 generation %d: %v", gen, err)
		}
	}
	if string(before) != string(state(t, tr)) {
		t.Fatal("rejected requests changed the tree")
	}
	// Leaf 0 works like any other.
	if err := tr.Open(0, Application, 0, func(KeyNonce) error { return nil }); err != nil {
		t.Fatalf("class4/§4 leaf 0: %v", err)
	}
	if err := tr.Consume(0, Application, 0); !errors.Is(err, ErrKeyConsumed) {
		t.Fatalf("class5/§9.2 leaf 0 generation 0 consumed twice: %v", err)
	}
}
