// Package mls is a client of the Messaging Layer Security protocol
// (RFC 9420): end-to-end encrypted group messaging in which every member
// holds the group's keys, membership changes and key rotations are agreed on
// by commits, and past and future messages stay protected when a member's
// keys leak (forward secrecy and post-compromise security).
//
// The package is a pure state machine: bytes in, bytes out. It does no I/O,
// starts no goroutines (validating a received ratchet tree verifies
// signatures in parallel), reads randomness from Config.Rand and time from
// Config.Now. Delivering messages, ordering commits and storing state are the
// caller's business. Every message it produces is the standard MLS wire
// encoding (an MLSMessage), so other MLS implementations can read it.
//
// # Clients, key packages and groups
//
// A client has an Identity: a name carried in a basic credential and a
// signature key. To be added to groups it publishes KeyPackages
// (NewKeyPackage) and keeps their private parts (PrivateKeyPackage). A
// member that wants to add it fetches the KeyPackage, parses it
// (ParseKeyPackage validates it), and commits an Add (Group.AddMembers); the
// new member joins from the resulting Welcome (Join). A client can also join
// on its own from a GroupInfo (Group.GroupInfo, JoinExternal).
//
// Within a group, Group.Seal encrypts application data and
// Group.ProcessMessage processes everything the group sends: application
// messages, proposals and commits.
//
// # Epochs are values
//
// A *Group is one member's state in one epoch. Commits never change it:
// creating a commit (Commit, AddMembers, RemoveMembers, Update) returns a
// PendingCommit whose Next field is the state of the next epoch, and
// processing someone else's commit returns it in Received.Next. The caller
// adopts the new state once it knows the commit is accepted, and may keep
// the old one to process a competing commit for the same epoch instead
// (RFC 9420 §14). A commit that fails any check leaves the state exactly as
// it was. When the network echoes a commit back to its creator,
// ProcessMessage reports ErrOwnCommit: adopt the PendingCommit.Next kept
// when it was created.
//
// Within an epoch a Group does change: sending and opening messages consume
// message keys, and proposals are cached until the next commit. Persist a
// group with Group.MarshalBinary after every change and restore it with
// LoadGroup; a consumed key stays consumed across a restart.
//
// Application messages delayed across commits still open for
// Config.RetainedEpochs epochs (3 by default); older keys are deleted.
//
// # Errors
//
// Every error wraps one of the exported sentinel errors (ErrWrongEpoch,
// ErrBadSignature, ErrInvalidProposalList, ...), so callers branch with
// errors.Is; the message names the step and the rule that failed.
//
// # Example
//
// Alice creates a group and adds Bob; both then exchange messages. Error
// handling is shortened to keep the flow visible.
//
//	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
//
//	// Each client, once: an identity and a published KeyPackage.
//	alice, _ := mls.NewIdentity(suite, []byte("alice"), nil)
//	bob, _ := mls.NewIdentity(suite, []byte("bob"), nil)
//	bobKP, _ := mls.NewKeyPackage(bob, nil, nil)
//	published := bobKP.KeyPackage().Bytes()
//
//	// Alice creates the group and adds Bob.
//	group, _ := mls.NewGroup(alice, nil, nil)
//	kp, err := mls.ParseKeyPackage(published, nil) // validates it
//	if err != nil {
//		return err
//	}
//	pc, _ := group.AddMembers(kp)
//	// Send pc.Commit to the group; once it is accepted:
//	group = pc.Next
//	// Deliver pc.Welcome to Bob, who joins.
//	bobGroup, err := mls.Join(pc.Welcome, []*mls.PrivateKeyPackage{bobKP}, nil, nil)
//	if err != nil {
//		return err
//	}
//
//	// Messages.
//	msg, _ := group.Seal([]byte("hi bob"), nil)
//	r, err := bobGroup.ProcessMessage(msg)
//	if err != nil {
//		return err
//	}
//	fmt.Printf("%s: %s\n", r.Sender.Identity, r.Data) // alice: hi bob
//
//	// Bob rotates his keys; Alice follows.
//	up, _ := bobGroup.Update()
//	bobGroup = up.Next
//	r, err = group.ProcessMessage(up.Commit)
//	if err != nil {
//		return err
//	}
//	group = r.Next
//
//	// Persist and restore.
//	state, _ := group.MarshalBinary()
//	group, err = mls.LoadGroup(state, nil)
//
// The runnable examples (Example_groupChat, Example_keyRotation,
// Example_membership) show complete scenarios.
package mls
