package secrettree

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/vectors"
)

type secretTreeGeneration struct {
	Generation       uint32      `json:"generation"`
	HandshakeKey     vectors.Hex `json:"handshake_key"`
	HandshakeNonce   vectors.Hex `json:"handshake_nonce"`
	ApplicationKey   vectors.Hex `json:"application_key"`
	ApplicationNonce vectors.Hex `json:"application_nonce"`
}

func (g *secretTreeGeneration) want(typ RatchetType) (key, nonce []byte) {
	if typ == Handshake {
		return g.HandshakeKey, g.HandshakeNonce
	}
	return g.ApplicationKey, g.ApplicationNonce
}

// TestSecretTreeVectors checks every leaf of secret-tree.json at generations
// 0 and 15 on both ratchets (RFC 9420 §9, §9.1) and the sender-data key and
// nonce (§6.3.2). Each case is walked twice: leaves in order with
// generations ascending (Peek then Consume), and leaves in reverse with
// generation 15 first and 0 served from the retained keys (Open), which
// exercises the lazy path derivation from different frontiers.
func TestSecretTreeVectors(t *testing.T) {
	var cases []struct {
		CipherSuite      ciphersuite.ID `json:"cipher_suite"`
		EncryptionSecret vectors.Hex    `json:"encryption_secret"`
		SenderData       struct {
			SenderDataSecret vectors.Hex `json:"sender_data_secret"`
			Ciphertext       vectors.Hex `json:"ciphertext"`
			Key              vectors.Hex `json:"key"`
			Nonce            vectors.Hex `json:"nonce"`
		} `json:"sender_data"`
		Leaves [][]secretTreeGeneration `json:"leaves"`
	}
	vectors.Load(t, "secret-tree.json", &cases)
	tl := vectors.NewTally(t, "secret-tree.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "suite", uint16(c.CipherSuite), "leaves", len(c.Leaves)), func(t *testing.T) {
			suite, err := ciphersuite.Lookup(c.CipherSuite)
			if err != nil {
				t.Fatal(err)
			}
			key, nonce, err := SenderDataKeyNonce(suite, c.SenderData.SenderDataSecret, c.SenderData.Ciphertext)
			if err != nil || !bytes.Equal(key, c.SenderData.Key) || !bytes.Equal(nonce, c.SenderData.Nonce) {
				t.Errorf("sender data key %x nonce %x (%v); want %x %x", key, nonce, err, c.SenderData.Key, c.SenderData.Nonce)
			}
			n := treemath.LeafCount(len(c.Leaves))

			forward, err := New(suite, c.EncryptionSecret, n, Config{})
			if err != nil {
				t.Fatal(err)
			}
			for leaf, gens := range c.Leaves {
				for _, g := range gens {
					for _, typ := range []RatchetType{Handshake, Application} {
						wantKey, wantNonce := g.want(typ)
						k, err := forward.Peek(treemath.LeafIndex(leaf), typ, g.Generation)
						if err != nil || !bytes.Equal(k.Key, wantKey) || !bytes.Equal(k.Nonce, wantNonce) || k.Generation != g.Generation {
							t.Errorf("leaf %d %s gen %d: key %x nonce %x (%v); want %x %x", leaf, typ, g.Generation, k.Key, k.Nonce, err, wantKey, wantNonce)
						}
						if err := forward.Consume(treemath.LeafIndex(leaf), typ, g.Generation); err != nil {
							t.Errorf("leaf %d %s gen %d: Consume: %v", leaf, typ, g.Generation, err)
						}
					}
				}
			}
			if len(forward.nodes) != 0 {
				t.Errorf("%d node secrets left after deriving every leaf", len(forward.nodes))
			}

			backward, err := New(suite, c.EncryptionSecret, n, Config{})
			if err != nil {
				t.Fatal(err)
			}
			for leaf := len(c.Leaves) - 1; leaf >= 0; leaf-- {
				gens := c.Leaves[leaf]
				for j := len(gens) - 1; j >= 0; j-- {
					g := gens[j]
					for _, typ := range []RatchetType{Application, Handshake} {
						wantKey, wantNonce := g.want(typ)
						err := backward.Open(treemath.LeafIndex(leaf), typ, g.Generation, func(k KeyNonce) error {
							if !bytes.Equal(k.Key, wantKey) || !bytes.Equal(k.Nonce, wantNonce) {
								t.Errorf("leaf %d %s gen %d out of order: key %x nonce %x; want %x %x", leaf, typ, g.Generation, k.Key, k.Nonce, wantKey, wantNonce)
							}
							return nil
						})
						if err != nil {
							t.Errorf("leaf %d %s gen %d out of order: %v", leaf, typ, g.Generation, err)
						}
					}
				}
			}
		})
	}
}
