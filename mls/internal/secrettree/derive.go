package secrettree

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/treemath"
)

// nodeSecret is a tree node secret produced while deriving a path.
type nodeSecret struct {
	node   treemath.NodeIndex
	secret []byte
}

// plan is everything one request derives, computed without touching the
// tree so that a failed request or a failed decryption leaves it unchanged.
// commit applies it; discard zeroes what it derived.
type plan struct {
	leaf treemath.LeafIndex
	typ  RatchetType

	// When the leaf had no ratchets yet: the ancestor whose secret the path
	// derivation consumed, the siblings' secrets to keep, and the new ratchets.
	derivedPath bool
	consumed    treemath.NodeIndex
	siblings    []nodeSecret
	fresh       *leafRatchets

	// A generation behind the ratchet, served from the retained keys.
	hit *retainedKey

	// A generation at or past the ratchet: its new state and skipped keys.
	advanced   bool
	nextSecret []byte
	next       uint64
	skipped    []KeyNonce

	key KeyNonce
}

// stage derives the key of generation gen of leaf's ratchet. With forCommit
// it also derives the ratchet's new state and the skipped keys to retain;
// without, only the key.
func (t *Tree) stage(leaf treemath.LeafIndex, typ RatchetType, gen uint32, forCommit bool) (*plan, error) {
	if typ != Handshake && typ != Application {
		return nil, fmt.Errorf("secret tree: %w: %d", ErrUnknownRatchet, typ)
	}
	if treemath.LeafCount(leaf) >= t.leafCount {
		return nil, fmt.Errorf("secret tree: leaf %d of %d: %w", leaf, t.leafCount, ErrUnknownLeaf)
	}
	p := &plan{leaf: leaf, typ: typ}
	lr := t.leaves[leaf]
	if lr == nil {
		var err error
		if lr, err = t.derivePath(p); err != nil {
			return nil, err
		}
	}
	r := &lr[typ]
	g := uint64(gen)
	if g < r.next {
		k := t.retained[retainedID{leaf, typ, gen}]
		if k == nil {
			t.discard(p)
			return nil, fmt.Errorf("secret tree: leaf %d %s generation %d: %w", leaf, typ, gen, ErrKeyConsumed)
		}
		p.hit = k
		p.key = KeyNonce{Generation: gen, Key: append([]byte(nil), k.key...), Nonce: append([]byte(nil), k.nonce...)}
		return p, nil
	}
	if g-r.next > uint64(t.cfg.MaxForward) {
		t.discard(p)
		return nil, fmt.Errorf("secret tree: leaf %d %s generation %d, ratchet at %d: %w", leaf, typ, gen, r.next, ErrGenerationTooFar)
	}
	if err := t.advance(p, r, gen, forCommit); err != nil {
		t.discard(p)
		return nil, fmt.Errorf("secret tree: leaf %d %s: %w", leaf, typ, err)
	}
	return p, nil
}

// derivePath derives the secrets from the nearest ancestor of leaf that
// still holds one down to the leaf, and the leaf's two ratchets (§9),
// recording them in p. Off-path children are kept for later leaves, except
// those covering only leaves past leafCount, which can never be used.
func (t *Tree) derivePath(p *plan) (*leafRatchets, error) {
	x, _ := treemath.LeafToNode(p.leaf)
	a := x
	for t.nodes[a] == nil {
		up, ok := treemath.Parent(a, t.shape)
		if !ok {
			// Every leaf below leafCount is covered by a node secret or
			// has ratchets; only a corrupted state gets here.
			return nil, fmt.Errorf("secret tree: no secret covers leaf %d", p.leaf)
		}
		a = up
	}
	nh := t.suite.HashSize()
	secret := t.nodes[a]
	owned := false // secret belongs to the tree until we derive below a
	for cur := a; cur != x; {
		l, _ := treemath.Left(cur, t.shape)
		r, _ := treemath.Right(cur, t.shape)
		ls, err := t.suite.ExpandWithLabel(secret, "tree", []byte("left"), nh)
		if err != nil {
			return nil, t.failPath(p, secret, owned, err)
		}
		rs, err := t.suite.ExpandWithLabel(secret, "tree", []byte("right"), nh)
		if err != nil {
			clear(ls)
			return nil, t.failPath(p, secret, owned, err)
		}
		if owned {
			clear(secret)
		}
		if x < cur {
			cur, secret = l, ls
			if first, _, _ := treemath.LeafSpan(r, t.shape); treemath.LeafCount(first) < t.leafCount {
				p.siblings = append(p.siblings, nodeSecret{r, rs})
			} else {
				clear(rs)
			}
		} else {
			cur, secret = r, rs
			p.siblings = append(p.siblings, nodeSecret{l, ls})
		}
		owned = true
	}
	lr := new(leafRatchets)
	var err error
	if lr[Handshake].secret, err = t.suite.ExpandWithLabel(secret, "handshake", nil, nh); err == nil {
		lr[Application].secret, err = t.suite.ExpandWithLabel(secret, "application", nil, nh)
	}
	if owned {
		clear(secret)
	}
	p.derivedPath, p.consumed, p.fresh = true, a, lr
	if err != nil {
		t.discard(p)
		return nil, fmt.Errorf("secret tree: leaf %d ratchets: %w", p.leaf, err)
	}
	return lr, nil
}

func (t *Tree) failPath(p *plan, secret []byte, owned bool, err error) error {
	if owned {
		clear(secret)
	}
	t.discard(p)
	return fmt.Errorf("secret tree: leaf %d path: %w", p.leaf, err)
}

// advance walks r from its next generation to gen (§9.1). The secrets it
// passes are zeroed as it goes; r itself is not modified.
func (t *Tree) advance(p *plan, r *ratchet, gen uint32, forCommit bool) error {
	keepFrom := uint64(gen) // first skipped generation worth retaining
	if forCommit {
		keep := uint64(min(t.cfg.MaxRetainedPerRatchet, t.cfg.MaxRetainedTotal))
		if uint64(gen)-r.next < keep {
			keep = uint64(gen) - r.next
		}
		keepFrom = uint64(gen) - keep
		if keep > 0 {
			p.skipped = make([]KeyNonce, 0, keep)
		}
	}
	secret := r.secret
	owned := false
	release := func() {
		if owned {
			clear(secret)
		}
	}
	for j := r.next; j < uint64(gen); j++ {
		if j >= keepFrom {
			k, err := t.keyNonce(secret, uint32(j))
			if err != nil {
				release()
				return err
			}
			p.skipped = append(p.skipped, k)
		}
		next, err := t.suite.DeriveTreeSecret(secret, "secret", uint32(j), t.suite.HashSize())
		release()
		if err != nil {
			return err
		}
		secret, owned = next, true
	}
	k, err := t.keyNonce(secret, gen)
	if err != nil {
		release()
		return err
	}
	p.key = k
	if forCommit {
		p.advanced = true
		p.next = uint64(gen) + 1
		if p.next < exhausted {
			if p.nextSecret, err = t.suite.DeriveTreeSecret(secret, "secret", gen, t.suite.HashSize()); err != nil {
				release()
				return err
			}
		}
	}
	release()
	return nil
}

// keyNonce derives ratchet_key_[gen] and ratchet_nonce_[gen] from
// ratchet_secret_[gen] (§9.1).
func (t *Tree) keyNonce(secret []byte, gen uint32) (KeyNonce, error) {
	key, err := t.suite.DeriveTreeSecret(secret, "key", gen, t.suite.AEADKeySize())
	if err != nil {
		return KeyNonce{}, err
	}
	nonce, err := t.suite.DeriveTreeSecret(secret, "nonce", gen, t.suite.AEADNonceSize())
	if err != nil {
		clear(key)
		return KeyNonce{}, err
	}
	return KeyNonce{Generation: gen, Key: key, Nonce: nonce}, nil
}

// discard zeroes what p derived for the tree, leaving p.key to the caller.
func (t *Tree) discard(p *plan) {
	for _, s := range p.siblings {
		clear(s.secret)
	}
	if p.fresh != nil {
		for i := range p.fresh {
			clear(p.fresh[i].secret)
		}
	}
	clear(p.nextSecret)
	for i := range p.skipped {
		p.skipped[i].Zero()
	}
}

// commit applies p: the path's parent secret is deleted once its children
// exist, the used key is deleted, and the ratchet moves past it (§9.2).
func (t *Tree) commit(p *plan) {
	if p.derivedPath {
		clear(t.nodes[p.consumed])
		delete(t.nodes, p.consumed)
		for _, s := range p.siblings {
			t.nodes[s.node] = s.secret
		}
		t.leaves[p.leaf] = p.fresh
	}
	if p.hit != nil {
		t.dropRetained(p.hit)
	}
	if p.advanced {
		r := &t.leaves[p.leaf][p.typ]
		clear(r.secret)
		r.secret, r.next = p.nextSecret, p.next
		for _, k := range p.skipped {
			t.retain(p.leaf, p.typ, k)
		}
		t.enforceLimits(r)
	}
}
