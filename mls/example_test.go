package mls_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	"github.com/meshchat/meshchat/mls"
)

const suite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// newClient makes an identity and a published KeyPackage for name, as a
// client does once at start-up.
func newClient(name string) (*mls.Identity, *mls.PrivateKeyPackage) {
	id, err := mls.NewIdentity(suite, []byte(name), nil)
	if err != nil {
		log.Fatal(err)
	}
	kp, err := mls.NewKeyPackage(id, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	return id, kp
}

// fetch stands for downloading a published KeyPackage: the bytes are parsed
// and validated on receipt.
func fetch(kp *mls.PrivateKeyPackage) *mls.KeyPackage {
	parsed, err := mls.ParseKeyPackage(kp.KeyPackage().Bytes(), nil)
	if err != nil {
		log.Fatal(err)
	}
	return parsed
}

// apply processes a commit and returns the next epoch's state.
func apply(g *mls.Group, commit []byte) *mls.Group {
	r, err := g.ProcessMessage(commit)
	if err != nil {
		log.Fatal(err)
	}
	return r.Next
}

// A three-person group chat: Alice creates the group, adds Bob and Carol
// with one commit, and everyone reads everyone.
func Example_groupChat() {
	alice, _ := newClient("alice")
	_, bobKP := newClient("bob")
	_, carolKP := newClient("carol")

	aliceGroup, err := mls.NewGroup(alice, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	pc, err := aliceGroup.AddMembers(fetch(bobKP), fetch(carolKP))
	if err != nil {
		log.Fatal(err)
	}
	aliceGroup = pc.Next // the commit was accepted: adopt the new epoch

	bobGroup, err := mls.Join(pc.Welcome, []*mls.PrivateKeyPackage{bobKP}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	carolGroup, err := mls.Join(pc.Welcome, []*mls.PrivateKeyPackage{carolKP}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}

	chat := []struct {
		name string
		g    *mls.Group
	}{{"alice", aliceGroup}, {"bob", bobGroup}, {"carol", carolGroup}}
	for _, from := range chat {
		msg, err := from.g.Seal([]byte("hello from "+from.name), nil)
		if err != nil {
			log.Fatal(err)
		}
		for _, to := range chat {
			if to.name == from.name {
				continue
			}
			r, err := to.g.ProcessMessage(msg)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s reads %q from %s\n", to.name, r.Data, r.Sender.Identity)
		}
	}
	// Output:
	// bob reads "hello from alice" from alice
	// carol reads "hello from alice" from alice
	// alice reads "hello from bob" from bob
	// carol reads "hello from bob" from bob
	// alice reads "hello from carol" from carol
	// bob reads "hello from carol" from carol
}

// Key rotation: Bob commits a fresh path (an "empty" commit). Both move to
// the next epoch, agree on its epoch authenticator, and keep talking.
func Example_keyRotation() {
	alice, _ := newClient("alice")
	_, bobKP := newClient("bob")
	aliceGroup, _ := mls.NewGroup(alice, nil, nil)
	pc, _ := aliceGroup.AddMembers(fetch(bobKP))
	aliceGroup = pc.Next
	bobGroup, err := mls.Join(pc.Welcome, []*mls.PrivateKeyPackage{bobKP}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("before: epoch", aliceGroup.Epoch(), bobGroup.Epoch())

	update, err := bobGroup.Update()
	if err != nil {
		log.Fatal(err)
	}
	bobGroup = update.Next
	aliceGroup = apply(aliceGroup, update.Commit)

	fmt.Println("after: epoch", aliceGroup.Epoch(), bobGroup.Epoch())
	fmt.Println("same epoch authenticator:", bytes.Equal(aliceGroup.EpochAuthenticator(), bobGroup.EpochAuthenticator()))

	msg, _ := bobGroup.Seal([]byte("rotated"), nil)
	r, err := aliceGroup.ProcessMessage(msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("alice reads %q in epoch %d\n", r.Data, r.Epoch)
	// Output:
	// before: epoch 1 1
	// after: epoch 2 2
	// same epoch authenticator: true
	// alice reads "rotated" in epoch 2
}

// Dynamic membership: Alice adds Bob, then Carol, then removes Bob. Bob
// learns of his removal and cannot read what follows.
func Example_membership() {
	alice, _ := newClient("alice")
	_, bobKP := newClient("bob")
	_, carolKP := newClient("carol")
	aliceGroup, _ := mls.NewGroup(alice, nil, nil)

	addBob, _ := aliceGroup.AddMembers(fetch(bobKP))
	aliceGroup = addBob.Next
	bobGroup, _ := mls.Join(addBob.Welcome, []*mls.PrivateKeyPackage{bobKP}, nil, nil)

	addCarol, _ := aliceGroup.AddMembers(fetch(carolKP))
	aliceGroup = addCarol.Next
	bobGroup = apply(bobGroup, addCarol.Commit)
	carolGroup, _ := mls.Join(addCarol.Welcome, []*mls.PrivateKeyPackage{carolKP}, nil, nil)
	for _, m := range carolGroup.Members() {
		fmt.Printf("member %d: %s\n", m.Index, m.Identity)
	}

	removeBob, err := aliceGroup.RemoveMembers(bobGroup.LeafIndex())
	if err != nil {
		log.Fatal(err)
	}
	aliceGroup = removeBob.Next
	carolGroup = apply(carolGroup, removeBob.Commit)
	bobGroup = apply(bobGroup, removeBob.Commit)
	fmt.Println("bob removed:", bobGroup.Removed(), "members left:", len(aliceGroup.Members()))

	msg, _ := aliceGroup.Seal([]byte("bob is gone"), nil)
	r, err := carolGroup.ProcessMessage(msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("carol reads %q\n", r.Data)
	_, err = bobGroup.ProcessMessage(msg)
	fmt.Println("bob cannot read it:", errors.Is(err, mls.ErrRemoved))
	// Output:
	// member 0: alice
	// member 1: bob
	// member 2: carol
	// bob removed: true members left: 2
	// carol reads "bob is gone"
	// bob cannot read it: true
}
