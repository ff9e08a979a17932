package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// privateKeyPackageFromVector rebuilds a PrivateKeyPackage from the raw
// keys of an interop vector.
func privateKeyPackageFromVector(t *testing.T, suite CipherSuite, kpMsg, initPriv, encPriv, sigPriv []byte) *PrivateKeyPackage {
	t.Helper()
	var msg wire.MLSMessage
	if err := wire.Unmarshal(kpMsg, &msg); err != nil || msg.KeyPackage == nil {
		t.Fatalf("key package: %v", err)
	}
	kp := msg.KeyPackage
	cs, err := lookupSuite(suite)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := newKeyPackage(cs, *kp)
	if err != nil {
		t.Fatal(err)
	}
	// The vectors write P-521 scalars without leading zero bytes; the
	// suite parses the fixed 66-byte form.
	pad := func(k []byte) []byte {
		if suite == MLS_256_DHKEMP521_AES256GCM_SHA512_P521 && k != nil && len(k) < 66 {
			return append(make([]byte, 66-len(k)), k...)
		}
		return k
	}
	initPriv, encPriv, sigPriv = pad(initPriv), pad(encPriv), pad(sigPriv)
	p := &PrivateKeyPackage{pub: pub, initPriv: initPriv, encPriv: encPriv}
	if sigPriv != nil {
		if p.id, err = identityFromKey(suite, kp.LeafNode.Credential.Identity, sigPriv); err != nil {
			t.Fatal(err)
		}
		if err := p.consistent(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestWelcomeVectors checks welcome.json: decrypt the group secrets and the
// GroupInfo of a Welcome, verify the GroupInfo signature with the given key
// and the confirmation tag with the derived key schedule
// (RFC 9420 §12.4.3.1).
func TestWelcomeVectors(t *testing.T) {
	var cases []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		InitPriv    vectors.Hex `json:"init_priv"`
		SignerPub   vectors.Hex `json:"signer_pub"`
		KeyPackage  vectors.Hex `json:"key_package"`
		Welcome     vectors.Hex `json:"welcome"`
	}
	vectors.Load(t, "welcome.json", &cases)
	tl := vectors.NewTally(t, "welcome.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "suite", c.CipherSuite), func(t *testing.T) {
			suite := CipherSuite(c.CipherSuite)
			kp := privateKeyPackageFromVector(t, suite, c.KeyPackage, c.InitPriv, nil, nil)
			w, err := decodeWelcome(c.Welcome)
			if err != nil {
				t.Fatal(err)
			}
			ow, err := openWelcome(w, []*PrivateKeyPackage{kp}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			gi := &ow.info
			if err := verifySignature(ow.cs, c.SignerPub, labelGroupInfoTBS, gi.TBS(), gi.Signature); err != nil {
				t.Fatalf("group info signature: %v", err)
			}
			ctx, err := wire.Marshal(&gi.GroupContext)
			if err != nil {
				t.Fatal(err)
			}
			ks, err := keyschedule.Join(ow.cs, ow.secrets.JoinerSecret, ow.pskSecret, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !keyschedule.VerifyConfirmationTag(ow.cs, ks.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
				t.Fatal("confirmation tag does not verify")
			}
			// A Welcome for another KeyPackage is rejected as not for us.
			other := *kp
			other.pub = &KeyPackage{kp: kp.pub.kp, ref: bytes.Repeat([]byte{1}, len(kp.pub.ref))}
			if _, err := openWelcome(w, []*PrivateKeyPackage{&other}, nil, nil); !errors.Is(err, ErrWelcomeNotForUs) {
				t.Fatalf("welcome for another key package: %v, want ErrWelcomeNotForUs", err)
			}
		})
	}
}

type passiveCase struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID vectors.Hex `json:"psk_id"`
		PSK   vectors.Hex `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                vectors.Hex `json:"key_package"`
	SignaturePriv             vectors.Hex `json:"signature_priv"`
	EncryptionPriv            vectors.Hex `json:"encryption_priv"`
	InitPriv                  vectors.Hex `json:"init_priv"`
	Welcome                   vectors.Hex `json:"welcome"`
	RatchetTree               vectors.Hex `json:"ratchet_tree"`
	InitialEpochAuthenticator vectors.Hex `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []vectors.Hex `json:"proposals"`
		Commit             vectors.Hex   `json:"commit"`
		EpochAuthenticator vectors.Hex   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// runPassive joins from the case's Welcome and follows every epoch,
// checking the epoch authenticator after each (RFC 9420 §12.4.3.1,
// §12.4.2, §8.7).
func runPassive(t *testing.T, c *passiveCase) {
	suite := CipherSuite(c.CipherSuite)
	if _, err := ciphersuite.Lookup(ciphersuite.ID(suite)); err != nil {
		t.Fatalf("suite %d: %v", suite, err)
	}
	kp := privateKeyPackageFromVector(t, suite, c.KeyPackage, c.InitPriv, c.EncryptionPriv, c.SignaturePriv)
	psks := make(map[string][]byte)
	for _, p := range c.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	cfg := &Config{ExternalPSK: func(id []byte) ([]byte, bool) { v, ok := psks[string(id)]; return v, ok }}
	g, err := Join(c.Welcome, []*PrivateKeyPackage{kp}, cfg, &JoinOptions{RatchetTree: c.RatchetTree})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), c.InitialEpochAuthenticator) {
		t.Fatalf("initial epoch authenticator %x, want %x", g.EpochAuthenticator(), c.InitialEpochAuthenticator)
	}
	for i, e := range c.Epochs {
		for j, p := range e.Proposals {
			r, err := g.ProcessMessage(p)
			if err != nil {
				t.Fatalf("epoch %d proposal %d: %v", i, j, err)
			}
			if r.Kind != ProposalMessage {
				t.Fatalf("epoch %d proposal %d: got a %v", i, j, r.Kind)
			}
		}
		r, err := g.ProcessMessage(e.Commit)
		if err != nil {
			t.Fatalf("epoch %d commit: %v", i, err)
		}
		if r.Kind != CommitMessage || r.Next == nil {
			t.Fatalf("epoch %d: got a %v", i, r.Kind)
		}
		if r.Next.Epoch() != g.Epoch()+1 {
			t.Fatalf("epoch %d: next epoch %d after %d", i, r.Next.Epoch(), g.Epoch())
		}
		g = r.Next
		if !bytes.Equal(g.EpochAuthenticator(), e.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticator %x, want %x", i, g.EpochAuthenticator(), e.EpochAuthenticator)
		}
	}
}

func testPassive(t *testing.T, file string) {
	var cases []passiveCase
	vectors.Load(t, file, &cases)
	tl := vectors.NewTally(t, file)
	for i := range cases {
		c := &cases[i]
		tl.Run(t, vectors.Name("case", i, "suite", c.CipherSuite), func(t *testing.T) { runPassive(t, c) })
	}
}

func TestPassiveClientWelcomeVectors(t *testing.T) { testPassive(t, "passive-client-welcome.json") }

func TestPassiveClientHandlingCommitVectors(t *testing.T) {
	testPassive(t, "passive-client-handling-commit.json")
}

func TestPassiveClientRandomVectors(t *testing.T) { testPassive(t, "passive-client-random.json") }
