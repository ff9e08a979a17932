package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// KeyPackage is a client's signed, pre-published offer to be added to
// groups (RFC 9420 §10): its cipher suite, an HPKE init key new members'
// Welcome secrets are encrypted to, and the leaf node it will occupy.
//
// A *KeyPackage is always valid in the sense of RFC 9420 §10.1 at the time
// it was parsed or created; it is immutable.
type KeyPackage struct {
	kp    wire.KeyPackage
	cs    *ciphersuite.Suite
	raw   []byte // encoded KeyPackage (not the MLSMessage)
	ref   []byte
	bytes []byte // encoded MLSMessage
}

// KeyPackageOptions tunes NewKeyPackage. The zero value makes a single-use
// KeyPackage with no extra extensions.
type KeyPackageOptions struct {
	// LastResort marks the KeyPackage as one that may be used more than
	// once (RFC 9420 §16.8, the last_resort extension). Keep its private
	// part after joining a group with it.
	LastResort bool

	// Extensions are added to the KeyPackage's extensions field. Their
	// types are advertised in the leaf's capabilities as RFC 9420 §10
	// requires.
	Extensions []Extension

	// LeafExtensions are added to the leaf node's extensions (for example
	// an application_id, RFC 9420 §5.3.3).
	LeafExtensions []Extension
}

// PrivateKeyPackage is a KeyPackage together with the private keys that
// only its owner holds: the init key (to open Welcome messages) and the leaf
// encryption key, and the Identity that signed it. Store it until a Welcome
// for it arrives; Join takes it.
type PrivateKeyPackage struct {
	pub      *KeyPackage
	id       *Identity
	initPriv []byte
	encPriv  []byte
}

// NewKeyPackage creates a KeyPackage for id (RFC 9420 §10), with fresh init
// and encryption key pairs and a lifetime of Config.KeyPackageLifetime
// starting one hour before Config.Now. Publish PrivateKeyPackage.KeyPackage
// and keep the PrivateKeyPackage.
func NewKeyPackage(id *Identity, cfg *Config, opts *KeyPackageOptions) (*PrivateKeyPackage, error) {
	if opts == nil {
		opts = &KeyPackageOptions{}
	}
	cs := id.cs
	initPriv, initPub, err := cs.GenerateHPKEKey(cfg.rand())
	if err != nil {
		return nil, fmt.Errorf("new key package: init key: %w", err)
	}
	encPriv, encPub, err := cs.GenerateHPKEKey(cfg.rand())
	if err != nil {
		return nil, fmt.Errorf("new key package: encryption key: %w", err)
	}
	kpExts, err := toWireExtensions(opts.Extensions)
	if err != nil {
		return nil, fmt.Errorf("new key package: %w", err)
	}
	if opts.LastResort && !kpExts.Has(wire.ExtensionTypeLastResort) {
		if err := kpExts.Set(&wire.LastResort{}); err != nil {
			return nil, fmt.Errorf("new key package: %w", err)
		}
	}
	leafExts, err := toWireExtensions(opts.LeafExtensions)
	if err != nil {
		return nil, fmt.Errorf("new key package: %w", err)
	}
	now := cfg.now()
	notBefore := now.Add(-keyPackageClockSkew)
	notAfter := now.Add(cfg.keyPackageLifetime())
	leaf := wire.LeafNode{
		EncryptionKey:  encPub,
		SignatureKey:   id.SignaturePublicKey(),
		Credential:     id.credential(),
		Capabilities:   advertisedCapabilities(cfg, kpExts, leafExts),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       wire.Lifetime{NotBefore: unixSeconds(notBefore), NotAfter: unixSeconds(notAfter)},
		Extensions:     leafExts,
	}
	if leaf.Signature, err = id.sign(labelLeafNodeTBS, leaf.TBS(nil, 0)); err != nil {
		return nil, fmt.Errorf("new key package: sign leaf node: %w", err)
	}
	kp := wire.KeyPackage{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: wire.CipherSuite(id.suite),
		InitKey:     initPub,
		LeafNode:    leaf,
		Extensions:  kpExts,
	}
	if kp.Signature, err = id.sign(labelKeyPackageTBS, kp.TBS()); err != nil {
		return nil, fmt.Errorf("new key package: sign: %w", err)
	}
	pub, err := newKeyPackage(cs, kp)
	if err != nil {
		return nil, fmt.Errorf("new key package: %w", err)
	}
	return &PrivateKeyPackage{pub: pub, id: id, initPriv: initPriv, encPriv: encPriv}, nil
}

// newKeyPackage wraps a decoded or built wire KeyPackage, computing its
// encodings and reference.
func newKeyPackage(cs *ciphersuite.Suite, kp wire.KeyPackage) (*KeyPackage, error) {
	raw, err := wire.Marshal(&kp)
	if err != nil {
		return nil, err
	}
	ref, err := cs.RefHash(labelKeyPackageRef, raw)
	if err != nil {
		return nil, err
	}
	msg, err := wire.NewMLSMessage(&kp)
	if err != nil {
		return nil, err
	}
	enc, err := wire.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return &KeyPackage{kp: kp, cs: cs, raw: raw, ref: ref, bytes: enc}, nil
}

// ParseKeyPackage decodes a KeyPackage sent as an MLSMessage and validates
// it as RFC 9420 §10.1 requires before it is used: supported version and
// cipher suite, a valid leaf node of source key_package whose lifetime
// covers Config.Now, a valid signature, and an init key distinct from the
// encryption key. The checks that depend on a group (matching suite,
// required capabilities, duplicate members) happen when it is added.
//
// Errors wrap ErrMalformed, ErrUnsupportedCipherSuite,
// ErrUnsupportedVersion, ErrBadSignature, ErrKeyPackageExpired or
// ErrKeyPackageInvalid.
func ParseKeyPackage(data []byte, cfg *Config) (*KeyPackage, error) {
	var msg wire.MLSMessage
	if err := wire.Unmarshal(data, &msg); err != nil {
		return nil, fmt.Errorf("parse key package: %w: %v", ErrMalformed, err)
	}
	if msg.WireFormat != wire.WireFormatKeyPackage {
		return nil, fmt.Errorf("parse key package: message holds a %v: %w", msg.WireFormat, ErrMalformed)
	}
	return keyPackageFromWire(*msg.KeyPackage, cfg)
}

// keyPackageFromWire validates kp (RFC 9420 §10.1, group-independent part)
// and wraps it.
func keyPackageFromWire(kp wire.KeyPackage, cfg *Config) (*KeyPackage, error) {
	if kp.Version != wire.ProtocolVersionMLS10 {
		return nil, fmt.Errorf("key package version %v: %w", kp.Version, ErrUnsupportedVersion)
	}
	cs, err := lookupSuite(CipherSuite(kp.CipherSuite))
	if err != nil {
		return nil, fmt.Errorf("key package: %w", err)
	}
	if err := validateKeyPackage(cs, &kp, cfg, true, true); err != nil {
		return nil, err
	}
	return newKeyPackage(cs, kp)
}

// validateKeyPackage checks the group-independent rules of RFC 9420 §10.1
// and §7.3 for a KeyPackage's leaf. checkLifetime is false where the RFC
// only recommends the check and a stale clock must not split the group.
// leafSignature is false where the caller verifies the leaf's signature
// itself (a commit applying an Add validates the leaf against the tree).
func validateKeyPackage(cs *ciphersuite.Suite, kp *wire.KeyPackage, cfg *Config, checkLifetime, leafSignature bool) error {
	if err := cs.ValidateHPKEPublicKey(kp.InitKey); err != nil {
		return fmt.Errorf("key package init key: %w: %v", ErrKeyPackageInvalid, err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("key package init key equals its encryption key: %w", ErrKeyPackageInvalid)
	}
	if err := verifyLeafNode(cs, &kp.LeafNode, wire.LeafNodeSourceKeyPackage, nil, 0, leafSignature); err != nil {
		return fmt.Errorf("key package: %w: %w", ErrKeyPackageInvalid, err)
	}
	for _, e := range kp.Extensions {
		if !e.ExtensionType.IsDefault() && !listsExtension(kp.LeafNode.Capabilities, e.ExtensionType) {
			return fmt.Errorf("key package extension %v not in its capabilities: %w", e.ExtensionType, ErrKeyPackageInvalid)
		}
	}
	if err := verifySignature(cs, kp.LeafNode.SignatureKey, labelKeyPackageTBS, kp.TBS(), kp.Signature); err != nil {
		return fmt.Errorf("key package: %w: %w", ErrKeyPackageInvalid, err)
	}
	if checkLifetime {
		if err := checkLeafLifetime(&kp.LeafNode, cfg); err != nil {
			return fmt.Errorf("key package: %w: %w", ErrKeyPackageInvalid, err)
		}
	}
	return nil
}

// checkLeafLifetime reports whether Config.Now lies within the lifetime of a
// key_package leaf (RFC 9420 §7.3), and whether that lifetime is longer than
// Config.MaxLifetime allows (§7.2).
func checkLeafLifetime(leaf *wire.LeafNode, cfg *Config) error {
	now := unixSeconds(cfg.now())
	lt := leaf.Lifetime
	if now < lt.NotBefore || now > lt.NotAfter {
		return fmt.Errorf("lifetime [%d, %d] does not cover %d: %w", lt.NotBefore, lt.NotAfter, now, ErrKeyPackageExpired)
	}
	if max := cfg.maxLifetime(); max > 0 && lt.NotAfter-lt.NotBefore > uint64(max/time.Second) {
		return fmt.Errorf("lifetime of %ds is longer than the %v allowed: %w", lt.NotAfter-lt.NotBefore, max, ErrKeyPackageInvalid)
	}
	return nil
}

// verifyLeafNode checks the rules of RFC 9420 §7.3 that depend on the leaf
// alone: its source, signature (over the group ID and leaf index for the
// update and commit sources), the keys' encodings, that its credential type
// is one it lists, and that its non-default extensions are in its
// capabilities. Errors wrap ErrInvalidLeafNode or ErrBadSignature. The
// signature is checked only when signature is set.
func verifyLeafNode(cs *ciphersuite.Suite, leaf *wire.LeafNode, source wire.LeafNodeSource, groupID []byte, leafIndex uint32, signature bool) error {
	if leaf.LeafNodeSource != source {
		return fmt.Errorf("leaf node source %v, want %v: %w", leaf.LeafNodeSource, source, ErrInvalidLeafNode)
	}
	if err := cs.ValidateHPKEPublicKey(leaf.EncryptionKey); err != nil {
		return fmt.Errorf("leaf encryption key: %w: %v", ErrInvalidLeafNode, err)
	}
	if len(leaf.SignatureKey) != cs.SignaturePublicKeySize() {
		return fmt.Errorf("leaf signature key of %d bytes: %w", len(leaf.SignatureKey), ErrInvalidLeafNode)
	}
	if !listsCredential(leaf.Capabilities, leaf.Credential.CredentialType) {
		return fmt.Errorf("leaf credential type %v not in its capabilities: %w", leaf.Credential.CredentialType, ErrInvalidLeafNode)
	}
	for _, e := range leaf.Extensions {
		if !e.ExtensionType.IsDefault() && !listsExtension(leaf.Capabilities, e.ExtensionType) {
			return fmt.Errorf("leaf extension %v not in its capabilities: %w", e.ExtensionType, ErrInvalidLeafNode)
		}
	}
	if !signature {
		return nil
	}
	if err := verifySignature(cs, leaf.SignatureKey, labelLeafNodeTBS, leaf.TBS(groupID, leafIndex), leaf.Signature); err != nil {
		return fmt.Errorf("leaf node: %w", err)
	}
	return nil
}

// verifySignature is VerifyWithLabel over the encoding of v; a signature
// that does not verify wraps ErrBadSignature.
func verifySignature(cs *ciphersuite.Suite, pub []byte, label string, v wire.Encoder, sig []byte) error {
	content, err := wire.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := cs.VerifyWithLabel(pub, label, content, sig); err != nil {
		if errors.Is(err, ciphersuite.ErrInvalidSignature) {
			return fmt.Errorf("%s: %w", label, ErrBadSignature)
		}
		return fmt.Errorf("%s: %w: %v", label, ErrBadSignature, err)
	}
	return nil
}

func listsCredential(c wire.Capabilities, t wire.CredentialType) bool {
	for _, x := range c.Credentials {
		if x == t {
			return true
		}
	}
	return false
}

func listsExtension(c wire.Capabilities, t wire.ExtensionType) bool {
	for _, x := range c.Extensions {
		if x == t {
			return true
		}
	}
	return false
}

func listsProposal(c wire.Capabilities, t wire.ProposalType) bool {
	for _, x := range c.Proposals {
		if x == t {
			return true
		}
	}
	return false
}

// ownCapabilities is what this client advertises in its leaf nodes
// (RFC 9420 §7.2): mls10, every supported cipher suite, the non-default
// extension types it understands or uses, and basic credentials.
func ownCapabilities(cfg *Config, used ...wire.Extensions) wire.Capabilities {
	caps := wire.Capabilities{
		Versions:    []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
		Credentials: []wire.CredentialType{wire.CredentialTypeBasic},
	}
	for _, s := range CipherSuites() {
		caps.CipherSuites = append(caps.CipherSuites, wire.CipherSuite(s))
	}
	add := func(t wire.ExtensionType) {
		if !t.IsDefault() && !listsExtension(caps, t) {
			caps.Extensions = append(caps.Extensions, t)
		}
	}
	add(wire.ExtensionTypeLastResort)
	for _, t := range cfg.supportedExtensions() {
		add(wire.ExtensionType(t))
	}
	for _, list := range used {
		for _, e := range list {
			add(e.ExtensionType)
		}
	}
	return caps
}

// advertisedCapabilities is ownCapabilities with one random GREASE value
// added to each list (RFC 9420 §13.5), so that peers that wrongly reject
// unknown values are found out. Only advertised lists carry GREASE; this
// client's own view of what it supports (ownCapabilities) never does.
func advertisedCapabilities(cfg *Config, used ...wire.Extensions) wire.Capabilities {
	caps := ownCapabilities(cfg, used...)
	var r [4]byte
	if _, err := io.ReadFull(cfg.rand(), r[:]); err != nil {
		return caps
	}
	grease := func(i int) uint16 { return 0x0A0A + uint16(r[i]%15)*0x1010 }
	caps.CipherSuites = append(caps.CipherSuites, wire.CipherSuite(grease(0)))
	caps.Extensions = append(caps.Extensions, wire.ExtensionType(grease(1)))
	caps.Proposals = append(caps.Proposals, wire.ProposalType(grease(2)))
	caps.Credentials = append(caps.Credentials, wire.CredentialType(grease(3)))
	return caps
}

func unixSeconds(t time.Time) uint64 {
	if t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

// Bytes returns the KeyPackage encoded as an MLSMessage, the form to
// publish and to pass to ParseKeyPackage.
func (kp *KeyPackage) Bytes() []byte { return bytes.Clone(kp.bytes) }

// Ref returns the KeyPackageRef (RFC 9420 §5.2): the hash by which a
// Welcome names the KeyPackage.
func (kp *KeyPackage) Ref() []byte { return bytes.Clone(kp.ref) }

// CipherSuite returns the KeyPackage's cipher suite.
func (kp *KeyPackage) CipherSuite() CipherSuite { return CipherSuite(kp.kp.CipherSuite) }

// Identity returns the identity of the leaf's credential.
func (kp *KeyPackage) Identity() []byte { return bytes.Clone(kp.kp.LeafNode.Credential.Identity) }

// SignaturePublicKey returns the owner's public signature key.
func (kp *KeyPackage) SignaturePublicKey() []byte { return bytes.Clone(kp.kp.LeafNode.SignatureKey) }

// LastResort reports whether the KeyPackage is marked as reusable
// (RFC 9420 §16.8).
func (kp *KeyPackage) LastResort() bool { return kp.kp.IsLastResort() }

// Lifetime returns the validity period of the KeyPackage's leaf node.
func (kp *KeyPackage) Lifetime() (notBefore, notAfter time.Time) {
	lt := kp.kp.LeafNode.Lifetime
	return unixTime(lt.NotBefore), unixTime(lt.NotAfter)
}

// Extensions returns the KeyPackage's extensions.
func (kp *KeyPackage) Extensions() []Extension { return fromWireExtensions(kp.kp.Extensions) }

func unixTime(s uint64) time.Time {
	const maxUnix = 1<<63 - 1
	if s > maxUnix {
		s = maxUnix
	}
	return time.Unix(int64(s), 0)
}

// KeyPackage returns the public KeyPackage to publish.
func (p *PrivateKeyPackage) KeyPackage() *KeyPackage { return p.pub }

// Identity returns the identity that signed the KeyPackage.
func (p *PrivateKeyPackage) Identity() *Identity { return p.id }

// Persisted private KeyPackage layout (version 1):
//
//	uint8  kind = kindPrivateKeyPackage
//	uint8  version = 1
//	identity (as in Identity.MarshalBinary, without its header)
//	opaque key_package<V>        (encoded KeyPackage)
//	opaque init_private_key<V>
//	opaque encryption_private_key<V>

// MarshalBinary encodes the KeyPackage with its private keys and identity,
// for storage. Keep the result secret. ParsePrivateKeyPackage reverses it.
func (p *PrivateKeyPackage) MarshalBinary() ([]byte, error) {
	return codec.Marshal(func(b *cryptobyte.Builder) {
		b.AddUint8(kindPrivateKeyPackage)
		b.AddUint8(privateKeyPackageVersion)
		p.id.encode(b)
		codec.AddOpaque(b, p.pub.raw)
		codec.AddOpaque(b, p.initPriv)
		codec.AddOpaque(b, p.encPriv)
	})
}

// ParsePrivateKeyPackage decodes bytes made by
// PrivateKeyPackage.MarshalBinary. Errors wrap ErrCorruptState.
func ParsePrivateKeyPackage(data []byte) (*PrivateKeyPackage, error) {
	var p *PrivateKeyPackage
	err := unmarshalState(data, kindPrivateKeyPackage, privateKeyPackageVersion, "key package", func(s *cryptobyte.String) bool {
		id, ok := decodeIdentity(s)
		if !ok {
			return false
		}
		var raw, initPriv, encPriv []byte
		if !codec.ReadOpaque(s, &raw) || !codec.ReadOpaque(s, &initPriv) || !codec.ReadOpaque(s, &encPriv) {
			return false
		}
		var kp wire.KeyPackage
		if wire.Unmarshal(raw, &kp) != nil || CipherSuite(kp.CipherSuite) != id.suite {
			return false
		}
		pub, err := newKeyPackage(id.cs, kp)
		if err != nil {
			return false
		}
		p = &PrivateKeyPackage{pub: pub, id: id, initPriv: initPriv, encPriv: encPriv}
		return p.consistent() == nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// consistent checks that the private keys match the KeyPackage's public
// keys and identity.
func (p *PrivateKeyPackage) consistent() error {
	cs := p.id.cs
	if pub, err := cs.HPKEPublicKey(p.initPriv); err != nil || !bytes.Equal(pub, p.pub.kp.InitKey) {
		return errors.New("init private key does not match the key package")
	}
	if pub, err := cs.HPKEPublicKey(p.encPriv); err != nil || !bytes.Equal(pub, p.pub.kp.LeafNode.EncryptionKey) {
		return errors.New("encryption private key does not match the leaf node")
	}
	if !bytes.Equal(p.id.pub, p.pub.kp.LeafNode.SignatureKey) {
		return errors.New("identity does not match the leaf node's signature key")
	}
	return nil
}

// Signature and reference labels of RFC 9420 §17.6 and §5.2.
const (
	labelLeafNodeTBS      = "LeafNodeTBS"
	labelKeyPackageTBS    = "KeyPackageTBS"
	labelGroupInfoTBS     = "GroupInfoTBS"
	labelFramedContentTBS = "FramedContentTBS"
	labelKeyPackageRef    = "MLS 1.0 KeyPackage Reference"
	labelProposalRef      = "MLS 1.0 Proposal Reference"
	labelWelcome          = "Welcome"
	labelUpdatePathNode   = "UpdatePathNode"
)
