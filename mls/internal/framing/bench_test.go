package framing

import (
	"fmt"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"10KiB", 10 << 10}}

// benchBatch is how many messages are prepared ahead for an unprotect
// benchmark; each is decrypted once, in order, by a fresh receiver.
const benchBatch = 256

// BenchmarkPrivateMessage measures the whole send and receive path of an
// application message: Sign + ProtectPrivate + MLSMessage encoding, and
// MLSMessage decoding + UnprotectPrivate + Verify.
func BenchmarkPrivateMessage(b *testing.B) {
	for id := ciphersuite.ID(1); id <= 7; id++ {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("suite=%d/%s", id, size.name), func(b *testing.B) {
				benchPrivate(b, id, size.n, true)
			})
		}
	}
}

// BenchmarkPrivateMessageSymmetric measures the symmetric part alone
// (ProtectPrivate and UnprotectPrivate on structs, no signature, no
// MLSMessage encoding), which is what framing adds on top of the suite's
// signature scheme.
func BenchmarkPrivateMessageSymmetric(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("suite=1/%s", size.name), func(b *testing.B) {
			benchPrivate(b, suite1, size.n, false)
		})
	}
}

func benchPrivate(b *testing.B, id ciphersuite.ID, size int, full bool) {
	g := newTestGroup(b, id, 2)
	content := g.content(wire.MemberSender(0), wire.ContentTypeApplication)
	content.ApplicationData = make([]byte, size)
	signer := g.signers[0]

	protect := func(b *testing.B, e *Epoch, ac *wire.AuthenticatedContent) []byte {
		var err error
		if full {
			if ac, err = e.Sign(signer, wire.WireFormatPrivateMessage, content); err != nil {
				b.Fatal(err)
			}
		}
		pm, err := e.ProtectPrivate(ac, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !full {
			return nil
		}
		out, err := wire.Marshal(&wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: pm})
		if err != nil {
			b.Fatal(err)
		}
		return out
	}

	b.Run("protect", func(b *testing.B) {
		e := g.epoch(b)
		ac := g.signed(b, e, signer, wire.WireFormatPrivateMessage, content)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			protect(b, e, ac)
		}
	})

	b.Run("unprotect", func(b *testing.B) {
		var receiver *Epoch
		var batch [][]byte
		var structs []*wire.PrivateMessage
		refill := func() {
			sender := g.epoch(b)
			receiver = g.epoch(b)
			ac := g.signed(b, sender, signer, wire.WireFormatPrivateMessage, content)
			batch, structs = batch[:0], structs[:0]
			for range benchBatch {
				if full {
					batch = append(batch, protect(b, sender, ac))
					continue
				}
				pm, err := sender.ProtectPrivate(ac, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				structs = append(structs, pm)
			}
		}
		refill()
		next := 0
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			if next == benchBatch {
				b.StopTimer()
				refill()
				next = 0
				b.StartTimer()
			}
			if full {
				var m wire.MLSMessage
				if err := wire.Unmarshal(batch[next], &m); err != nil {
					b.Fatal(err)
				}
				if _, err := receiver.Unprotect(&m, g.roster); err != nil {
					b.Fatal(err)
				}
			} else if _, err := receiver.UnprotectPrivate(structs[next], g.roster); err != nil {
				b.Fatal(err)
			}
			next++
		}
	})
}
