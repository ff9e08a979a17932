package mls

import (
	"crypto/rand"
	"io"
	"time"
)

// Config tunes a client. Every function that takes a *Config accepts nil for
// the defaults; a Config must not be modified after it has been passed to a
// Group. A Group keeps the Config it was created, joined or loaded with.
//
// Nothing in a Config is persisted by Group.MarshalBinary: pass the same
// Config (or an updated policy) to LoadGroup.
type Config struct {
	// Rand is the source of all randomness: key pairs, path secrets,
	// nonces, reuse guards. Nil means crypto/rand.Reader.
	Rand io.Reader

	// Now returns the current time, used to check KeyPackage and LeafNode
	// lifetimes (RFC 9420 §7.3) and to set the lifetime of new KeyPackages.
	// Nil means time.Now.
	Now func() time.Time

	// RetainedEpochs is how many past epochs a Group keeps the message keys
	// of, so that application messages delayed across a commit still open
	// (RFC 9420 §15.3). Keys of older epochs are deleted. Zero means the
	// default of 3; a negative value keeps none.
	RetainedEpochs int

	// MaxGenerationGap bounds how far ahead of a sender's ratchet a
	// received message's generation may be (RFC 9420 §15.3, denial of
	// service). Zero means the default of 1024.
	MaxGenerationGap uint32

	// KeyPackageLifetime is the validity period of new KeyPackages, counted
	// from one hour before Now to allow for clock skew. Zero means 90 days.
	KeyPackageLifetime time.Duration

	// MaxLifetime is the longest total lifetime (not_after - not_before)
	// accepted in a received KeyPackage (RFC 9420 §7.2: applications MUST
	// define one). Zero means no limit.
	MaxLifetime time.Duration

	// EncryptHandshake sends proposals and commits as PrivateMessage instead
	// of PublicMessage (RFC 9420 §6). PublicMessage (the default) lets relays
	// check a handshake message's signature and group without the group's
	// keys; PrivateMessage hides it from them.
	EncryptHandshake bool

	// PaddingBlock pads the content of every PrivateMessage to a multiple of
	// this many bytes (RFC 9420 §15.1). Zero means no padding.
	PaddingBlock int

	// SupportedExtensions lists extension types the application understands
	// beyond those this package implements. They are advertised in the
	// capabilities of new leaf nodes, and GroupContext extensions of these
	// types are accepted and carried through unchanged (RFC 9420 §13.4).
	SupportedExtensions []ExtensionType

	// ExternalPSK returns the secret of an external pre-shared key by its
	// psk_id (RFC 9420 §8.4). Nil means no external PSKs are known.
	ExternalPSK func(id []byte) (psk []byte, ok bool)

	// ResumptionPSK returns the resumption_psk of another group's epoch,
	// for PSKs that name a group other than the one being processed
	// (RFC 9420 §8.6). The group's own retained epochs are found without
	// it. Nil means none are known.
	ResumptionPSK func(groupID []byte, epoch uint64) (psk []byte, ok bool)
}

const (
	defaultRetainedEpochs     = 3
	defaultMaxGenerationGap   = 1024
	defaultKeyPackageLifetime = 90 * 24 * time.Hour
	keyPackageClockSkew       = time.Hour
)

func (c *Config) rand() io.Reader {
	if c == nil || c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

func (c *Config) now() time.Time {
	if c == nil || c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Config) retainedEpochs() int {
	switch {
	case c == nil || c.RetainedEpochs == 0:
		return defaultRetainedEpochs
	case c.RetainedEpochs < 0:
		return 0
	}
	return c.RetainedEpochs
}

func (c *Config) maxGenerationGap() uint32 {
	if c == nil || c.MaxGenerationGap == 0 {
		return defaultMaxGenerationGap
	}
	return c.MaxGenerationGap
}

func (c *Config) keyPackageLifetime() time.Duration {
	if c == nil || c.KeyPackageLifetime <= 0 {
		return defaultKeyPackageLifetime
	}
	return c.KeyPackageLifetime
}

func (c *Config) maxLifetime() time.Duration {
	if c == nil || c.MaxLifetime < 0 {
		return 0
	}
	return c.MaxLifetime
}

func (c *Config) encryptHandshake() bool { return c != nil && c.EncryptHandshake }

func (c *Config) paddingBlock() int {
	if c == nil || c.PaddingBlock < 0 {
		return 0
	}
	return c.PaddingBlock
}

func (c *Config) supportedExtensions() []ExtensionType {
	if c == nil {
		return nil
	}
	return c.SupportedExtensions
}

func (c *Config) externalPSK(id []byte) ([]byte, bool) {
	if c == nil || c.ExternalPSK == nil {
		return nil, false
	}
	return c.ExternalPSK(id)
}

func (c *Config) resumptionPSK(groupID []byte, epoch uint64) ([]byte, bool) {
	if c == nil || c.ResumptionPSK == nil {
		return nil, false
	}
	return c.ResumptionPSK(groupID, epoch)
}
