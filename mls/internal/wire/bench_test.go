package wire

import (
	"fmt"
	"testing"
)

// Benchmarks of the largest structure a client decodes: a full ratchet tree
// (RFC 9420 §12.4.3.3), built synthetically with realistic field sizes.

func benchTree(b *testing.B, leaves int) []byte {
	b.Helper()
	tree := sampleTree(leaves)
	enc, err := Marshal(&tree)
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

func BenchmarkRatchetTreeDecode(b *testing.B) {
	for _, leaves := range []int{1000, 10000} {
		enc := benchTree(b, leaves)
		b.Run(fmt.Sprintf("leaves=%d", leaves), func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				var tree RatchetTree
				if err := Unmarshal(enc, &tree); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRatchetTreeEncode(b *testing.B) {
	for _, leaves := range []int{1000, 10000} {
		tree := sampleTree(leaves)
		b.Run(fmt.Sprintf("leaves=%d", leaves), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Marshal(&tree); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMLSMessageDecodeCommit(b *testing.B) {
	m, err := NewMLSMessage(samplePublicCommit())
	if err != nil {
		b.Fatal(err)
	}
	enc, err := Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var msg MLSMessage
		if err := Unmarshal(enc, &msg); err != nil {
			b.Fatal(err)
		}
	}
}
