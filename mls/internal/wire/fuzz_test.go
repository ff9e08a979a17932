package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/vectors"
	"golang.org/x/crypto/cryptobyte"
)

// The fuzz targets check two properties on arbitrary input: decoding never
// panics, and whatever decodes re-encodes to exactly the input and decodes
// again (a strict decoder accepts one encoding per value). Seeds come from
// messages.json when the vector folder exists, and from the samples here.

var seedCache struct {
	once  sync.Once
	cases []messagesCase
	err   error
}

// fuzzSeeds returns messages.json cases (at most limit), or nil when the
// vector folder is missing. It reads the file directly, once per process, so
// a missing folder does not skip the fuzz target.
func fuzzSeeds(f *testing.F, limit int) []messagesCase {
	dir, ok := vectors.Dir()
	if !ok {
		return nil
	}
	seedCache.once.Do(func() {
		data, err := os.ReadFile(filepath.Join(dir, "messages.json"))
		if err == nil {
			err = json.Unmarshal(data, &seedCache.cases)
		}
		seedCache.err = err
	})
	if seedCache.err != nil {
		f.Fatal(seedCache.err)
	}
	cases := seedCache.cases
	if len(cases) > limit {
		cases = cases[:limit]
	}
	return cases
}

// checkRoundTrip is the property every fuzz target asserts.
func checkRoundTrip(t *testing.T, data []byte, newValue func() codecValue) {
	v := newValue()
	if err := Unmarshal(data, v); err != nil {
		return
	}
	out, err := Marshal(v)
	if err != nil {
		t.Fatalf("decoded value does not re-encode: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("re-encoding differs from accepted input\n in  %x\n out %x", data, out)
	}
	if err := Unmarshal(out, newValue()); err != nil {
		t.Fatalf("re-encoding does not decode: %v", err)
	}
}

// stripHeader drops the 4-byte version and wire format of an MLSMessage.
func stripHeader(msg []byte) []byte {
	if len(msg) < 4 {
		return nil
	}
	return msg[4:]
}

func addSample(f *testing.F, v Encoder) {
	b := cryptobyte.NewBuilder(nil)
	v.Encode(b)
	out, err := b.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out)
}

const fuzzSeedCases = 40

func FuzzMLSMessage(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		for _, m := range [][]byte{c.MLSWelcome, c.MLSGroupInfo, c.MLSKeyPackage, c.PublicMessageApplication,
			c.PublicMessageProposal, c.PublicMessageCommit, c.PrivateMessage} {
			f.Add([]byte(m))
		}
	}
	for _, body := range []Encoder{sampleKeyPackage(), samplePublicCommit()} {
		m, _ := NewMLSMessage(body)
		addSample(f, m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(MLSMessage) })
	})
}

func FuzzRatchetTree(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add([]byte(c.RatchetTree))
	}
	tree := sampleTree(4)
	addSample(f, &tree)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(RatchetTree) })
	})
}

func FuzzKeyPackage(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add(stripHeader(c.MLSKeyPackage))
		f.Add([]byte(c.AddProposal))
	}
	addSample(f, sampleKeyPackage())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(KeyPackage) })
	})
}

func FuzzWelcome(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add(stripHeader(c.MLSWelcome))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(Welcome) })
	})
}

func FuzzGroupInfo(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add(stripHeader(c.MLSGroupInfo))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(GroupInfo) })
	})
}

func FuzzGroupSecrets(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add([]byte(c.GroupSecrets))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(GroupSecrets) })
	})
}

func FuzzCommit(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add([]byte(c.Commit))
	}
	addSample(f, sampleCommit())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(Commit) })
	})
}

func FuzzProposal(f *testing.F) {
	withType := func(t ProposalType, body []byte) []byte {
		return append([]byte{byte(t >> 8), byte(t)}, body...)
	}
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add(withType(ProposalTypeAdd, c.AddProposal))
		f.Add(withType(ProposalTypeUpdate, c.UpdateProposal))
		f.Add(withType(ProposalTypeRemove, c.RemoveProposal))
		f.Add(withType(ProposalTypePSK, c.PreSharedKeyProposal))
		f.Add(withType(ProposalTypeReInit, c.ReInitProposal))
		f.Add(withType(ProposalTypeExternalInit, c.ExternalInitProposal))
		f.Add(withType(ProposalTypeGroupContextExtensions, c.GroupContextExtensionsProposal))
	}
	for _, p := range sampleProposals() {
		addSample(f, &p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(Proposal) })
	})
}

func FuzzLeafNode(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		f.Add([]byte(c.UpdateProposal))
	}
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		leaf := sampleLeaf(src)
		addSample(f, &leaf)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(LeafNode) })
	})
}

func FuzzAuthenticatedContent(f *testing.F) {
	for _, c := range fuzzSeeds(f, fuzzSeedCases) {
		for _, m := range [][]byte{c.PublicMessageApplication, c.PublicMessageProposal, c.PublicMessageCommit} {
			var msg MLSMessage
			if Unmarshal(m, &msg) == nil {
				addSample(f, msg.PublicMessage.AuthenticatedContent())
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, func() codecValue { return new(AuthenticatedContent) })
	})
}

// FuzzPrivateMessageContent takes the content type from the first byte and
// the plaintext from the rest, since the plaintext's layout depends on it.
func FuzzPrivateMessageContent(f *testing.F) {
	props := sampleProposals()
	for _, pmc := range []*PrivateMessageContent{
		{ContentType: ContentTypeApplication, ApplicationData: []byte("hi"), Auth: FramedContentAuthData{Signature: []byte("s")}, Padding: 3},
		{ContentType: ContentTypeProposal, Proposal: &props[3], Auth: FramedContentAuthData{Signature: []byte("s")}},
		{ContentType: ContentTypeCommit, Commit: sampleCommit(), Auth: FramedContentAuthData{Signature: []byte("s"), ConfirmationTag: []byte("t")}, Padding: 1},
	} {
		b := cryptobyte.NewBuilder([]byte{byte(pmc.ContentType)})
		pmc.Encode(b)
		f.Add(b.BytesOrPanic())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ct, plaintext := ContentType(data[0]), data[1:]
		var pmc PrivateMessageContent
		s := cryptobyte.String(plaintext)
		if !pmc.Decode(&s, ct) {
			return
		}
		if !s.Empty() {
			t.Fatal("Decode left input unconsumed")
		}
		out, err := Marshal(&pmc)
		if err != nil {
			t.Fatalf("decoded value does not re-encode: %v", err)
		}
		if !bytes.Equal(out, plaintext) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", plaintext, out)
		}
	})
}
