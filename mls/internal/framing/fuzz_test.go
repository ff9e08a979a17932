package framing

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// FuzzDecodePrivateMessageContent feeds arbitrary decrypted plaintexts to the
// PrivateMessageContent parser, which sees attacker-chosen bytes whenever a
// member is malicious: it must never panic, and what it accepts must
// re-encode to the same bytes.
func FuzzDecodePrivateMessageContent(f *testing.F) {
	g := newTestGroup(f, suite1, 2)
	e := g.epoch(f)
	for _, ct := range []wire.ContentType{wire.ContentTypeApplication, wire.ContentTypeProposal, wire.ContentTypeCommit} {
		ac := g.signed(f, e, g.signers[0], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), ct))
		pt, err := wire.Marshal(&wire.PrivateMessageContent{
			ContentType: ct, ApplicationData: ac.Content.ApplicationData, Proposal: ac.Content.Proposal,
			Commit: ac.Content.Commit, Auth: ac.Auth, Padding: 7,
		})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(ct), pt)
	}
	f.Fuzz(func(t *testing.T, ct uint8, plaintext []byte) {
		pmc, err := decodePrivateMessageContent(plaintext, wire.ContentType(ct))
		if err != nil {
			return
		}
		again, err := wire.Marshal(pmc)
		if err != nil {
			t.Fatalf("accepted content does not re-encode: %v", err)
		}
		if !bytes.Equal(again, plaintext) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, plaintext)
		}
	})
}

// FuzzUnprotect runs arbitrary bytes through the whole receive path of a
// member: it must never panic, and nothing but the genuine seeds may verify.
func FuzzUnprotect(f *testing.F) {
	g := newTestGroup(f, suite1, 2)
	sender := g.epoch(f)
	var seeds [][]byte
	for _, body := range []wire.Encoder{
		g.privateFrom(f, sender, 0, wire.ContentTypeApplication),
		g.privateFrom(f, sender, 0, wire.ContentTypeCommit),
		g.publicFrom(f, sender, 1, wire.ContentTypeProposal),
	} {
		m, err := wire.NewMLSMessage(body)
		if err != nil {
			f.Fatal(err)
		}
		data, err := wire.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wire.MLSMessage
		if wire.Unmarshal(data, &m) != nil {
			return
		}
		if _, err := g.epoch(t).Unprotect(&m, g.roster); err == nil {
			for _, s := range seeds {
				if bytes.Equal(s, data) {
					return
				}
			}
			t.Fatalf("forged message accepted: %x", data)
		}
	})
}
