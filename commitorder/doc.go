// Package commitorder decides which commit wins each epoch of an MLS group
// that has no server to order its commits, and what a member must send again
// when the branch it was on loses. It is pure logic: no network, no MLS code,
// no clock and no goroutines of its own. The node feeds it commits,
// proposals and the time, and does what each Decision says.
//
// # The rule
//
// RFC 9420 §14 asks every application to resolve conflicting commits for an
// epoch; RFC 9750 §5.2.2 describes our case, an eventually consistent
// delivery service (a peer-to-peer broadcast), and its option 2, which this
// package implements: apply at once, keep the previous state a short while,
// revert if needed.
//
//  1. Winner per epoch. Among the valid commits made on the same state, the
//     one whose committer has the lowest leaf index wins. An external commit
//     (RFC 9420 §12.4.3.2), which has no leaf yet, ranks after every member
//     commit; between external commits (or two commits by one member) the
//     lowest commit hash (SHA-256 of the MLSMessage) wins. Every honest
//     member applies the same winner whatever the order commits arrive in.
//  2. Optimistic apply, bounded settle window. The first valid commit on the
//     current state is applied at once. The state it was made on is kept for
//     the settle window (Config.SettleWindow, default 3 s: three GossipSub
//     heartbeats). A lower-ranked commit on that state arriving within the
//     window switches to it, unwinding every state built on the loser. A
//     lower-ranked commit arriving after the window still wins: the window
//     only bounds how long old states stay in memory (RFC 9420 §14 asks for
//     that, for forward secrecy). The member can no longer apply it and is
//     told to resync: rejoin the winning branch with an external commit.
//  3. Nothing lost. Every application message carries a MessageID. The
//     tracker remembers on which state each own message was sealed; when that
//     state leaves the branch, the message is listed for re-sending in the
//     current state. When a member rejoins by external commit it has none of
//     the epochs it skipped, so the others re-send what they sent from the
//     last state it shared with them (Commit.RejoinSince). Receivers drop
//     copies with Dedup, so the application sees each message once.
//  4. No starvation. A member that keeps losing commit races still gets its
//     changes in: its proposals (Propose) are proposed again in every new
//     epoch until a commit on the branch applies them (Decision.Repropose),
//     and every committer includes the pending proposals of others by
//     reference (ToCommit).
//  5. Partitions. Two halves that advanced apart converge by rule 1 at the
//     first state where they diverged; the losing half rejoins the winning
//     branch and both halves re-send as in rule 3.
//
// A state is named by a StateID derived from its epoch_authenticator (RFC
// 9420 §8.7), never by its epoch number: two branches have the same epoch
// numbers.
//
// # The API
//
// The node wraps each group state in a State (ID, Epoch, Apply, Release) and
// creates a Tracker over the state it created or joined:
//
//	tr := commitorder.New(state, commitorder.Config{}, now)
//	d, err := tr.Receive(commit, now)        // a commit, received or our own
//	d = tr.ReceiveProposal(stateID, p, now)  // a proposal, received
//	d = tr.Tick(now)                         // every heartbeat
//	tr.Sent(msgID, now)                      // after sealing a message in tr.Current()
//	tr.Propose(p, now)                       // a change we want in
//	ps := tr.ToCommit()                      // what our next commit must include
//	tr.Settled(id), tr.SyncFrom(), tr.Path(), tr.Compare(path)
//	d, err = tr.Resynced(externalCommit, state, path, now)
//
// Each Decision says which state is current and what to do: messages to
// re-send (Resend), proposals to send again (Repropose), a resync to perform
// (Resync), a sync to request (NeedSync, SyncFrom), and the commits the
// call applied (Applied, for the node's log: a commit that waited for a
// proposal or its parent is applied by a later call). The Outcome says what
// became of the commit passed to Receive.
//
// # What the node does
//
//   - Carry in the authenticated_data (RFC 9420 §6) of each commit the
//     StateID of the state it was made on (Commit.Parent) and, on a rejoin,
//     RejoinSince; of each application message its MessageID.
//   - Commit only when Settled(Current) holds: a commit then starts from a
//     state every member has had time to reach, with the proposals of the
//     epoch already in. This policy is what makes rule 4 work in practice.
//   - Send the Welcome of an Add commit only once its state is Settled (RFC
//     9750 §5.2.3).
//   - On NeedSync, on meeting a peer, and now and then, ask peers for the
//     handshake messages since SyncFrom and feed them to Receive.
//   - On Resync, ask peers for a GroupInfo and its Path, keep one for which
//     Compare reports a better branch, make an external commit on it with
//     RejoinSince set to the since Compare returned, and call Resynced. If no
//     peer serves a better branch, the late winner was invalid or abandoned:
//     do nothing.
//   - De-duplicate received application messages with a Dedup, keyed by the
//     sender and the MessageID.
//
// # Bounds
//
// Past states (IDs only, no secrets), sent-message records, buffered commits
// and heard proposals are each kept for Config.Retention (default 10
// minutes) and at most Config.Limit entries (default 4096). A partition
// longer than the retention heals by resync but may lose messages sent before
// it. Dedup keeps IDs for DefaultDedupRetention (20 minutes), at most
// DefaultDedupLimit (32768).
package commitorder
