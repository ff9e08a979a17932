// Package secrettree is the secret tree of an MLS epoch and the per-sender
// hash ratchets grown from its leaves (RFC 9420 §9, §9.1), with the deletion
// schedule of §9.2, plus the sender-data key and nonce of §6.3.2.
//
// Derivation is lazy: a new tree holds only the encryption_secret at its
// root. The first use of a leaf derives the secrets on the path down to it,
// keeps the secrets of the siblings along that path, and deletes every parent
// whose children now exist, so a tree of many leaves costs memory only for
// the leaves in use. A leaf's secret is replaced by its handshake and
// application ratchets; each ratchet keeps only its next secret and the
// keys it skipped over and may still need for messages that arrive out of
// order, within configurable bounds (Config). A consumed key is removed and
// zeroed at once.
//
// Decryption is two-phase so that a forged message cannot advance a ratchet:
// Open derives the key for a generation without changing the tree and
// commits the consumption only when the caller's AEAD succeeded; Peek and
// Consume are the same split by hand. Every error leaves the tree unchanged.
//
// The nonce reuse guard (§6.3.1) is applied by the caller. A Tree is not safe
// for concurrent use.
package secrettree

import (
	"errors"
	"fmt"
	"math"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/treemath"
)

// RatchetType selects one of the two ratchets of a leaf (RFC 9420 §9).
type RatchetType uint8

const (
	// Handshake is the ratchet for proposals and commits.
	Handshake RatchetType = 0
	// Application is the ratchet for application data.
	Application RatchetType = 1
)

// String names the ratchet as the RFC labels it.
func (r RatchetType) String() string {
	switch r {
	case Handshake:
		return "handshake"
	case Application:
		return "application"
	}
	return fmt.Sprintf("ratchet(%d)", uint8(r))
}

// Defaults for a zero Config.
const (
	// DefaultMaxForward is how many generations past a ratchet's next one a
	// message may be, so a single message costs at most this many ratchet
	// steps.
	DefaultMaxForward = 1000
	// DefaultMaxRetainedPerRatchet bounds the skipped keys one ratchet keeps
	// for late messages.
	DefaultMaxRetainedPerRatchet = 1000
	// DefaultMaxRetainedTotal bounds the skipped keys of the whole tree.
	DefaultMaxRetainedTotal = 10000
)

// Config bounds the out-of-order handling (RFC 9420 §9.2 allows keeping
// unconsumed keys "for some reasonable amount of time"; §15.3).
type Config struct {
	// MaxForward is how far ahead of a ratchet's next generation a
	// requested generation may lie; 0 means DefaultMaxForward.
	MaxForward uint32
	// MaxRetainedPerRatchet is how many skipped keys one ratchet keeps,
	// dropping its oldest first; 0 means the default, negative keeps none.
	MaxRetainedPerRatchet int
	// MaxRetainedTotal is how many skipped keys the tree keeps over all
	// ratchets, dropping the oldest retained first; 0 means the default,
	// negative keeps none.
	MaxRetainedTotal int
}

func (c Config) withDefaults() Config {
	if c.MaxForward == 0 {
		c.MaxForward = DefaultMaxForward
	}
	switch {
	case c.MaxRetainedPerRatchet == 0:
		c.MaxRetainedPerRatchet = DefaultMaxRetainedPerRatchet
	case c.MaxRetainedPerRatchet < 0:
		c.MaxRetainedPerRatchet = 0
	}
	switch {
	case c.MaxRetainedTotal == 0:
		c.MaxRetainedTotal = DefaultMaxRetainedTotal
	case c.MaxRetainedTotal < 0:
		c.MaxRetainedTotal = 0
	}
	return c
}

// Errors callers branch on with errors.Is. None of them changes the tree.
var (
	// ErrGenerationTooFar reports a generation more than Config.MaxForward
	// ahead of the ratchet.
	ErrGenerationTooFar = errors.New("generation too far ahead")
	// ErrKeyConsumed reports a generation behind the ratchet whose key is
	// not retained: it was used already, or dropped from the out-of-order
	// window (RFC 9420 §9.2).
	ErrKeyConsumed = errors.New("key already consumed or no longer retained")
	// ErrUnknownLeaf reports a leaf index outside the tree.
	ErrUnknownLeaf = errors.New("leaf not in the secret tree")
	// ErrUnknownRatchet reports a RatchetType other than Handshake and
	// Application.
	ErrUnknownRatchet = errors.New("unknown ratchet type")
	// ErrRatchetExhausted reports a ratchet that has used all 2^32
	// generations.
	ErrRatchetExhausted = errors.New("ratchet exhausted")
	// ErrRetired reports the use of a tree after Retire.
	ErrRetired = errors.New("secret tree retired")
)

// KeyNonce is the AEAD key and nonce of one ratchet generation
// (RFC 9420 §9.1), before the reuse guard is applied.
type KeyNonce struct {
	Generation uint32
	Key        []byte
	Nonce      []byte
}

// Zero overwrites the key and nonce, for a caller done with them.
func (k *KeyNonce) Zero() {
	clear(k.Key)
	clear(k.Nonce)
}

// exhausted is the value of ratchet.next once generation 2^32-1 is used.
const exhausted = uint64(math.MaxUint32) + 1

// ratchet is one sender ratchet: the secret for generation next, and the
// keys retained for skipped generations below next, oldest first.
type ratchet struct {
	next   uint64 // generation of secret; exhausted when all are used
	secret []byte // ratchet_secret_[next]; nil when exhausted

	oldest, newest *retainedKey // this ratchet's retained keys, ascending generation
	retained       int
}

// leafRatchets are the two ratchets grown from one leaf secret (§9).
type leafRatchets [2]ratchet

// Tree is the secret tree of one epoch with its sender ratchets.
type Tree struct {
	suite     *ciphersuite.Suite
	cfg       Config
	leafCount treemath.LeafCount // leaves in use; indices at or past it are refused
	shape     treemath.LeafCount // FullLeafCount(leafCount): the tree's shape

	// nodes holds the secrets not yet derived further: initially the root
	// only. A leaf's secret is derived from its nearest ancestor here.
	nodes map[treemath.NodeIndex][]byte
	// leaves holds the ratchets of every leaf derived so far.
	leaves map[treemath.LeafIndex]*leafRatchets

	retained       map[retainedID]*retainedKey
	oldest, newest *retainedKey // all retained keys, in the order retained
	retainedCount  int
}

// New starts the secret tree of an epoch from its encryption_secret
// (RFC 9420 §8, §9) for a ratchet tree of leafCount leaves. The tree has the
// shape of the ratchet tree, which §7.7 keeps full; a leafCount that is not a
// power of two is the member span of the full tree of FullLeafCount leaves,
// whose leaves from leafCount on are refused. encryptionSecret is copied; the
// tree consumes it (§9.2), so the caller zeroes its own copy afterwards.
func New(suite *ciphersuite.Suite, encryptionSecret []byte, leafCount treemath.LeafCount, cfg Config) (*Tree, error) {
	if len(encryptionSecret) != suite.HashSize() {
		return nil, fmt.Errorf("secret tree: encryption_secret of %d bytes, want %d", len(encryptionSecret), suite.HashSize())
	}
	t, err := newEmpty(suite, leafCount, cfg)
	if err != nil {
		return nil, err
	}
	root, _ := treemath.Root(t.shape)
	t.nodes[root] = append([]byte(nil), encryptionSecret...)
	return t, nil
}

func newEmpty(suite *ciphersuite.Suite, leafCount treemath.LeafCount, cfg Config) (*Tree, error) {
	shape, ok := treemath.FullLeafCount(leafCount)
	if !ok || leafCount == 0 {
		return nil, fmt.Errorf("secret tree: %d leaves: %w", leafCount, ErrUnknownLeaf)
	}
	return &Tree{
		suite:     suite,
		cfg:       cfg.withDefaults(),
		leafCount: leafCount,
		shape:     shape,
		nodes:     make(map[treemath.NodeIndex][]byte),
		leaves:    make(map[treemath.LeafIndex]*leafRatchets),
		retained:  make(map[retainedID]*retainedKey),
	}, nil
}

// LeafCount is the number of leaves the tree serves.
func (t *Tree) LeafCount() treemath.LeafCount { return t.leafCount }

// Retained is the number of skipped keys currently kept for late messages.
func (t *Tree) Retained() int { return t.retainedCount }

// Retire zeroes every secret and key of the tree, when its epoch ends
// (RFC 9420 §9.2). Every later call reports ErrRetired.
func (t *Tree) Retire() {
	for x, s := range t.nodes {
		clear(s)
		delete(t.nodes, x)
	}
	for l, lr := range t.leaves {
		for i := range lr {
			clear(lr[i].secret)
		}
		delete(t.leaves, l)
	}
	for id, k := range t.retained {
		clear(k.key)
		clear(k.nonce)
		delete(t.retained, id)
	}
	t.nodes, t.leaves, t.retained = nil, nil, nil
	t.oldest, t.newest, t.retainedCount = nil, nil, 0
}

func (t *Tree) retired() bool { return t.nodes == nil }

// NextSendKey returns the key and nonce of the next unused generation of
// leaf's ratchet, for encrypting a message of our own (RFC 9420 §6.3.1), and
// consumes it at once: a key handed out for sending is never handed out
// again, even if the send fails. The caller zeroes it after use.
func (t *Tree) NextSendKey(leaf treemath.LeafIndex, typ RatchetType) (KeyNonce, error) {
	if t.retired() {
		return KeyNonce{}, fmt.Errorf("secret tree: %w", ErrRetired)
	}
	var gen uint64
	if lr := t.leaves[leaf]; lr != nil && int(typ) < len(lr) {
		gen = lr[typ].next
	}
	if gen >= exhausted {
		return KeyNonce{}, fmt.Errorf("secret tree: leaf %d %s: %w", leaf, typ, ErrRatchetExhausted)
	}
	p, err := t.stage(leaf, typ, uint32(gen), true)
	if err != nil {
		return KeyNonce{}, err
	}
	t.commit(p)
	return p.key, nil
}

// Peek returns the key and nonce of generation gen of leaf's ratchet without
// consuming anything: the tree is unchanged, so a message that then fails
// to decrypt costs nothing. Call Consume after a successful decryption, or
// use Open. The caller zeroes the returned copy.
func (t *Tree) Peek(leaf treemath.LeafIndex, typ RatchetType, gen uint32) (KeyNonce, error) {
	if t.retired() {
		return KeyNonce{}, fmt.Errorf("secret tree: %w", ErrRetired)
	}
	p, err := t.stage(leaf, typ, gen, false)
	if err != nil {
		return KeyNonce{}, err
	}
	t.discard(p)
	return p.key, nil
}

// Consume marks generation gen of leaf's ratchet as used (RFC 9420 §9.2):
// its key is deleted, the ratchet moves past it and keeps the keys of
// skipped generations within the Config bounds. It fails, changing nothing,
// for a generation already consumed, dropped or too far ahead.
func (t *Tree) Consume(leaf treemath.LeafIndex, typ RatchetType, gen uint32) error {
	if t.retired() {
		return fmt.Errorf("secret tree: %w", ErrRetired)
	}
	p, err := t.stage(leaf, typ, gen, true)
	if err != nil {
		return err
	}
	t.commit(p)
	p.key.Zero()
	return nil
}

// Open derives the key and nonce of generation gen of leaf's ratchet and
// passes them to decrypt. Only when decrypt returns nil is the generation
// consumed, as Consume; otherwise the tree is unchanged and decrypt's error
// is returned as is. The key is zeroed when decrypt returns, so decrypt must
// not keep it. This is Peek and Consume with one derivation.
func (t *Tree) Open(leaf treemath.LeafIndex, typ RatchetType, gen uint32, decrypt func(KeyNonce) error) error {
	if t.retired() {
		return fmt.Errorf("secret tree: %w", ErrRetired)
	}
	p, err := t.stage(leaf, typ, gen, true)
	if err != nil {
		return err
	}
	defer p.key.Zero()
	if err := decrypt(p.key); err != nil {
		t.discard(p)
		return err
	}
	t.commit(p)
	return nil
}

// SenderDataKeyNonce derives the key and nonce that protect a
// PrivateMessage's sender data (RFC 9420 §6.3.2) from the epoch's
// sender_data_secret and a sample of the content ciphertext: its first
// KDF.Nh bytes, or all of it when shorter.
//
//	sender_data_key   = ExpandWithLabel(sender_data_secret, "key", sample, AEAD.Nk)
//	sender_data_nonce = ExpandWithLabel(sender_data_secret, "nonce", sample, AEAD.Nn)
func SenderDataKeyNonce(suite *ciphersuite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	if len(senderDataSecret) != suite.HashSize() {
		return nil, nil, fmt.Errorf("sender data key: sender_data_secret of %d bytes, want %d", len(senderDataSecret), suite.HashSize())
	}
	sample := ciphertext[:min(len(ciphertext), suite.HashSize())]
	if key, err = suite.ExpandWithLabel(senderDataSecret, "key", sample, suite.AEADKeySize()); err != nil {
		return nil, nil, fmt.Errorf("sender data key: %w", err)
	}
	if nonce, err = suite.ExpandWithLabel(senderDataSecret, "nonce", sample, suite.AEADNonceSize()); err != nil {
		clear(key)
		return nil, nil, fmt.Errorf("sender data nonce: %w", err)
	}
	return key, nonce, nil
}
