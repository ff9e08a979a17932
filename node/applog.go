package node

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
)

// The application log keeps the application messages (PrivateMessage bytes
// exactly as published) that this node sent or opened, so that members can
// serve them on syncProtocol to a member that missed them (anti-entropy:
// GossipSub delivers nothing to a subscription it does not know yet).

// bucketAppLog holds the application log: key groupKey(group ID) || uint64
// epoch || 8 bytes of the message's SHA-256 (the handshake log's layout),
// value the PrivateMessage exactly as published.
const bucketAppLog = "applog"

const (
	// defaultAppLogLimit bounds a group's application log entries; the
	// oldest (lowest epoch) are dropped first.
	defaultAppLogLimit = 4096
	// appLogTrim is how many entries below the limit a trim goes, so that
	// the log is scanned once per appLogTrim messages, not per message.
	appLogTrim = 256
	// maxSyncHave bounds the hash prefixes a sync request lists.
	maxSyncHave = 2048
	// maxUnusable bounds the remembered hashes of log entries that will
	// never be used here.
	maxUnusable = 512
)

// logHash is the 8-byte hash prefix that ends a log key.
type logHash [8]byte

// logKeyParts splits a handshake or application log key of the group with
// the given prefix into its epoch and hash prefix.
func logKeyParts(prefix, key []byte) (uint64, logHash, bool) {
	var h logHash
	if len(key) != len(prefix)+16 || !bytes.HasPrefix(key, prefix) {
		return 0, h, false
	}
	copy(h[:], key[len(prefix)+8:])
	return binary.BigEndian.Uint64(key[len(prefix):]), h, true
}

// hashOf returns the log hash prefix of a message.
func hashOf(groupID []byte, data []byte) logHash {
	var h logHash
	k := handshakeKey(groupID, 0, data)
	copy(h[:], k[len(k)-8:])
	return h
}

// logApplicationLocked adds an application message of the given epoch to
// the application log (in tx if given) and trims the log to its limit.
func (g *Group) logApplicationLocked(tx Tx, epoch uint64, data []byte) error {
	if tx == nil {
		return g.n.store.Update(func(tx Tx) error { return g.logApplicationLocked(tx, epoch, data) })
	}
	prefix := groupKey(g.groupID)
	if g.appLogLen < 0 {
		g.appLogLen = 0
		if err := tx.ForEach(bucketAppLog, prefix, func(_, _ []byte) error {
			g.appLogLen++
			return nil
		}); err != nil {
			return err
		}
	}
	key := handshakeKey(g.groupID, epoch, data)
	if tx.Get(bucketAppLog, key) != nil {
		return nil
	}
	if err := tx.Put(bucketAppLog, key, data); err != nil {
		return err
	}
	g.appLogLen++
	limit := g.n.cfg.appLogLimit
	if g.appLogLen <= limit {
		return nil
	}
	var keys [][]byte
	if err := tx.ForEach(bucketAppLog, prefix, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	drop := len(keys) - max(limit-appLogTrim, limit/2)
	for _, k := range keys[:max(drop, 0)] {
		if err := tx.Delete(bucketAppLog, k); err != nil {
			return err
		}
	}
	g.appLogLen = len(keys) - max(drop, 0)
	return nil
}

// pruneLogBelow deletes the entries of a log bucket of one group whose
// epoch is below limit and returns how many it deleted.
func pruneLogBelow(tx Tx, bucket string, prefix []byte, limit uint64) (int, error) {
	var old [][]byte
	if err := tx.ForEach(bucket, prefix, func(k, _ []byte) error {
		if e, _, ok := logKeyParts(prefix, k); ok && e < limit {
			old = append(old, bytes.Clone(k))
			return nil
		}
		return errStopIteration // keys are in epoch order
	}); err != nil && !errors.Is(err, errStopIteration) {
		return 0, err
	}
	for _, k := range old {
		if err := tx.Delete(bucket, k); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// rememberUnusableLocked notes a log entry received that will never be
// used here: an application message that can never be opened (its key was
// consumed, it is our own, its branch lost, its epoch is gone), or, if
// handshake is set, a commit that lost its epoch, is invalid or waits for
// a parent (an orphan the tracker keeps), or a proposal no held state
// accepts. Sync requests list it, so that members stop serving it (and an
// orphan of a losing branch, served again, does not ask for yet another
// sync). Each set is bounded; the lowest epochs go first.
func (g *Group) rememberUnusableLocked(epoch uint64, data []byte, handshake bool) {
	if g.groupID == nil {
		return
	}
	set := g.unusable
	if handshake {
		set = g.unusableHandshake
	}
	if len(set) >= maxUnusable {
		var low logHash
		first := true
		var lowEpoch uint64
		for h, e := range set {
			if first || e < lowEpoch {
				low, lowEpoch, first = h, e, false
			}
		}
		delete(set, low)
	}
	set[hashOf(g.groupID, data)] = epoch
}

// haveList builds the hash prefixes a sync request lists: the entries of
// the handshake log (and extraHandshake, the unusable commits and
// proposals) from since on, the newest maxSyncHave of them, then the
// application messages of the application log (and extra, the unopenable
// ones) from messagesSince on,
// newest epochs first, whole epochs while they fit in maxSyncHave. It
// returns the sorted list and the epoch from which application messages
// are to be served, raised above the epochs that did not fit: their
// messages are not asked for. If not even the newest epoch fits, part of it
// is listed and the rest may be served again (and dropped as duplicates).
func haveList(tx Tx, groupID []byte, since, messagesSince uint64, extraHandshake, extra map[logHash]uint64) ([]logHash, uint64, error) {
	type entry struct {
		epoch uint64
		h     logHash
	}
	prefix := groupKey(groupID)
	var handshake []entry
	from := binary.BigEndian.AppendUint64(bytes.Clone(prefix), since)
	if err := tx.ForEach(bucketHandshake, prefix, func(k, _ []byte) error {
		if bytes.Compare(k, from) < 0 {
			return nil
		}
		if e, h, ok := logKeyParts(prefix, k); ok {
			handshake = append(handshake, entry{e, h})
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	for h, e := range extraHandshake {
		if e >= since {
			handshake = append(handshake, entry{e, h})
		}
	}
	slices.SortStableFunc(handshake, func(a, b entry) int { return cmp.Compare(a.epoch, b.epoch) })
	if len(handshake) > maxSyncHave {
		handshake = handshake[len(handshake)-maxSyncHave:] // the newest
	}
	have := make([]logHash, 0, len(handshake))
	for _, e := range handshake {
		have = append(have, e.h)
	}
	var apps []entry
	from = binary.BigEndian.AppendUint64(bytes.Clone(prefix), messagesSince)
	if err := tx.ForEach(bucketAppLog, prefix, func(k, _ []byte) error {
		if bytes.Compare(k, from) < 0 {
			return nil
		}
		if e, h, ok := logKeyParts(prefix, k); ok {
			apps = append(apps, entry{e, h})
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	for h, e := range extra {
		if e >= messagesSince {
			apps = append(apps, entry{e, h})
		}
	}
	slices.SortFunc(apps, func(a, b entry) int { return cmp.Compare(a.epoch, b.epoch) })
	room := maxSyncHave - len(have)
	end := len(apps)
	for end > 0 {
		epoch := apps[end-1].epoch
		start := end
		for start > 0 && apps[start-1].epoch == epoch {
			start--
		}
		n := end - start
		if n > room {
			if end == len(apps) {
				// Not even the newest epoch fits: list part of it.
				for _, a := range apps[start : start+room] {
					have = append(have, a.h)
				}
				messagesSince = epoch
			} else {
				messagesSince = epoch + 1
			}
			break
		}
		for _, a := range apps[start:end] {
			have = append(have, a.h)
		}
		room -= n
		end = start
	}
	slices.SortFunc(have, func(a, b logHash) int { return bytes.Compare(a[:], b[:]) })
	have = slices.Compact(have)
	return have, messagesSince, nil
}

// syncEntry is one log entry chosen for a sync response.
type syncEntry struct {
	epoch    uint64
	seq      uint64 // application messages: the sender's sequence number
	proposal bool   // handshake log: a proposal, not a commit
	data     []byte
}

// isProposal reports whether a handshake log entry is a PublicMessage
// proposal (the rest of the log is commits).
func isProposal(data []byte) bool {
	h, err := peekMessage(data)
	return err == nil && h.WireFormat == wireFormatPublicMessage && h.ContentType == contentTypeProposal
}

// appSeq reads the sender's sequence number of an application message from
// its ApplicationMeta, which travels in clear in the authenticated_data; 0
// if it does not decode.
func appSeq(data []byte) uint64 {
	h, err := peekMessage(data)
	if err != nil {
		return 0
	}
	meta, err := parseAppMeta(h.AuthenticatedData)
	if err != nil {
		return 0
	}
	return meta.Seq
}

// readSyncLog chooses what a sync response serves: the entries of the
// handshake log (commits and proposals) from req.Since on and the
// application messages of the application log from req.MessagesSince on,
// except those whose hash prefix req.Have lists, in epoch order, at most
// maxSyncCommits entries and maxSyncResponse/2 bytes. Within an epoch,
// application messages go first (so that an asker opens them while it is
// still in that epoch), in the order of their senders' sequence numbers
// (ApplicationMeta.seq, in clear), so each sender's messages arrive in the
// order it sent them; then the epoch's proposals, then its commits (so that
// a commit finds the proposals it references).
// A response cut short ends where the first entry left out would have
// been, so that the asker never moves past messages it was not served; if
// the handshake log is cut inside an epoch, that epoch's commits are left
// out too (one of its proposals may be missing), unless they are all the
// response would hold.
func readSyncLog(tx Tx, groupID []byte, req *syncRequest) ([][]byte, error) {
	prefix := groupKey(groupID)
	read := func(bucket string, since uint64) ([]syncEntry, uint64, bool, error) {
		from := binary.BigEndian.AppendUint64(bytes.Clone(prefix), since)
		var out []syncEntry
		size := 0
		cut, cutAt := false, uint64(0)
		err := tx.ForEach(bucket, prefix, func(k, v []byte) error {
			if bytes.Compare(k, from) < 0 {
				return nil
			}
			e, h, ok := logKeyParts(prefix, k)
			if !ok {
				return nil
			}
			if _, listed := slices.BinarySearchFunc(req.Have, h, func(a, b logHash) int { return bytes.Compare(a[:], b[:]) }); listed {
				return nil
			}
			if len(out) >= maxSyncCommits || size+len(v)+3 > maxSyncResponse/2 {
				cut, cutAt = true, e
				return errStopIteration
			}
			out = append(out, syncEntry{epoch: e, data: bytes.Clone(v)})
			size += len(v) + 3
			return nil
		})
		if err != nil && !errors.Is(err, errStopIteration) {
			return nil, 0, false, err
		}
		return out, cutAt, cut, nil
	}
	commits, commitCut, commitsCut, err := read(bucketHandshake, req.Since)
	if err != nil {
		return nil, err
	}
	for i := range commits {
		commits[i].proposal = isProposal(commits[i].data)
	}
	slices.SortStableFunc(commits, func(a, b syncEntry) int {
		// Keys are in epoch order; within an epoch, proposals first.
		if c := cmp.Compare(a.epoch, b.epoch); c != 0 {
			return c
		}
		switch {
		case a.proposal == b.proposal:
			return 0
		case a.proposal:
			return -1
		}
		return 1
	})
	if commitsCut {
		// Proposals of the cut epoch may be missing: leave its commits
		// for the next response, unless nothing else would be served.
		kept := slices.DeleteFunc(slices.Clone(commits), func(e syncEntry) bool {
			return e.epoch == commitCut && !e.proposal
		})
		if len(kept) > 0 {
			commits = kept
		}
	}
	apps, appCut, appsCut, err := read(bucketAppLog, req.MessagesSince)
	if err != nil {
		return nil, err
	}
	for i := range apps {
		apps[i].seq = appSeq(apps[i].data)
	}
	slices.SortStableFunc(apps, func(a, b syncEntry) int {
		return cmp.Or(cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.seq, b.seq))
	})
	var out [][]byte
	size := 0
	for len(commits) > 0 || len(apps) > 0 {
		var next syncEntry
		takeApp := len(apps) > 0 && (len(commits) == 0 || apps[0].epoch <= commits[0].epoch)
		if takeApp {
			next = apps[0]
			if commitsCut && next.epoch > commitCut {
				break // a commit of an earlier epoch was left out
			}
		} else {
			next = commits[0]
			if appsCut && next.epoch >= appCut {
				break // application messages of this epoch were left out
			}
		}
		if len(out) >= maxSyncCommits || size+len(next.data)+3 > maxSyncResponse/2 {
			break
		}
		out = append(out, next.data)
		size += len(next.data) + 3
		if takeApp {
			apps = apps[1:]
		} else {
			commits = commits[1:]
		}
	}
	return out, nil
}
