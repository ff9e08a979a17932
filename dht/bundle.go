package dht

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/cryptobyte"
)

// Limits of a KeyPackage bundle record; see the package documentation.
const (
	// MaxBundleKeyPackages is the most KeyPackages one bundle may carry,
	// the last-resort one included.
	MaxBundleKeyPackages = 32
	// MaxBundleSize is the largest encoded bundle record in bytes; it
	// leaves room for KeyPackages with post-quantum keys and signatures.
	MaxBundleSize = 512 << 10
	// MaxBundleLifetime is the longest validity a bundle may claim. It
	// bounds how long a publisher's old KeyPackages can keep circulating.
	MaxBundleLifetime = 7 * 24 * time.Hour
	// MaxClockSkew is how far in the future a record's times may lie
	// beyond the limits above before validators refuse it.
	MaxClockSkew = 10 * time.Minute
)

// bundleVersion is the only KeyPackageBundle version this package speaks.
const bundleVersion = 1

// bundleSignatureLabel separates bundle signatures from every other use of
// the peer's libp2p key.
const bundleSignatureLabel = "meshchat dht keypackage bundle v1"

// ErrInvalidRecord is wrapped by every validation failure of a bundle or
// mailbox record, so callers can tell a refused record from a network error.
var ErrInvalidRecord = errors.New("invalid directory record")

// ErrExpired is wrapped (together with ErrInvalidRecord) when a record is
// refused only because it is past its expiry.
var ErrExpired = errors.New("record expired")

// KeyPackage is one entry of a bundle: an MLSMessage carrying a KeyPackage
// (RFC 9420 §6, §10) and whether it is the last-resort KeyPackage (RFC 9420
// §16.8) that may be used more than once.
type KeyPackage struct {
	Data       []byte
	LastResort bool
}

// Bundle is a decoded, validated KeyPackage bundle record.
type Bundle struct {
	// PeerID is the publisher, also the identity in every KeyPackage's
	// credential.
	PeerID peer.ID
	// Sequence orders bundles of one publisher; higher replaces lower.
	Sequence uint64
	// Expires is when the bundle stops being valid (whole seconds).
	Expires time.Time
	// KeyPackages holds the entries in publication order; exactly one has
	// LastResort set.
	KeyPackages []KeyPackage
}

// LastResort returns the bundle's last-resort KeyPackage.
func (b *Bundle) LastResort() KeyPackage {
	for _, kp := range b.KeyPackages {
		if kp.LastResort {
			return kp
		}
	}
	return KeyPackage{}
}

// OneTime returns the entries meant for a single use, in publication order.
func (b *Bundle) OneTime() []KeyPackage {
	var out []KeyPackage
	for _, kp := range b.KeyPackages {
		if !kp.LastResort {
			out = append(out, kp)
		}
	}
	return out
}

// keyPackageKey returns the DHT key of id's KeyPackage bundle.
func keyPackageKey(id peer.ID) string {
	return "/" + keyPackageNamespace + "/" + string(id)
}

// addBundleBody appends every field of b except the signature.
func addBundleBody(builder *cryptobyte.Builder, b *Bundle) {
	builder.AddUint8(bundleVersion)
	builder.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(b.PeerID)) })
	builder.AddUint64(b.Sequence)
	builder.AddUint64(uint64(b.Expires.Unix()))
	builder.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, kp := range b.KeyPackages {
			if kp.LastResort {
				c.AddUint8(1)
			} else {
				c.AddUint8(0)
			}
			c.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(kp.Data) })
		}
	})
}

// bundleSignedContent returns the bytes the publisher signs.
func bundleSignedContent(body []byte) []byte {
	return append([]byte(bundleSignatureLabel), body...)
}

// signBundle encodes b and signs it with key, which must belong to b.PeerID.
// It checks the shape rules (entry count, one last resort, no duplicates,
// size) so that a publisher learns of a mistake before the network does.
func signBundle(b *Bundle, key crypto.PrivKey) ([]byte, error) {
	if err := checkBundleShape(b); err != nil {
		return nil, err
	}
	if b.Expires.Unix() <= 0 {
		return nil, fmt.Errorf("encode bundle: expiry %v before 1970: %w", b.Expires, ErrInvalidRecord)
	}
	var body cryptobyte.Builder
	addBundleBody(&body, b)
	bodyBytes, err := body.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	sig, err := key.Sign(bundleSignedContent(bodyBytes))
	if err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	out := cryptobyte.NewFixedBuilder(make([]byte, 0, len(bodyBytes)+2+len(sig)))
	out.AddBytes(bodyBytes)
	out.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(sig) })
	enc, err := out.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	if len(enc) > MaxBundleSize {
		return nil, fmt.Errorf("encode bundle: %d bytes exceeds %d: %w", len(enc), MaxBundleSize, ErrInvalidRecord)
	}
	return enc, nil
}

// checkBundleShape enforces the structural rules shared by encoder and
// decoder.
func checkBundleShape(b *Bundle) error {
	if len(b.PeerID) == 0 || len(b.PeerID) > 255 {
		return fmt.Errorf("bundle peer ID length %d: %w", len(b.PeerID), ErrInvalidRecord)
	}
	n := len(b.KeyPackages)
	if n == 0 || n > MaxBundleKeyPackages {
		return fmt.Errorf("bundle has %d KeyPackages, want 1..%d: %w", n, MaxBundleKeyPackages, ErrInvalidRecord)
	}
	lastResort := 0
	for i, kp := range b.KeyPackages {
		if len(kp.Data) == 0 {
			return fmt.Errorf("bundle entry %d is empty: %w", i, ErrInvalidRecord)
		}
		if kp.LastResort {
			lastResort++
		}
		for _, earlier := range b.KeyPackages[:i] {
			if bytes.Equal(earlier.Data, kp.Data) {
				return fmt.Errorf("bundle entry %d repeats an earlier KeyPackage: %w", i, ErrInvalidRecord)
			}
		}
	}
	if lastResort != 1 {
		return fmt.Errorf("bundle has %d last-resort KeyPackages, want exactly 1: %w", lastResort, ErrInvalidRecord)
	}
	return nil
}

// parsedBundle is a strictly decoded bundle with the parts needed to check
// its signature.
type parsedBundle struct {
	Bundle
	body      []byte // every byte before the signature field
	signature []byte
}

// parseBundle decodes a KeyPackageBundle strictly. It does not check the
// signature, the expiry or the KeyPackages themselves.
func parseBundle(data []byte) (*parsedBundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d: %w", len(data), MaxBundleSize, ErrInvalidRecord)
	}
	s := cryptobyte.String(data)
	var (
		version  uint8
		rawID    cryptobyte.String
		seq      uint64
		expires  uint64
		entries  cryptobyte.String
		sigField cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("bundle: truncated: %w", ErrInvalidRecord)
	}
	if version != bundleVersion {
		return nil, fmt.Errorf("bundle: version %d, want %d: %w", version, bundleVersion, ErrInvalidRecord)
	}
	if !s.ReadUint8LengthPrefixed(&rawID) || !s.ReadUint64(&seq) || !s.ReadUint64(&expires) ||
		!s.ReadUint24LengthPrefixed(&entries) {
		return nil, fmt.Errorf("bundle: truncated: %w", ErrInvalidRecord)
	}
	bodyLen := len(data) - len(s)
	if !s.ReadUint16LengthPrefixed(&sigField) || len(sigField) == 0 {
		return nil, fmt.Errorf("bundle: missing signature: %w", ErrInvalidRecord)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("bundle: %d trailing bytes: %w", len(s), ErrInvalidRecord)
	}
	if expires > uint64(1<<62) {
		return nil, fmt.Errorf("bundle: expiry %d out of range: %w", expires, ErrInvalidRecord)
	}
	id, err := peer.IDFromBytes(rawID)
	if err != nil {
		return nil, fmt.Errorf("bundle: peer ID: %v: %w", err, ErrInvalidRecord)
	}
	b := &parsedBundle{
		Bundle: Bundle{
			PeerID:   id,
			Sequence: seq,
			Expires:  time.Unix(int64(expires), 0),
		},
		body:      data[:bodyLen],
		signature: []byte(sigField),
	}
	for !entries.Empty() {
		if len(b.KeyPackages) == MaxBundleKeyPackages {
			return nil, fmt.Errorf("bundle: more than %d KeyPackages: %w", MaxBundleKeyPackages, ErrInvalidRecord)
		}
		var flag uint8
		var kp cryptobyte.String
		if !entries.ReadUint8(&flag) || !entries.ReadUint24LengthPrefixed(&kp) {
			return nil, fmt.Errorf("bundle: truncated entry: %w", ErrInvalidRecord)
		}
		if flag > 1 {
			return nil, fmt.Errorf("bundle: last_resort flag %d is not 0 or 1: %w", flag, ErrInvalidRecord)
		}
		b.KeyPackages = append(b.KeyPackages, KeyPackage{Data: []byte(kp), LastResort: flag == 1})
	}
	if err := checkBundleShape(&b.Bundle); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return b, nil
}

// verifySignature checks the publisher's signature with the public key
// embedded in the bundle's peer ID.
func (b *parsedBundle) verifySignature() error {
	pub, err := b.PeerID.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("bundle: peer ID %s does not embed its public key: %v: %w", b.PeerID, err, ErrInvalidRecord)
	}
	ok, err := pub.Verify(bundleSignedContent(b.body), b.signature)
	if err != nil || !ok {
		return fmt.Errorf("bundle: signature by %s does not verify: %w", b.PeerID, ErrInvalidRecord)
	}
	return nil
}
