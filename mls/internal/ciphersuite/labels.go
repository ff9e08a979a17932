package ciphersuite

import (
	"encoding/binary"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// labelPrefix is prepended to every label of a labelled operation
// (RFC 9420 §5.1.2, §5.1.3, §8).
const labelPrefix = "MLS 1.0 "

// ExpandWithLabel is RFC 9420 §8:
//
//	ExpandWithLabel(Secret, Label, Context, Length) =
//	    KDF.Expand(Secret, KDFLabel, Length)
//
// where KDFLabel is {uint16 length; opaque label<V> = "MLS 1.0 " + Label;
// opaque context<V>}.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("ExpandWithLabel %q: length %d out of range", label, length)
	}
	// The KDFLabel of the secret tree and key schedule derivations is a
	// few dozen bytes: build it in a stack buffer.
	var buf [128]byte
	b := cryptobyte.NewBuilder(buf[:0])
	b.AddUint16(uint16(length))
	codec.AddVarint(b, uint64(len(labelPrefix)+len(label)))
	b.AddBytes([]byte(labelPrefix))
	b.AddBytes([]byte(label))
	codec.AddOpaque(b, context)
	info, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ExpandWithLabel %q: %w", label, err)
	}
	return s.Expand(secret, info, length)
}

// DeriveSecret is RFC 9420 §8: ExpandWithLabel(Secret, Label, "", KDF.Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.HashSize())
}

// DeriveTreeSecret is RFC 9420 §9:
// ExpandWithLabel(Secret, Label, uint32 Generation, Length).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	var ctx [4]byte
	binary.BigEndian.PutUint32(ctx[:], generation)
	return s.ExpandWithLabel(secret, label, ctx[:], length)
}

// RefHash is RFC 9420 §5.2: Hash(RefHashInput{label<V>, value<V>}). The label
// is used as given (callers pass "MLS 1.0 KeyPackage Reference" and
// "MLS 1.0 Proposal Reference").
func (s *Suite) RefHash(label string, value []byte) ([]byte, error) {
	in, err := codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddOpaque(b, []byte(label))
		codec.AddOpaque(b, value)
	})
	if err != nil {
		return nil, fmt.Errorf("RefHash %q: %w", label, err)
	}
	return s.Hash(in), nil
}
