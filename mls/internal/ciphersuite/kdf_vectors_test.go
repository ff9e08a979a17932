package ciphersuite

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/vectors"
)

func TestQuickKDF(t *testing.T) {
	var cases []struct {
		CipherSuite  ID `json:"cipher_suite"`
		DeriveSecret struct {
			Label  string
			Out    vectors.Hex
			Secret vectors.Hex
		} `json:"derive_secret"`
		DeriveTreeSecret struct {
			Generation uint32
			Label      string
			Length     int
			Out        vectors.Hex
			Secret     vectors.Hex
		} `json:"derive_tree_secret"`
		RefHash struct {
			Label string
			Out   vectors.Hex
			Value vectors.Hex
		} `json:"ref_hash"`
	}
	vectors.Load(t, "crypto-basics.json", &cases)
	for _, c := range cases {
		s, err := Lookup(c.CipherSuite)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := s.DeriveSecret(c.DeriveSecret.Secret, c.DeriveSecret.Label)
		if !bytes.Equal(out, c.DeriveSecret.Out) {
			t.Errorf("suite %d derive secret", c.CipherSuite)
		}
		out, _ = s.DeriveTreeSecret(c.DeriveTreeSecret.Secret, c.DeriveTreeSecret.Label, c.DeriveTreeSecret.Generation, c.DeriveTreeSecret.Length)
		if !bytes.Equal(out, c.DeriveTreeSecret.Out) {
			t.Errorf("suite %d derive tree secret", c.CipherSuite)
		}
		out, _ = s.RefHash(c.RefHash.Label, c.RefHash.Value)
		if !bytes.Equal(out, c.RefHash.Out) {
			t.Errorf("suite %d refhash", c.CipherSuite)
		}
	}
}
