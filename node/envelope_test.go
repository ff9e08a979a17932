package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
)

var testTopic = gossip.TopicIDForGroup([]byte("a group id of sixteen+ bytes"))

func TestJoinRequestRoundTripAndStrictness(t *testing.T) {
	for _, invite := range []*inviteProof{nil, {ID: [8]byte{1, 2}, MAC: [32]byte{3}}} {
		r := &joinRequest{Topic: testTopic, KeyPackage: []byte{0, 1, 2, 3}, Invite: invite}
		enc, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !isEnvelope(enc) {
			t.Fatal("encoded join request is not recognised as an envelope")
		}
		got, err := parseJoinRequest(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != r.Topic || !bytes.Equal(got.KeyPackage, r.KeyPackage) || (got.Invite == nil) != (invite == nil) ||
			(invite != nil && *got.Invite != *invite) {
			t.Fatalf("round trip: %+v, want %+v", got, r)
		}
		// Every truncation and any trailing byte is refused.
		for i := range enc {
			if _, err := parseJoinRequest(enc[:i]); !errors.Is(err, errBadEnvelope) {
				t.Fatalf("truncated to %d bytes: %v", i, err)
			}
		}
		if _, err := parseJoinRequest(append(bytes.Clone(enc), 0)); !errors.Is(err, errBadEnvelope) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
	good, _ := (&joinRequest{Topic: testTopic, KeyPackage: []byte{9}}).marshal()
	for name, mutate := range map[string]func([]byte){
		"version":    func(b []byte) { b[2] = 2 },
		"type":       func(b []byte) { b[3] = metaApplication },
		"magic":      func(b []byte) { b[0] = 'x' },
		"has_invite": func(b []byte) { b[len(b)-1] = 2 },
		"topic":      func(b []byte) { b[5] = 'A' },
	} {
		b := bytes.Clone(good)
		mutate(b)
		if _, err := parseJoinRequest(b); !errors.Is(err, errBadEnvelope) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	m := &appMeta{ID: commitorder.MessageID{7}, SentAt: time.UnixMicro(1700000000123456), Seq: 42}
	got, err := parseAppMeta(m.marshal())
	if err != nil || got.ID != m.ID || !got.SentAt.Equal(m.SentAt) || got.Seq != m.Seq {
		t.Fatalf("app meta round trip: %+v %v", got, err)
	}
	c := &commitMeta{Parent: commitorder.NewStateID([]byte("auth"))}
	gotC, err := parseCommitMeta(c.marshal())
	if err != nil || gotC.Parent != c.Parent {
		t.Fatalf("commit meta round trip: %+v %v", gotC, err)
	}
	if _, err := parseAppMeta(c.marshal()); err == nil {
		t.Fatal("commit metadata parsed as application metadata")
	}
	if _, err := parseCommitMeta(m.marshal()); err == nil {
		t.Fatal("application metadata parsed as commit metadata")
	}
	enc := m.marshal()
	if _, err := parseAppMeta(enc[:len(enc)-1]); err == nil {
		t.Fatal("truncated application metadata accepted")
	}
	if _, err := parseAppMeta(append(enc, 0)); err == nil {
		t.Fatal("application metadata with a trailing byte accepted")
	}
}

func TestGroupMetaRoundTrip(t *testing.T) {
	m := &groupMeta{Name: "friends", Policy: Invite, InviteRoot: [32]byte{1, 2, 3}}
	enc, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseGroupMeta(enc)
	if err != nil || *got != *m {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	bad := bytes.Clone(enc)
	bad[1+1+len(m.Name)] = 3 // policy
	if _, err := parseGroupMeta(bad); err == nil {
		t.Fatal("unknown policy accepted")
	}
	if _, err := (&groupMeta{Name: strings.Repeat("x", 256), Policy: Open}).marshal(); err == nil {
		t.Fatal("over-long name accepted")
	}
}

func TestInviteCodes(t *testing.T) {
	root := bytes.Repeat([]byte{5}, 32)
	id := [inviteIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8}
	key := inviteKey(root, id)
	code := formatInviteCode(testTopic, id, key)
	jc, err := parseJoinCode(code)
	if err != nil || !jc.Invite || jc.Topic != testTopic || jc.ID != id || jc.Key != key {
		t.Fatalf("parse %q: %+v %v", code, jc, err)
	}
	ref := []byte("a KeyPackageRef")
	proof := &inviteProof{ID: id, MAC: inviteMAC(jc.Key[:], testTopic, ref)}
	if !verifyInvite(root, testTopic, ref, proof) {
		t.Fatal("valid proof refused")
	}
	if verifyInvite(root, testTopic, []byte("another ref"), proof) {
		t.Fatal("proof accepted for another KeyPackage")
	}
	other := gossip.TopicIDForGroup([]byte("another group id"))
	if verifyInvite(root, other, ref, proof) {
		t.Fatal("proof accepted on another topic")
	}
	if verifyInvite(bytes.Repeat([]byte{6}, 32), testTopic, ref, proof) {
		t.Fatal("proof accepted under another invite root")
	}
	// The code never contains the root, and the proof never the key.
	if strings.Contains(code, string(root)) || bytes.Contains(proof.MAC[:], key[:8]) {
		t.Fatal("secret leaked")
	}
	bare, err := parseJoinCode(string(testTopic))
	if err != nil || bare.Invite || bare.Topic != testTopic {
		t.Fatalf("bare topic: %+v %v", bare, err)
	}
	for _, bad := range []string{"", "nope", string(testTopic) + ".", string(testTopic) + ".abc", code + "a", strings.ToUpper(code)} {
		if _, err := parseJoinCode(bad); !errors.Is(err, ErrBadInviteCode) {
			t.Errorf("parse %q: %v", bad, err)
		}
	}
}

func TestPeekMatchesMLS(t *testing.T) {
	id, err := mls.NewIdentity(DefaultCipherSuite, []byte("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.NewGroup(id, nil, &mls.GroupOptions{GroupID: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	// Authenticated data long enough to need a two-byte length prefix.
	ad := bytes.Repeat([]byte{0xab}, 100)
	pc, err := g.Commit(&mls.CommitOptions{ForcePath: true, AuthenticatedData: ad})
	if err != nil {
		t.Fatal(err)
	}
	h, err := peekMessage(pc.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if h.WireFormat != wireFormatPublicMessage || h.ContentType != contentTypeCommit || h.Epoch != 0 ||
		!bytes.Equal(h.GroupID, g.ID()) || !bytes.Equal(h.AuthenticatedData, ad) || h.SenderType != senderTypeMember {
		t.Fatalf("commit header: %+v", h)
	}
	app, err := pc.Next.Seal([]byte("hi"), []byte("short ad"))
	if err != nil {
		t.Fatal(err)
	}
	h, err = peekMessage(app)
	if err != nil || h.WireFormat != wireFormatPrivateMessage || h.ContentType != contentTypeApplication ||
		h.Epoch != 1 || string(h.AuthenticatedData) != "short ad" {
		t.Fatalf("application header: %+v %v", h, err)
	}
	for i := range 40 {
		if _, err := peekMessage(app[:i]); err == nil {
			t.Fatalf("header truncated to %d bytes accepted", i)
		}
	}
}

func TestStoreRecordsRoundTrip(t *testing.T) {
	pid, err := peer.Decode("12D3KooWGzBm5yUGm6VyiJW9yDMsU6fXzVJXxHn4ZPUW6YfTchpa")
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{ID: commitorder.MessageID{1}, Sender: pid, SenderLeaf: 3, Epoch: 4, Seq: 5,
		SentAt: time.UnixMicro(10), ReceivedAt: time.UnixMicro(20), Own: true, Data: []byte("text")}
	enc, err := marshalHistory(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseHistory(enc)
	if err != nil || got.ID != m.ID || got.Sender != pid || got.Seq != 5 || !got.Own || string(got.Data) != "text" ||
		!got.SentAt.Equal(m.SentAt) || !got.ReceivedAt.Equal(m.ReceivedAt) {
		t.Fatalf("history round trip: %+v %v", got, err)
	}
	o := &outboxRecord{Kind: outboxWelcome, Message: []byte{1, 2}, Peers: []peer.ID{pid, pid}}
	enc, err = o.marshal()
	if err != nil {
		t.Fatal(err)
	}
	gotO, err := parseOutboxRecord(enc)
	if err != nil || gotO.Kind != outboxWelcome || len(gotO.Peers) != 2 || gotO.Peers[1] != pid {
		t.Fatalf("outbox round trip: %+v %v", gotO, err)
	}
	r := &groupRecord{Removed: true, NextSeq: 7, SentSinceRotation: 2, LastRotation: time.UnixMicro(99), State: []byte("state")}
	enc, err = r.marshal()
	if err != nil {
		t.Fatal(err)
	}
	gotR, err := parseGroupRecord(enc)
	if err != nil || !gotR.Removed || gotR.NextSeq != 7 || string(gotR.State) != "state" || !gotR.LastRotation.Equal(r.LastRotation) {
		t.Fatalf("group record round trip: %+v %v", gotR, err)
	}
	for _, parse := range []func([]byte) error{
		func(b []byte) error { _, err := parseHistory(b); return err },
		func(b []byte) error { _, err := parseOutboxRecord(b); return err },
		func(b []byte) error { _, err := parseGroupRecord(b); return err },
		func(b []byte) error { _, err := parseKeyPackageRecord(b); return err },
	} {
		if err := parse([]byte{2}); !errors.Is(err, ErrCorruptStore) {
			t.Errorf("unknown version: %v", err)
		}
		if err := parse(nil); !errors.Is(err, ErrCorruptStore) {
			t.Errorf("empty record: %v", err)
		}
	}
}

func TestStoreLastAndPrefixes(t *testing.T) {
	s, err := openBoltStore(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := []byte{1, 0xff}, []byte{2}
	err = s.Update(func(tx Tx) error {
		for i := range uint64(300) {
			if err := tx.Put(bucketHistory, indexKey(a, i), []byte{1}); err != nil {
				return err
			}
		}
		return tx.Put(bucketHistory, indexKey(b, 5), []byte{1})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx Tx) error {
		if k := tx.Last(bucketHistory, groupKey(a)); indexOf(k) != 299 {
			t.Errorf("last of a: %d", indexOf(k))
		}
		if k := tx.Last(bucketHistory, groupKey(b)); indexOf(k) != 5 {
			t.Errorf("last of b: %d", indexOf(k))
		}
		if k := tx.Last(bucketHistory, groupKey([]byte{3})); k != nil {
			t.Errorf("last of an empty prefix: %x", k)
		}
		n := 0
		_ = tx.ForEach(bucketHistory, groupKey(a), func(_, _ []byte) error { n++; return nil })
		if n != 300 {
			t.Errorf("ForEach saw %d entries of a", n)
		}
		return nil
	})
}
