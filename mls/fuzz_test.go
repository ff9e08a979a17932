package mls

import (
	"testing"
)

// fuzzFixture is a two-member group with a sample of every message kind,
// to seed the fuzz targets with valid inputs.
type fuzzFixture struct {
	aliceState, bobState []byte
	messages             [][]byte
	welcome              []byte
	bobKP                *PrivateKeyPackage
	keyPackage           []byte
}

func newFuzzFixture(t testing.TB) *fuzzFixture {
	a, b, c := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil), newTestClient(t, "carol", nil)
	alice := must[*Group](t)(NewGroup(a.id, nil, nil))
	pc := must[*PendingCommit](t)(alice.AddMembers(b.kp.KeyPackage()))
	alice = pc.Next
	bob := must[*Group](t)(Join(pc.Welcome, []*PrivateKeyPackage{b.kp}, nil, nil))
	f := &fuzzFixture{welcome: pc.Welcome, bobKP: b.kp, keyPackage: c.kp.KeyPackage().Bytes()}
	f.messages = append(f.messages,
		must[[]byte](t)(alice.Seal([]byte("hello"), []byte("aad"))),
		must[[]byte](t)(alice.ProposeRemove(bob.LeafIndex())),
	)
	f.aliceState = state(t, alice)
	alice = must[*Group](t)(LoadGroup(f.aliceState, nil))
	f.messages = append(f.messages,
		must[*PendingCommit](t)(alice.Update()).Commit,
		must[*PendingCommit](t)(alice.AddMembers(c.kp.KeyPackage())).Commit,
		must[[]byte](t)(alice.GroupInfo(nil)),
	)
	f.bobState = state(t, bob)
	return f
}

// FuzzProcessMessage feeds arbitrary bytes to ProcessMessage of a member:
// no input may panic, and a rejected input must leave the state unchanged.
func FuzzProcessMessage(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, m := range fx.messages {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := LoadGroup(fx.bobState, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := g.ProcessMessage(data)
		if err != nil {
			if r != nil {
				t.Fatal("result with an error")
			}
			if string(state(t, g)) != string(fx.bobState) {
				t.Fatalf("rejected input (%v) changed the state", err)
			}
		}
	})
}

// FuzzLoadGroup feeds arbitrary bytes to LoadGroup.
func FuzzLoadGroup(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(fx.aliceState)
	f.Add(fx.bobState)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := LoadGroup(data, nil)
		if err == nil && g == nil {
			t.Fatal("nil group without an error")
		}
	})
}

// FuzzJoin feeds arbitrary bytes to Join as a Welcome.
func FuzzJoin(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(fx.welcome)
	kps := []*PrivateKeyPackage{fx.bobKP}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Join(data, kps, nil, nil)
		_, _ = WelcomeKeyPackageRefs(data)
	})
}

// FuzzParseKeyPackage feeds arbitrary bytes to ParseKeyPackage and to
// JoinExternal as a GroupInfo.
func FuzzParseKeyPackage(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(fx.keyPackage)
	f.Add(fx.messages[len(fx.messages)-1])
	id := fx.bobKP.Identity()
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseKeyPackage(data, nil)
		_, _ = JoinExternal(data, id, nil, nil)
	})
}
