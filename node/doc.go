// Package node is the embeddable meshchat peer: it owns the libp2p host, the
// DHT directory (package dht), the group topics (package gossip) and the
// store, and wires them to the MLS state machine (package mls). It is what
// other Go programs import, and what cmd/meshchat uses.
//
//	n, err := node.New(ctx, node.Config{DataDir: dir, ListenAddrs: ..., BootstrapPeers: ...})
//	g, err := n.CreateGroup(ctx, node.GroupOptions{Name: "friends", Policy: node.Invite})
//	err = g.Add(ctx, peerID)                 // KeyPackage from the DHT, Welcome to the peer
//	code, err := g.NewInvite()               // or: others Join(ctx, code)
//	id, err := g.Send(ctx, []byte("hello"))
//	for m := range g.Messages() { ... }     // sender, epoch, time, data
//	n.Close()
//
// # Identity
//
// A node's identity is a libp2p Ed25519 key stored as the protobuf encoding
// of libp2p's crypto.MarshalPrivateKey in <DataDir>/identity.key, mode 0600,
// inside a data directory created with mode 0700. Its peer ID is the identity
// multihash of the public key.
//
// The node's MLS basic credential carries the raw bytes of that peer ID as
// its identity (RFC 9420 §5.3.1), so a peer ID names one MLS member
// unambiguously and a received message's sender (Message.Sender) is read
// from the credential of the leaf that signed it. The MLS signature key is a
// separate key of the group's cipher suite (Ed25519 for the default suite),
// generated once and persisted in the store; it is bound to the peer ID
// because every KeyPackage is published in a DHT record signed by the libp2p
// key, whose validator requires the credential to name that peer ID (package
// dht). A node added by peer ID is therefore added with a KeyPackage its
// libp2p key vouched for.
//
// # Host
//
// The host speaks TCP and QUIC v1, secures connections with Noise or TLS 1.3,
// runs the libp2p resource manager, and finds peers only through the
// bootstrap peers the user names: no mDNS, no public bootstrap list, no relay.
//
// # Persistence
//
// Everything else lives in one bbolt file, <DataDir>/meshchat.db (mode
// 0600), behind the small Store interface: the MLS identity, the private
// parts of the node's KeyPackages, each group's serialized MLS state
// (mls.Group.MarshalBinary) with the node's counters, the message history,
// an outbox, and the handshake and application logs served to members that
// missed messages (see Catch-up). The layout is in persist.go.
//
// Ordering rules:
//   - A state change that a published message depends on is persisted, in
//     the same transaction as the message's outbox entry, before the
//     message is published: a sealed application message (its key is
//     consumed), an own commit (the next epoch), a Welcome. After a crash
//     the node restarts at the stored epoch and publishes what is still in
//     the outbox, so it never re-uses a message key and never loses a
//     commit it acted on.
//   - Received application messages are stored in the history before they
//     are delivered. The key consumed by opening them is persisted lazily
//     (within Config.Tick, at the next commit or send, and at Close): a
//     crash in between can only let a message open twice, and the
//     de-duplication by message ID (rebuilt from the history at start)
//     delivers it once.
//   - The outbox is flushed in order whenever peers are on the topic;
//     application messages and commits leave it once published, Welcomes
//     once delivered directly and filed in the DHT mailbox. A published
//     application message enters the application log in the same
//     transaction that removes it from the outbox; a received one enters
//     it with its history entry.
//
// # KeyPackages
//
// At start the node makes sure it holds Config.KeyPackages one-time
// KeyPackages and one last-resort KeyPackage (RFC 9420 §16.8, the
// last_resort extension), persists their private parts, and publishes them
// as its DHT bundle; the bundle is republished every
// Config.RepublishInterval. KeyPackages live 30 days and are replaced 8 days
// before they expire. When a Welcome uses a one-time KeyPackage, its private
// part is deleted, a fresh one is created and the bundle is republished
// without the used one. A joiner that knows only a topic ID creates a fresh
// KeyPackage for its join request; its private part is kept for
// dht.MaxMailboxLifetime in case the Welcome comes late through the mailbox.
//
// # Welcomes
//
// A member that adds peers (Group.Add or an admission) publishes the Welcome
// on the group's topic (for joiners by topic ID), hands it to each added
// peer over the stream protocol /meshchat/welcome/1.0.0 (the peer answers
// one byte: 1 if it is now in the group), and files it in the DHT mailbox of
// each KeyPackageRef it is for. A node checks its mailbox at start and every
// Config.MailboxInterval, and joins the groups it finds there; such groups
// are announced on Node.NewGroups.
//
// # Wire formats
//
// MLS messages travel on a group's topic exactly as RFC 9420 defines them
// (MLSMessage: PublicMessage for commits and proposals, PrivateMessage for
// application data, Welcome), so other MLS stacks can read them. The node
// adds three small formats of its own, all in TLS presentation language with
// fixed-width length prefixes, all starting with the bytes "mc" (0x6d 0x63)
// and a version (1). An MLSMessage starts with 0x00 0x01 (mls10), so a topic
// message is unambiguously one or the other.
//
// The join request, a topic message:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 1;
//	    opaque topic_id<1..2^8-1>;          // the topic it is for
//	    opaque key_package<1..2^24-1>;      // MLSMessage(KeyPackage), untouched
//	    uint8  has_invite;                  // 0 or 1
//	    select (has_invite) {
//	        case 1: opaque invite_id[8]; opaque invite_mac[32];
//	    };
//	} JoinRequest;
//
// The authenticated_data of every application message (RFC 9420 §6.3: in
// clear, covered by the AEAD and the signature):
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 2;
//	    opaque message_id[16];   // random; copies are delivered once
//	    uint64 sent_at;          // sender's clock, Unix microseconds
//	    uint64 seq;              // sender's message count in the group, from 1
//	} ApplicationMeta;
//
// The application_data itself is the application's bytes, untouched. The
// authenticated_data of every commit:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 3;
//	    opaque parent_state[32];  // commitorder.NewStateID(epoch_authenticator)
//	} CommitMeta;
//
// except on an external commit by which a member rejoins a winning branch
// (see Catch-up), whose authenticated_data names also the last state the
// rejoiner shared with the group; no other commit may carry it:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 8;
//	    opaque parent_state[32];
//	    opaque rejoin_since[32];  // a StateID, never all zero
//	} RejoinCommitMeta;
//
// The group's name, policy and invite root travel in a GroupContext extension
// of private-use type 0xF0C1 (RFC 9420 §13.4, §17.3), so every member
// enforces the same policy:
//
//	struct {
//	    uint8  version = 1;
//	    opaque name<0..255>;
//	    uint8  policy;            // 1 = open, 2 = invite
//	    opaque invite_root[32];
//	} MeshchatGroup;
//
// # Admission
//
// Join(ctx, code) subscribes to the topic and publishes a join request,
// again every Config.JoinRetry until it is admitted. A member's node accepts
// a request only if it decodes, names this topic, carries a KeyPackage that
// mls.ParseKeyPackage accepts (RFC 9420 §10.1) in the group's suite, and
// whose credential names the peer that signed the GossipSub message; then it
// applies the group's policy:
//
//   - Open: any such peer is admitted.
//   - Invite: the request must carry an invite proof. An invite code is
//     "<topic ID>.<base32(id || K)>" with K = HMAC-SHA256(invite_root,
//     "meshchat invite key v1" || id), issued by Group.NewInvite; the proof
//     is id and HMAC-SHA256(K, "meshchat invite proof v1" || topic ID ||
//     KeyPackageRef). Any member recomputes K from the invite root (members
//     need no list of issued codes), the secret K never appears on the
//     topic, and a proof copied off the topic admits only the KeyPackage it
//     was made for, whose private keys only the invitee has. Peers a member
//     adds by peer ID (Group.Add) need no code. Codes cannot be revoked one
//     by one; the invite root is as secret as the GroupContext, which
//     travels only in encrypted Welcomes and in GroupInfos.
//
// A request that passes is admitted with an Add commit and a Welcome. To
// keep several members from admitting the same joiner, each member waits
// rank × Config.AdmitTakeover, where rank is the number of members with a
// lower leaf index: the lowest-leaf member admits at once, and the next takes
// over only if no commit adding the joiner arrived in the meantime (the
// lowest may be offline). Before committing, a member checks again, under
// the group lock, that the KeyPackage was not added by any commit it
// processed and that the peer is not a member; so a KeyPackage already in the
// tree is never added again. Two members can still both admit if a commit
// takes longer than AdmitTakeover to cross the mesh; that is a commit race,
// which commitorder settles (issue 6).
//
// # Receiving
//
// Every message on a group's topic passes Group.CheckMessage (the GossipSub
// validator, run in arrival order, see gossip.Config.OrderedValidation)
// before it is delivered or forwarded; its rules are in its documentation:
// undecodable bytes, other groups' messages and commits that fail on the
// state they claim are rejected (and their forwarder penalised), messages
// this node cannot judge yet (future or other-branch epochs) are ignored. The
// receive loop then hands PublicMessages and PrivateMessages to the MLS
// state: commits go through the commit tracker (see Commit ordering), application messages are opened, de-duplicated by
// (sender, message ID), stored and delivered on Group.Messages. Messages of
// the next epoch that arrive before its commit are kept (bounded) and
// processed once the commit is applied. The node never reads a sender from
// a payload: Message.Sender is the credential of the signing leaf.
//
// # Key rotation
//
// Every own commit carries an UpdatePath, so adding, removing and admitting
// also refresh the committer's keys. Besides, each member issues an update
// commit (Group.Rotate) after Config.RotateInterval (default 24 hours, plus up
// to 10% random jitter so members do not all rotate at once) or after sending
// Config.RotateAfterMessages messages (default 1000), whichever comes first.
// Negative values turn either trigger off.
//
// # Commit ordering
//
// Each group drives a commitorder.Tracker (package commitorder has the
// rules). Every commit, received or own, goes through Tracker.Receive: the
// lowest committer leaf index wins each epoch (external commits last, ties by
// commit hash), whatever order commits arrive in. A member applies the first
// valid commit at once and keeps the state it was made on for
// Config.SettleWindow (default 3 s); a lower-index commit on that state
// arriving within the window unwinds the branch built on the loser and is
// adopted (and persisted) instead. Own application messages sealed on a
// branch that lost are sealed again on the winning branch with the same
// message ID, time and sequence number and published from the outbox;
// receivers deliver each (sender, message ID) once. A member commits only
// once its current state has settled (bounded by the settle window), so
// commits start from states everyone has had time to reach. The topic
// validator verifies a commit on the state it claims as parent if that
// state is held (current or within the window), and lets commits on
// unknown states within 64 epochs pass unverified to the tracker, which
// keeps a bounded number of them until their parent appears. Application
// messages that fail to open while the current state is not settled are
// kept (bounded) and retried after the next change of state: they may
// belong to a competing branch that wins.
//
// A Welcome waits in the outbox until the state its commit made has
// settled (RFC 9750 §5.2.3), so no joiner lands on a branch that loses; if
// that state loses, the Welcome is dropped. A commit from the lowest leaf
// on a settled state cannot be out-ranked, so its Welcome goes at once. An
// own Add or Remove whose
// commit lost its epoch is committed again by its author on the winning
// branch, in a later epoch. Joiners admitted by topic ID repeat their join
// request until admitted.
//
// A rotation (Group.Rotate) whose commit lost its epoch is not committed
// again, which a member with a high leaf index among busy committers could
// lose forever; its author proposes an Update of its leaf instead (RFC 9420
// §12.1.2, a PublicMessage proposal, persisted with the state that holds
// the new leaf's private key before it is published) and registers it with
// Tracker.Propose. Every member's next commit includes the proposals
// received in the epoch by reference (mls includes every cached proposal
// that keeps the list valid, RFC 9420 §12.4; never its own Update, which
// its UpdatePath supersedes), so the winner of a later epoch commits it.
// Until a commit on the branch applies it (a commit including the Update,
// or any own commit, whose UpdatePath rotates the leaf anyway), each new
// current state brings Decision.Repropose, and a fresh Update is proposed
// there. A received proposal is cached in the held state of its epoch that
// accepts it and reported with Tracker.ReceiveProposal, which applies a
// commit that was waiting for it; a proposal of the current epoch that no
// held state accepts (its state's commit may still be on its way) is kept
// and retried after the next change of state, until its epoch has passed.
//
// # Catch-up
//
// Every commit the tracker applies (commitorder.Decision.Applied: also one
// that waited for a proposal or for its parent) is written to a handshake
// log in the store (bucket "handshake", key group || epoch || 8 bytes of
// the message's SHA-256), kept for the last 64 epochs below the newest
// logged one. So is every PublicMessage proposal that a held state of its
// epoch accepted, received or the node's own (logged with the state that
// proposes it), under its epoch: a member that gets a commit only by sync
// needs the proposals it references. Commits of branches that later lost
// stay in the log; whoever reads it sorts them out with its own tracker.
//
// Beside it, an application log (bucket "applog", same key layout) keeps
// the PrivateMessages with application data exactly as published: the
// node's own, when they leave the outbox (re-sealed copies included), and
// others', once they opened (a copy whose ID was already delivered is
// logged too, so that it is not served again). It keeps the same epochs as
// the handshake log and at most 4096 entries per group, the lowest epochs
// dropped first. GossipSub delivers nothing to a subscription it does not
// know yet (a member that just restarted or reconnected), so a published
// message can reach nobody; this log is how it still arrives.
//
// Members serve both logs on the stream protocol /meshchat/sync/1.0.0,
// only to peers whose peer ID is in their current roster, with a 10 s
// deadline per exchange:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 4;
//	    opaque group_id<1..255>;
//	    uint64 since_epoch;                // handshake log from here: Tracker.SyncFrom
//	    uint64 messages_since;             // application messages from here
//	    opaque state[32];                  // the asker's StateID
//	    opaque have<0..2^16-1>;            // 8-byte hash prefixes (as in the
//	} SyncRequest;                         // log keys), strictly ascending, ≤ 2048
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 5;
//	    uint64 epoch;                      // the server's current epoch
//	    opaque state[32];                  // its StateID
//	    opaque group_info<0..2^24-1>;      // its GroupInfo, ratchet tree included;
//	                                       // empty if state equals the asker's
//	    opaque entries<0..2^32-1>;         // opaque message<1..2^24-1> each,
//	} SyncResponse;                        // ≤ 1024, ≤ 2 MiB of entries
//
// have lists what the asker holds from those epochs on: its handshake log
// from since_epoch (the newest 2048 entries at most) with the handshake
// messages it received that it will not log (commits that lost, are
// invalid or duplicates, orphans its tracker keeps until their parent
// comes, proposals no held state accepts; at most 512, in memory), its
// application log from messages_since, and the application messages it saw
// fail to open for good (key already consumed, its own, a branch that
// lost, an epoch no longer kept; at most 512, in memory). The server sends every logged entry it holds from those
// epochs on that have does not list. The asker asks for application
// messages from its epoch minus 3 (mls keeps the keys of 3 past epochs,
// Config.RetainedEpochs); if its entries from there do not fit in 2048
// prefixes, it lists the newest whole epochs that fit and raises
// messages_since above the rest (if not even the newest epoch fits, part of
// it is listed, and the rest may come again and be dropped as duplicates).
// A request is at most 16,694 bytes.
//
// The server sends entries in epoch order, each epoch's application
// messages first, then its proposals, then its commits: an asker that is
// behind opens an epoch's messages while it is in that epoch, caches the
// epoch's proposals, then applies the commit that leaves it (which may
// reference them), so it never needs keys older than the retained epochs.
// Within an epoch, application messages go in the order of their
// ApplicationMeta.seq (in clear in the authenticated_data), so each
// sender's messages come in the order it sent them. A response cut by its
// bounds ends where the first entry left out would have been: it never
// carries a commit past application messages of its epoch that it left
// out, and if the handshake log is cut inside an epoch, that epoch's
// commits wait for the next response (one of its proposals may be missing)
// unless they are all the response would hold.
//
// The asker processes the entries in order, exactly like messages from the
// topic: commits through the tracker, application messages through the
// receive path, where copies it already has are dropped quietly (a
// consumed key, an own message, a delivered (sender, message ID)); nobody
// is penalised, and each message reaches the application once. It
// accepts only commits and proposals (PublicMessage) and application
// messages (PrivateMessage) from a response. A served commit whose parent
// the response did not bring (an orphan, typically of a branch that lost)
// waits in the tracker but asks for no further sync: the server has no
// parent to give.
//
// A node asks, in this order of precedence:
//   - the member whose last response moved the state or opened a message:
//     that member alone, again (the logs may be longer than one response);
//   - after it creates its tracker (at start, after a restart, after
//     joining), whenever the tracker reports Decision.NeedSync for a
//     commit from the topic, and when a member that had left the topic is
//     back: connected members in turn, at most 3, until one moves the
//     state or opens a message (again after a second if none answered);
//   - when GossipSub reports a member joining the group's topic
//     (gossip.Topic.NextPeerJoin): that member;
//   - every Config.SyncInterval (default 30 s): the next connected member
//     in turn.
//
// At most one sync runs per group, and at most one starts per second. A
// sync that finds nothing new costs one small exchange (no GroupInfo when
// both sides are in the same state); a server signs its GroupInfo once per
// state, however many members ask (sync and branch responses alike).
//
// If the served commits do not reach back to the asker's epoch (it was away
// longer than the retention: the server is more than the 64 logged epochs
// ahead and served no commit of the asker's epoch or before) and no search
// for a late winner's branch runs, the asker rejoins at the server's
// state: it asks that member for its branch (the branch exchange below) and
// rejoins it as below, so that the tracker tells a branch that merely
// extends ours (rejoin_since is our current state) from one that beat ours
// at a fork (a late winner, rejoin_since is the fork). If the branch cannot
// be had, it rejoins on the GroupInfo of the sync response, with its own
// state as rejoin_since (Tracker.Resynced without a branch). Either way
// the commit is an external commit (mls.JoinExternal with Resync, RFC 9420
// §12.4.3.2, which removes its old leaf), and the new state is persisted
// with the commit in the outbox before it is published.
//
// The branch exchange, on the same protocol (the server dispatches on the
// type byte), serves a member's current GroupInfo with its branch as its
// commit tracker remembers it (commitorder.Tracker.Path):
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 6;
//	    opaque group_id<1..255>;
//	} BranchRequest;
//
//	struct {
//	    opaque state[32]; uint64 epoch;    // a state of the branch, and the
//	    uint8  external; uint32 leaf;      // commit that made it: committer
//	    opaque commit_hash[32];            // (leaf 0 if external), SHA-256,
//	    opaque rejoin_since[32];           // RejoinSince (zero: none)
//	} PathStep;                            // 109 bytes
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 7;
//	    uint64 epoch; opaque state[32];    // the server's current state
//	    opaque group_info<1..2^24-1>;      // its GroupInfo, ratchet tree included
//	    PathStep path<1..2^24-1>;          // oldest first, ≤ 4096 steps,
//	} BranchResponse;                      // ending with (state, epoch)
//
// A late winner (Decision.Resync: a commit that beats our branch on a state
// released after the settle window, typically when a partition heals) starts
// a background search, never run under the group lock nor on the receive
// path: the node asks its connected members, lowest leaf first, for their
// branch, and takes the first one Tracker.Compare calls better. It rejoins
// that branch with mls.JoinExternal (Resync, RFC 9420 §12.4.3.2) on the
// served GroupInfo; the commit's metadata is a RejoinCommitMeta (see Wire
// formats) naming the served state as parent and, as rejoin_since, the fork
// Compare returned. Under the operation lock it reports the rejoin to the
// tracker (Tracker.Resynced with the served path), persists the new state
// with the commit in the outbox, seals again its own messages of the branch
// it left (Decision.Resend), then publishes. Members that apply a commit
// carrying rejoin_since re-send their messages sent since that state
// (commitorder.Commit.RejoinSince), which the rejoiner could not read; a
// member commit carrying it is rejected. If no connected member serves a
// better branch, nothing is done (the late winner was invalid or
// abandoned). All members of a losing side must rejoin, each by its own
// external commit; to keep those from racing, a member waits, before each
// search, a quarter of the settle window per member below it in leaf order
// (modulo 8). Rejoins that still race are settled like any commits (rule
// 1: the lowest commit hash among external commits), and a rejoiner whose
// commit lost meets a late winner again and rejoins once more. A rejoin
// must reach everyone within the settle window: one arriving later that
// beats another rejoin is a late winner for the whole group, which then
// rejoins its branch; a settle window shorter than the delivery delay under
// load lets such rejoins cascade.
//
// To learn of the other side's commits after a partition, a node asks for a
// sync not only after a NeedSync but also whenever a peer appears on a
// group's topic (checked every Config.Tick): meeting a peer again after a
// partition heals brings its side's commits, among them the late winner.
// A partition longer than commitorder.DefaultRetention (10 minutes) still
// converges by resync, but messages sent more than that before the heal are
// no longer re-sent.
package node
