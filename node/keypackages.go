package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/dht"
	"github.com/meshchat/meshchat/mls"
)

// keyPackageVerifier is the production dht.KeyPackageVerifier: a KeyPackage
// is valid if mls.ParseKeyPackage accepts it at the given time (RFC 9420
// §10.1: version, suite, leaf node and KeyPackage signatures, lifetime, init
// key distinct from encryption key).
type keyPackageVerifier struct{ cfg *mls.Config }

// VerifyKeyPackage implements dht.KeyPackageVerifier.
func (v keyPackageVerifier) VerifyKeyPackage(raw []byte, now time.Time) ([]byte, error) {
	cfg := *v.cfg
	cfg.Now = func() time.Time { return now }
	kp, err := mls.ParseKeyPackage(raw, &cfg)
	if err != nil {
		return nil, err
	}
	return kp.Identity(), nil
}

// welcomeVerifier is the production dht.WelcomeVerifier: the Welcome must
// decode and name its recipients (RFC 9420 §12.4.3.1).
type welcomeVerifier struct{}

// VerifyWelcome implements dht.WelcomeVerifier.
func (welcomeVerifier) VerifyWelcome(raw []byte) ([][]byte, error) {
	return mls.WelcomeKeyPackageRefs(raw)
}

// loadMLSIdentity loads the node's MLS signature identity from the store, or
// creates one whose basic credential names the node's peer ID. The MLS
// signature key is separate from the libp2p key (the suites sign with their
// own schemes); it is bound to the peer ID because the credential carries
// the peer ID and every KeyPackage is published in a DHT record signed by the
// libp2p key, which the DHT validators check (see "Identity").
func (n *Node) loadMLSIdentity() error {
	var stored []byte
	if err := n.store.View(func(tx Tx) error {
		stored = bytes.Clone(tx.Get(bucketMeta, metaMLSIdentity))
		return nil
	}); err != nil {
		return fmt.Errorf("load MLS identity: %w", err)
	}
	if stored != nil {
		id, err := mls.ParseIdentity(stored)
		clear(stored)
		if err != nil {
			return fmt.Errorf("load MLS identity: %w", err)
		}
		if !bytes.Equal(id.Name(), []byte(n.id)) {
			return fmt.Errorf("load MLS identity: credential names another peer: %w", ErrCorruptStore)
		}
		if id.CipherSuite() != n.cfg.CipherSuite {
			return fmt.Errorf("load MLS identity: stored for suite %v, configured %v", id.CipherSuite(), n.cfg.CipherSuite)
		}
		n.mlsID = id
		return nil
	}
	id, err := mls.NewIdentity(n.cfg.CipherSuite, []byte(n.id), n.mlsCfg)
	if err != nil {
		return fmt.Errorf("create MLS identity: %w", err)
	}
	enc, err := id.MarshalBinary()
	if err != nil {
		return fmt.Errorf("create MLS identity: %w", err)
	}
	defer clear(enc)
	if err := n.store.Update(func(tx Tx) error { return tx.Put(bucketMeta, metaMLSIdentity, enc) }); err != nil {
		return fmt.Errorf("store MLS identity: %w", err)
	}
	n.mlsID = id
	return nil
}

// ownKeyPackage is a KeyPackage of this node with its private keys.
type ownKeyPackage struct {
	ref     []byte
	kind    keyPackageKind
	created time.Time
	priv    *mls.PrivateKeyPackage
}

// loadKeyPackages reads the stored private KeyPackages, dropping join
// KeyPackages past joinKeyPackageTTL and any that no longer parse.
func (n *Node) loadKeyPackages() error {
	var drop [][]byte
	err := n.store.View(func(tx Tx) error {
		return tx.ForEach(bucketKeyPackages, nil, func(k, v []byte) error {
			rec, err := parseKeyPackageRecord(v)
			if err != nil {
				n.log.Warn("dropping corrupt KeyPackage record", "err", err)
				drop = append(drop, bytes.Clone(k))
				return nil
			}
			priv, err := mls.ParsePrivateKeyPackage(rec.Private)
			if err != nil || !bytes.Equal(priv.KeyPackage().Ref(), k) {
				n.log.Warn("dropping unreadable KeyPackage", "err", err)
				drop = append(drop, bytes.Clone(k))
				return nil
			}
			if rec.Kind == kpJoin && time.Since(rec.Created) > joinKeyPackageTTL {
				drop = append(drop, bytes.Clone(k))
				return nil
			}
			n.kps[string(k)] = &ownKeyPackage{ref: bytes.Clone(k), kind: rec.Kind, created: rec.Created, priv: priv}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load KeyPackages: %w", err)
	}
	if len(drop) > 0 {
		return n.store.Update(func(tx Tx) error {
			for _, k := range drop {
				if err := tx.Delete(bucketKeyPackages, k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return nil
}

// newKeyPackage creates and persists a KeyPackage of the given kind. The
// caller holds kpMu.
func (n *Node) newKeyPackage(kind keyPackageKind) (*ownKeyPackage, error) {
	priv, err := mls.NewKeyPackage(n.mlsID, n.mlsCfg, &mls.KeyPackageOptions{LastResort: kind == kpLastResort})
	if err != nil {
		return nil, fmt.Errorf("new KeyPackage: %w", err)
	}
	enc, err := priv.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("new KeyPackage: %w", err)
	}
	defer clear(enc)
	kp := &ownKeyPackage{ref: priv.KeyPackage().Ref(), kind: kind, created: time.Now(), priv: priv}
	rec, err := (&keyPackageRecord{Kind: kind, Created: kp.created, Private: enc}).marshal()
	if err != nil {
		return nil, fmt.Errorf("new KeyPackage: %w", err)
	}
	defer clear(rec)
	if err := n.store.Update(func(tx Tx) error { return tx.Put(bucketKeyPackages, kp.ref, rec) }); err != nil {
		return nil, fmt.Errorf("store KeyPackage: %w", err)
	}
	n.kps[string(kp.ref)] = kp
	return kp, nil
}

// storeKeyPackageLocked rewrites kp's record with a new kind and creation
// time. The caller holds kpMu.
func (n *Node) storeKeyPackageLocked(kp *ownKeyPackage, kind keyPackageKind, created time.Time) error {
	enc, err := kp.priv.MarshalBinary()
	if err != nil {
		return err
	}
	defer clear(enc)
	rec, err := (&keyPackageRecord{Kind: kind, Created: created, Private: enc}).marshal()
	if err != nil {
		return err
	}
	defer clear(rec)
	if err := n.store.Update(func(tx Tx) error { return tx.Put(bucketKeyPackages, kp.ref, rec) }); err != nil {
		return err
	}
	kp.kind, kp.created = kind, created
	return nil
}

// ensureBundle makes sure the node holds cfg.KeyPackages unexpired one-time
// KeyPackages and one last-resort KeyPackage, creating and persisting the
// missing ones (before anything is published).
func (n *Node) ensureBundle() error {
	n.kpMu.Lock()
	defer n.kpMu.Unlock()
	oneTime, lastResort := 0, 0
	for _, kp := range n.kps {
		switch kp.kind {
		case kpOneTime:
			oneTime++
		case kpLastResort:
			lastResort++
		}
	}
	for ; oneTime < n.cfg.KeyPackages; oneTime++ {
		if _, err := n.newKeyPackage(kpOneTime); err != nil {
			return err
		}
	}
	if lastResort == 0 {
		if _, err := n.newKeyPackage(kpLastResort); err != nil {
			return err
		}
	}
	return nil
}

// renewKeyPackages retires bundle KeyPackages whose lifetime ends within
// keyPackageRenew (their private keys are kept for a while in case a
// Welcome made with them is still on its way) and creates replacements.
func (n *Node) renewKeyPackages() {
	n.kpMu.Lock()
	now := time.Now()
	var retire [][]byte
	for ref, kp := range n.kps {
		_, notAfter := kp.priv.KeyPackage().Lifetime()
		if kp.kind != kpJoin && notAfter.Sub(now) < keyPackageRenew {
			// Kept like a join KeyPackage (private part only, out of
			// the bundle) for Welcomes still on their way.
			if err := n.storeKeyPackageLocked(kp, kpJoin, now); err != nil {
				n.log.Warn("retire KeyPackage", "err", err)
				continue
			}
			retire = append(retire, []byte(ref))
		}
		if kp.kind == kpJoin && now.Sub(kp.created) > joinKeyPackageTTL {
			delete(n.kps, ref)
			_ = n.store.Update(func(tx Tx) error { return tx.Delete(bucketKeyPackages, []byte(ref)) })
		}
	}
	n.kpMu.Unlock()
	if len(retire) > 0 {
		if err := n.ensureBundle(); err != nil {
			n.log.Warn("renew KeyPackages", "err", err)
		}
	}
}

// bundleEntries lists the KeyPackages to publish, one-time ones first.
func (n *Node) bundleEntries() []dht.KeyPackage {
	n.kpMu.Lock()
	defer n.kpMu.Unlock()
	var out []dht.KeyPackage
	var last *dht.KeyPackage
	for _, kp := range n.kps {
		switch kp.kind {
		case kpOneTime:
			out = append(out, dht.KeyPackage{Data: kp.priv.KeyPackage().Bytes()})
		case kpLastResort:
			if last == nil {
				last = &dht.KeyPackage{Data: kp.priv.KeyPackage().Bytes(), LastResort: true}
			}
		}
	}
	if len(out) > dht.MaxBundleKeyPackages-1 {
		out = out[:dht.MaxBundleKeyPackages-1]
	}
	if last != nil {
		out = append(out, *last)
	}
	return out
}

// publishBundle publishes the current bundle to the DHT. Failing to reach
// peers is logged: the bundle is still served by this node and published
// again by the maintenance loop.
func (n *Node) publishBundle(ctx context.Context) {
	entries := n.bundleEntries()
	if _, err := n.dir.PublishKeyPackages(ctx, entries); err != nil {
		n.log.Debug("publish KeyPackages", "err", err)
	}
}

// newJoinKeyPackage creates a KeyPackage for a join request.
func (n *Node) newJoinKeyPackage() (*ownKeyPackage, error) {
	n.kpMu.Lock()
	defer n.kpMu.Unlock()
	return n.newKeyPackage(kpJoin)
}

// matchKeyPackages returns the private KeyPackages among refs.
func (n *Node) matchKeyPackages(refs [][]byte) []*ownKeyPackage {
	n.kpMu.Lock()
	defer n.kpMu.Unlock()
	var out []*ownKeyPackage
	for _, r := range refs {
		if kp, ok := n.kps[string(r)]; ok {
			out = append(out, kp)
		}
	}
	return out
}

// consumeKeyPackages deletes the one-time and join KeyPackages a Welcome
// used (RFC 9420 §16.8: a KeyPackage is used once; the last-resort one is
// kept), creates replacements for one-time ones, and republishes the bundle
// without the used ones in the background.
func (n *Node) consumeKeyPackages(used []*ownKeyPackage) {
	n.kpMu.Lock()
	var usedBytes [][]byte
	replace := 0
	for _, kp := range used {
		if kp.kind == kpLastResort {
			continue
		}
		if kp.kind == kpOneTime {
			replace++
			usedBytes = append(usedBytes, kp.priv.KeyPackage().Bytes())
		}
		delete(n.kps, string(kp.ref))
		if err := n.store.Update(func(tx Tx) error { return tx.Delete(bucketKeyPackages, kp.ref) }); err != nil {
			n.log.Warn("delete used KeyPackage", "err", err)
		}
	}
	var fresh []dht.KeyPackage
	for range replace {
		kp, err := n.newKeyPackage(kpOneTime)
		if err != nil {
			n.log.Warn("replace used KeyPackage", "err", err)
			break
		}
		fresh = append(fresh, dht.KeyPackage{Data: kp.priv.KeyPackage().Bytes()})
	}
	n.kpMu.Unlock()
	if len(usedBytes) == 0 && len(fresh) == 0 {
		return
	}
	n.spawn(func() {
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		defer cancel()
		if _, err := n.dir.RemoveKeyPackages(ctx, usedBytes, fresh); err != nil {
			if errors.Is(err, dht.ErrNothingPublished) {
				n.publishBundle(ctx)
				return
			}
			n.log.Debug("republish KeyPackages", "err", err)
		}
	})
}

// mailboxRefs lists the refs of every KeyPackage a Welcome may be waiting
// for.
func (n *Node) mailboxRefs() [][]byte {
	n.kpMu.Lock()
	defer n.kpMu.Unlock()
	refs := make([][]byte, 0, len(n.kps))
	for _, kp := range n.kps {
		refs = append(refs, kp.ref)
	}
	return refs
}

// checkMailbox looks for Welcomes filed under this node's KeyPackageRefs and
// joins the groups they are for.
func (n *Node) checkMailbox(ctx context.Context) {
	refs := n.mailboxRefs()
	if len(refs) == 0 {
		return
	}
	found, err := n.dir.CheckMailbox(ctx, refs)
	if err != nil {
		n.log.Debug("check mailbox", "err", err)
	}
	for _, w := range found {
		if _, err := n.acceptWelcome(w.Data, "mailbox"); err != nil {
			n.log.Debug("mailbox Welcome", "err", err)
		}
	}
}

// lookupKeyPackage fetches id's bundle and picks a KeyPackage to add it
// with: a one-time KeyPackage not in avoid, chosen at random so that two
// members adding the same peer to different groups rarely pick the same one,
// else the last-resort one. The chosen one is parsed and checked by mls.
func (n *Node) lookupKeyPackage(ctx context.Context, id peer.ID, suite mls.CipherSuite, avoid func(ref []byte) bool) (*mls.KeyPackage, error) {
	b, err := n.dir.LookupKeyPackages(ctx, id)
	if err != nil {
		return nil, err
	}
	var last *mls.KeyPackage
	var oneTime []*mls.KeyPackage
	for _, e := range b.KeyPackages {
		kp, err := mls.ParseKeyPackage(e.Data, n.mlsCfg)
		if err != nil || kp.CipherSuite() != suite || !bytes.Equal(kp.Identity(), []byte(id)) {
			continue
		}
		if e.LastResort {
			last = kp
			continue
		}
		if !avoid(kp.Ref()) {
			oneTime = append(oneTime, kp)
		}
	}
	if len(oneTime) > 0 {
		return oneTime[rand.IntN(len(oneTime))], nil
	}
	if last != nil {
		return last, nil
	}
	return nil, fmt.Errorf("KeyPackages of %s: none usable for suite %v: %w", id, suite, dht.ErrNotFound)
}
