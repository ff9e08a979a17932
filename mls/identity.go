package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// Identity is who a client is in its groups: a basic credential carrying an
// application-chosen name (RFC 9420 §5.3) and the signature key pair that
// speaks for it (§5.1.2). Every KeyPackage, leaf node, message and GroupInfo
// the client produces is signed with it.
//
// An Identity is bound to one cipher suite's signature scheme. It is
// immutable and safe for concurrent use.
type Identity struct {
	suite CipherSuite
	cs    *ciphersuite.Suite
	key   *ciphersuite.SigningKey
	pub   []byte
	name  []byte
}

// NewIdentity generates a signature key pair for suite and binds it to name
// in a basic credential. The name is what other members see as
// Member.Identity; the application decides what it means (a user ID, a
// device ID, a peer ID).
func NewIdentity(suite CipherSuite, name []byte, cfg *Config) (*Identity, error) {
	cs, err := lookupSuite(suite)
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	key, err := cs.GenerateSigningKey(cfg.rand())
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	return &Identity{suite: suite, cs: cs, key: key, pub: key.PublicKey(), name: bytes.Clone(name)}, nil
}

// identityFromKey builds an Identity from a raw signature private key, as
// test vectors carry them.
func identityFromKey(suite CipherSuite, name, rawKey []byte) (*Identity, error) {
	cs, err := lookupSuite(suite)
	if err != nil {
		return nil, err
	}
	key, err := cs.ParseSigningKey(rawKey)
	if err != nil {
		return nil, fmt.Errorf("signature key: %w", err)
	}
	return &Identity{suite: suite, cs: cs, key: key, pub: key.PublicKey(), name: bytes.Clone(name)}, nil
}

// CipherSuite returns the suite whose signature scheme the key belongs to.
func (id *Identity) CipherSuite() CipherSuite { return id.suite }

// Name returns the identity carried in the basic credential.
func (id *Identity) Name() []byte { return bytes.Clone(id.name) }

// SignaturePublicKey returns the public signature key (RFC 9420 §5.1.1).
func (id *Identity) SignaturePublicKey() []byte { return bytes.Clone(id.pub) }

// credential is the basic credential of the identity (RFC 9420 §5.3).
func (id *Identity) credential() wire.Credential {
	return wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: bytes.Clone(id.name)}
}

// sign is SignWithLabel with the identity's key (RFC 9420 §5.1.2).
func (id *Identity) sign(label string, v wire.Encoder) ([]byte, error) {
	content, err := wire.Marshal(v)
	if err != nil {
		return nil, err
	}
	return id.cs.SignWithLabel(id.key, label, content)
}

// Persisted identity layout (version 1):
//
//	uint8  kind = kindIdentity
//	uint8  version = 1
//	uint16 cipher_suite
//	opaque name<V>
//	opaque signature_private_key<V>

// MarshalBinary encodes the identity, including its private key, for
// storage. Keep the result secret. ParseIdentity reverses it.
func (id *Identity) MarshalBinary() ([]byte, error) {
	return codec.Marshal(func(b *cryptobyte.Builder) {
		b.AddUint8(kindIdentity)
		b.AddUint8(identityVersion)
		id.encode(b)
	})
}

func (id *Identity) encode(b *cryptobyte.Builder) {
	b.AddUint16(uint16(id.suite))
	codec.AddOpaque(b, id.name)
	codec.AddOpaque(b, id.key.Bytes())
}

// ParseIdentity decodes an identity stored by Identity.MarshalBinary. Bytes
// of another kind or version, truncated or corrupt bytes yield an error
// wrapping ErrCorruptState.
func ParseIdentity(data []byte) (*Identity, error) {
	var id *Identity
	err := unmarshalState(data, kindIdentity, identityVersion, "identity", func(s *cryptobyte.String) bool {
		var ok bool
		id, ok = decodeIdentity(s)
		return ok
	})
	if err != nil {
		return nil, err
	}
	return id, nil
}

func decodeIdentity(s *cryptobyte.String) (*Identity, bool) {
	var suite uint16
	var name, key []byte
	if !s.ReadUint16(&suite) || !codec.ReadOpaque(s, &name) || !codec.ReadOpaque(s, &key) {
		return nil, false
	}
	id, err := identityFromKey(CipherSuite(suite), name, key)
	clear(key)
	if err != nil {
		return nil, false
	}
	return id, true
}
