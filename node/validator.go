package node

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
)

// retainedEpochs is how many past epochs of application messages the
// validator lets through; it matches mls.Config.RetainedEpochs' default.
const retainedEpochs = 3

// retainedCommitEpochs is how far behind the current epoch a commit on a
// state the node does not hold is still let through: a competing branch
// that split that many epochs ago can still converge (commitorder rule 7).
const retainedCommitEpochs = 64

// errReject is wrapped by validator verdicts that reject.
var errReject = errors.New("rejected")

// unverifiable wraps gossip.ErrUnverifiable: the message is ignored, not
// held against the peer that forwarded it.
func unverifiable(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), gossip.ErrUnverifiable)
}

func reject(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errReject)
}

// CheckMessage implements gossip.MessageChecker for the group's topic. It
// runs before a message is delivered to this node or forwarded, on every
// node of the topic, and decides:
//
//   - own messages being published: accept;
//   - a join request envelope: accept if it decodes strictly, names this
//     topic and carries a KeyPackage mls accepts (RFC 9420 §10.1); else
//     reject;
//   - a Welcome: accept if it decodes (its group cannot be checked: the
//     GroupInfo is encrypted);
//   - a PublicMessage or PrivateMessage for another group ID, with
//     application data in a PublicMessage, or without the node's metadata
//     in its authenticated_data: reject;
//   - while this node is still joining (no state): accept messages whose
//     group ID hashes to this topic ID (they are kept until the Welcome
//     arrives), reject others; after it was removed: ignore;
//   - a PrivateMessage: application data of the current epoch, the next
//     one (its commit may still be on its way) or a retained past one is
//     accepted (it cannot be opened without consuming keys); other epochs
//     are ignored; handshake messages of the current or next epoch are
//     accepted;
//   - a PublicMessage proposal of the next epoch is accepted (to be
//     buffered); of the epoch of a state the commit tracker holds (the
//     current one, or one kept for the settle window) it is checked on a
//     copy of each such state: accepted if one takes it, rejected if
//     malformed; if it fails otherwise it is accepted unverified when of
//     the current epoch (it may belong to a competing state of this epoch
//     whose commit is still on its way, and a commit that wins may
//     reference it; the receive loop keeps it until the next change of
//     state) and ignored when older; of another epoch ignored;
//   - a PublicMessage commit made on a state the commit tracker holds (the
//     current one, or one kept for the settle window) is processed by mls
//     on that state (signature, membership tag, every RFC 9420 §12.4.2
//     check) and rejected if it fails, accepted unverified if it references
//     a proposal not received yet (the tracker keeps it until the proposal
//     arrives: GossipSub does not order messages of different senders);
//     one made on a state not held is
//     accepted unverified if its epoch is within retainedCommitEpochs
//     before or one after the current one (the tracker buffers it, bounded)
//     and ignored otherwise;
//   - anything else (GroupInfo, KeyPackage, other wire formats, bytes that
//     are not an MLSMessage): reject.
func (g *Group) CheckMessage(data []byte) error {
	err := g.checkMessage(data)
	if err != nil {
		g.n.log.Debug("topic validator", "group", g.topicID, "verdict", err)
	}
	return err
}

func (g *Group) checkMessage(data []byte) error {
	hash := sha256.Sum256(data)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.own[hash] > 0 {
		return nil
	}
	if isEnvelope(data) {
		jr, err := parseJoinRequest(data)
		if err != nil {
			return reject("join request: %v", err)
		}
		if jr.Topic != g.topicID {
			return reject("join request for topic %s", jr.Topic)
		}
		if _, err := mls.ParseKeyPackage(jr.KeyPackage, g.n.mlsCfg); err != nil {
			return reject("join request: %v", err)
		}
		return nil
	}
	info, err := mls.Inspect(data)
	if err != nil {
		return reject("%v", err)
	}
	switch info.WireFormat {
	case mls.WireFormatWelcome:
		if _, err := mls.WelcomeKeyPackageRefs(data); err != nil {
			return reject("welcome: %v", err)
		}
		return nil
	case mls.WireFormatPublicMessage, mls.WireFormatPrivateMessage:
	default:
		return reject("%v on a group topic", info.WireFormat)
	}
	h := headerOf(info)
	if g.state == nil && g.join != nil {
		// Joining: the group ID is not known yet, but the topic ID is
		// its hash. Messages of the group are kept until the Welcome
		// arrives (members may send right after the commit that adds
		// us, before the Welcome reaches us).
		if gossip.TopicIDForGroup(info.GroupID) != g.topicID {
			return reject("message for another group")
		}
		return nil
	}
	if g.state == nil || g.removed {
		return unverifiable("no group state")
	}
	if !bytes.Equal(info.GroupID, g.groupID) {
		return reject("message for another group")
	}
	epoch := g.state.Epoch()
	if info.WireFormat == mls.WireFormatPrivateMessage {
		if info.Kind == mls.ApplicationMessage {
			if _, err := parseAppMeta(h.AuthenticatedData); err != nil {
				return reject("application message: %v", err)
			}
			if info.Epoch > epoch+1 || info.Epoch+retainedEpochs < epoch {
				return unverifiable("application message of epoch %d, group at %d", info.Epoch, epoch)
			}
			return nil
		}
		if info.Epoch != epoch && info.Epoch != epoch+1 {
			return unverifiable("handshake message of epoch %d, group at %d", info.Epoch, epoch)
		}
		return nil
	}
	// PublicMessage.
	if info.Kind == mls.ApplicationMessage {
		return reject("application data in a PublicMessage")
	}
	var meta *commitMeta
	if info.Kind == mls.CommitMessage {
		if meta, err = parseCommitMeta(h.AuthenticatedData); err != nil {
			return reject("commit: %v", err)
		}
		if err := meta.checkSender(h); err != nil {
			return reject("commit: %v", err)
		}
	}
	if info.Kind == mls.ProposalMessage {
		if info.Epoch == epoch+1 {
			return nil
		}
		return g.checkProposalLocked(data, info.Epoch)
	}
	// A commit: judged on the state it claims to be made on, if the
	// tracker holds it (the current state, or one kept for the settle
	// window: a competing commit of an epoch we already left).
	held, ok := g.tracker.State(meta.Parent)
	if !ok {
		// Made on a state we do not hold: a commit of the next epoch
		// (its parent's commit may still be on its way) or of a
		// competing branch. It cannot be verified here; the tracker
		// keeps a bounded number of such commits, and commits on
		// branches that are far behind or ahead are ignored.
		if info.Epoch+uint64(retainedCommitEpochs) < epoch || info.Epoch > epoch+1 {
			return unverifiable("commit of epoch %d on an unknown state, group at %d", info.Epoch, epoch)
		}
		return nil
	}
	base := held.(*mlsState)
	if oc := g.ownCommits[hash]; oc != nil && oc.base == base.id {
		return nil
	}
	r, err := base.st.ProcessMessage(data)
	switch {
	case err == nil:
	case errors.Is(err, mls.ErrOwnMessage):
		return nil
	case errors.Is(err, mls.ErrUnknownProposal):
		// Its proposals may still be on their way: the tracker keeps the
		// commit (Waiting) until they arrive.
		return nil
	case errors.Is(err, mls.ErrWrongEpoch), errors.Is(err, mls.ErrMissingPSK):
		return unverifiable("commit: %v", err)
	default:
		return reject("commit: %v", err)
	}
	g.rememberValidatedLocked(base.id, hash, r)
	return nil
}

// checkProposalLocked verifies a PublicMessage proposal of the given epoch
// on a copy of each held state of that epoch (processing a proposal caches
// it): a proposal carries no claim of the state it was made on, and it may
// belong to a state kept for the settle window, where a commit waits for it.
func (g *Group) checkProposalLocked(data []byte, epoch uint64) error {
	verdict := unverifiable("proposal of epoch %d, group at %d", epoch, g.state.Epoch())
	for _, s := range g.tracker.Held() {
		ms, ok := s.(*mlsState)
		if !ok || ms.Epoch() != epoch {
			continue
		}
		enc, err := ms.st.MarshalBinary()
		if err != nil {
			return unverifiable("copy state: %v", err)
		}
		cp, err := mls.LoadGroup(enc, g.n.mlsCfg)
		clear(enc)
		if err != nil {
			return unverifiable("copy state: %v", err)
		}
		_, err = cp.ProcessMessage(data)
		switch {
		case err == nil, errors.Is(err, mls.ErrOwnMessage):
			return nil
		case errors.Is(err, mls.ErrMalformed), errors.Is(err, mls.ErrWrongGroup):
			return reject("proposal: %v", err)
		}
		verdict = unverifiable("proposal: %v", err)
	}
	if epoch == g.state.Epoch() {
		// It may come from a competing state of this epoch that we do
		// not know yet: its commit may still be on its way.
		return nil
	}
	return verdict
}

// rememberValidatedLocked keeps a verified commit for the receive loop.
func (g *Group) rememberValidatedLocked(base commitorder.StateID, hash [32]byte, r *mls.Received) {
	now := time.Now()
	if len(g.validated) >= maxValidated {
		var oldest [32]byte
		first := true
		var at time.Time
		for k, v := range g.validated {
			if first || v.at.Before(at) {
				oldest, at, first = k, v.at, false
			}
		}
		delete(g.validated, oldest)
	}
	g.validated[hash] = &validatedCommit{base: base, r: r, at: now}
}
