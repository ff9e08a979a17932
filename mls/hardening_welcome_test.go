package mls

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// hostileWelcome is a Welcome opened with its joiner's KeyPackage: what a
// hostile committer, who chose every secret in it, can change and seal
// again.
type hostileWelcome struct {
	gs        wire.GroupSecrets
	gi        wire.GroupInfo
	pskSecret []byte
	suite     wire.CipherSuite
}

// openHostile opens welcome for kp (with reinitFrom for a reinit Welcome).
func openHostile(t testing.TB, welcome []byte, kp *PrivateKeyPackage, cfg *Config, reinitFrom *Group) *hostileWelcome {
	t.Helper()
	w := must[*wire.Welcome](t)(decodeWelcome(welcome))
	ow := must[*openedWelcome](t)(openWelcome(w, []*PrivateKeyPackage{kp}, cfg, reinitFrom))
	return &hostileWelcome{gs: ow.secrets, gi: ow.info, pskSecret: ow.pskSecret, suite: w.CipherSuite}
}

// sealOptions say how hostileWelcome.seal rebuilds the Welcome.
type sealOptions struct {
	// fixTag recomputes the GroupInfo's confirmation tag for its (changed)
	// GroupContext, as the committer can.
	fixTag bool
	// signer signs the GroupInfo again; nil keeps its signature.
	signer *Identity
	// rawInfo, when set, changes the encoded GroupInfo before encryption.
	rawInfo func([]byte) []byte
	// groupInfoKey, when set, encrypts the GroupInfo under another key.
	wrongGroupInfoKey bool
	// secretsTo, when set, encrypts the GroupSecrets to this init key
	// instead of the joiner's.
	secretsTo []byte
	// secretsContext, when set, binds the GroupSecrets to another
	// encrypted_group_info.
	secretsContext []byte
	// mangleSecrets changes the GroupSecrets sent, after the GroupInfo was
	// encrypted with the original ones.
	mangleSecrets func(gs *wire.GroupSecrets)
}

// seal encrypts the (changed) GroupInfo and GroupSecrets into a Welcome
// for kp, as the committer would.
func (h *hostileWelcome) seal(t testing.TB, kp *PrivateKeyPackage, opts sealOptions) []byte {
	t.Helper()
	cs := kp.id.cs
	gi := h.gi
	if opts.fixTag {
		ctxRaw := must[[]byte](t)(wire.Marshal(&gi.GroupContext))
		ks := must[*keyschedule.EpochSecrets](t)(keyschedule.Join(cs, h.gs.JoinerSecret, h.pskSecret, ctxRaw))
		gi.ConfirmationTag = keyschedule.ConfirmationTag(cs, ks.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash)
	}
	if opts.signer != nil {
		gi.Signature = must[[]byte](t)(opts.signer.sign(labelGroupInfoTBS, gi.TBS()))
	}
	giRaw := must[[]byte](t)(wire.Marshal(&gi))
	if opts.rawInfo != nil {
		giRaw = opts.rawInfo(giRaw)
	}
	welcomeSecret := must[[]byte](t)(keyschedule.WelcomeSecret(cs, h.gs.JoinerSecret, h.pskSecret))
	if opts.wrongGroupInfoKey {
		welcomeSecret = bytes.Repeat([]byte{3}, cs.HashSize())
	}
	key, nonce := mustPair(t)(keyschedule.WelcomeKeyNonce(cs, welcomeSecret))
	aead := must[cipher.AEAD](t)(cs.NewAEAD(key))
	w := &wire.Welcome{CipherSuite: h.suite, EncryptedGroupInfo: aead.Seal(nil, nonce, giRaw, nil)}
	sent := h.gs
	if opts.mangleSecrets != nil {
		opts.mangleSecrets(&sent)
	}
	gsRaw := must[[]byte](t)(wire.Marshal(&sent))
	to, context := kp.pub.kp.InitKey, w.EncryptedGroupInfo
	if opts.secretsTo != nil {
		to = opts.secretsTo
	}
	if opts.secretsContext != nil {
		context = opts.secretsContext
	}
	kem, ct, err := cs.EncryptWithLabel(to, labelWelcome, context, gsRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Secrets = []wire.EncryptedGroupSecrets{{NewMember: kp.pub.ref, EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}}}
	return must[[]byte](t)(wire.Marshal(must[*wire.MLSMessage](t)(wire.NewMLSMessage(w))))
}

// welcomeCase is one hostile Welcome and the rejection Join must give.
type welcomeCase struct {
	name string
	msg  func(t *testing.T) []byte
	want []error
	opts *JoinOptions
	cfg  *Config
}

// Class 8: Welcome (RFC 9420 §8.4, §11, §12.4.3.1). Alice, the committer,
// controls every field of the Welcome she sends bob; each case breaks one
// rule and keeps every other check passing (the GroupInfo re-signed, its
// confirmation tag recomputed where the change would break it).
func TestHardeningWelcome(t *testing.T) {
	a, b, c := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil), newTestClient(t, "carol", nil)
	gs := newGroupOf(t, nil, a, c)
	alice := gs[0]
	pc := must[*PendingCommit](t)(alice.Commit(&CommitOptions{Add: []*KeyPackage{b.kp.KeyPackage()}, ForcePath: true}))
	alice = pc.Next
	h := openHostile(t, pc.Welcome, b.kp, nil, nil)
	if h.gs.PathSecret == nil || alice.tree.LeafCount() != 4 {
		t.Fatal("fixture: the Welcome has no path secret or the tree is not of 4 leaves")
	}
	// Controls: the Welcome as sent and as re-sealed join the group.
	checkAgree(t, clone(t, alice), must[*Group](t)(Join(pc.Welcome, []*PrivateKeyPackage{b.kp}, nil, nil)))
	checkAgree(t, clone(t, alice), must[*Group](t)(Join(h.seal(t, b.kp, sealOptions{fixTag: true, signer: a.id}), []*PrivateKeyPackage{b.kp}, nil, nil)))

	change := func(f func(h *hostileWelcome), opts sealOptions) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			c := *h
			c.gs.PSKs = append([]wire.PreSharedKeyID(nil), h.gs.PSKs...)
			c.gi.GroupContext.Extensions = append(wire.Extensions(nil), h.gi.GroupContext.Extensions...)
			f(&c)
			return c.seal(t, b.kp, opts)
		}
	}
	resigned := sealOptions{fixTag: true, signer: a.id}
	nh := alice.cs.HashSize()
	other := newTestClient(t, "erin", nil)
	rc := must[Extension](t)(RequiredCapabilitiesExtension([]ExtensionType{0xff02}, nil, nil))
	psk := func(typ wire.PSKType, usage wire.ResumptionPSKUsage, nonceLen int) wire.PreSharedKeyID {
		id := wire.PreSharedKeyID{PSKType: typ, PSKNonce: bytes.Repeat([]byte{5}, nonceLen)}
		if typ == wire.PSKTypeExternal {
			id.PSKID = []byte("unknown")
		} else {
			id.Usage, id.PSKGroupID, id.PSKEpoch = usage, []byte("old"), 3
		}
		return id
	}
	cases := []welcomeCase{
		{name: "class8/§12.4.3.1 GroupInfo signature invalid", msg: change(func(h *hostileWelcome) {
			h.gi.Signature = bytes.Clone(h.gi.Signature)
			h.gi.Signature[0] ^= 1
		}, sealOptions{}), want: []error{ErrBadSignature}},
		{name: "class8/§12.4.3.1 GroupInfo signed by a member other than its signer", msg: change(func(*hostileWelcome) {}, sealOptions{signer: c.id}),
			want: []error{ErrBadSignature}},
		{name: "class8/§12.4.3.1 signer index names another member", msg: change(func(h *hostileWelcome) { h.gi.Signer = 1 }, resigned),
			want: []error{ErrBadSignature}},
		{name: "class8/§12.4.3.1 signer index of a blank leaf", msg: change(func(h *hostileWelcome) { h.gi.Signer = 3 }, resigned),
			want: []error{ErrInvalidGroupInfo}},
		{name: "class8/§12.4.3.1 signer index 2^31", msg: change(func(h *hostileWelcome) { h.gi.Signer = 1 << 31 }, resigned),
			want: []error{ErrInvalidGroupInfo}},
		{name: "class8/§12.4.3.1 signer index 2^32-1", msg: change(func(h *hostileWelcome) { h.gi.Signer = math.MaxUint32 }, resigned),
			want: []error{ErrInvalidGroupInfo}},
		{name: "class8/§12.4.3.1 confirmation tag wrong", msg: change(func(h *hostileWelcome) {
			h.gi.ConfirmationTag = bytes.Clone(h.gi.ConfirmationTag)
			h.gi.ConfirmationTag[0] ^= 1
		}, sealOptions{signer: a.id}), want: []error{ErrBadConfirmationTag}},
		{name: "class8/§12.4.3.1 confirmation tag truncated", msg: change(func(h *hostileWelcome) { h.gi.ConfirmationTag = h.gi.ConfirmationTag[:nh/2] },
			sealOptions{signer: a.id}), want: []error{ErrBadConfirmationTag}},
		{name: "class8/§12.4.3.1 confirmation tag empty", msg: change(func(h *hostileWelcome) { h.gi.ConfirmationTag = nil },
			sealOptions{signer: a.id}), want: []error{ErrBadConfirmationTag}},
		{name: "class8/§12.4.3.1 GroupContext changed, confirmation tag not", msg: change(func(h *hostileWelcome) { h.gi.GroupContext.Epoch++ },
			sealOptions{signer: a.id}), want: []error{ErrBadConfirmationTag}},
		{name: "class8/§12.4.3.1 Welcome suite other than the KeyPackage's", msg: change(func(h *hostileWelcome) {
			h.suite = wire.CipherSuite(MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519)
		}, resigned), want: []error{ErrWelcomeNotForUs}},
		{name: "class8/§17.1 Welcome of an unknown suite", msg: change(func(h *hostileWelcome) { h.suite = 0x7777 }, resigned),
			want: []error{ErrUnsupportedCipherSuite}},
		{name: "class8/§12.4.3.1 GroupInfo suite other than the Welcome's", msg: change(func(h *hostileWelcome) {
			h.gi.GroupContext.CipherSuite = wire.CipherSuite(MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519)
		}, resigned), want: []error{ErrInvalidGroupInfo}},
		{name: "class8/§6 MLSMessage of another protocol version", msg: func(t *testing.T) []byte {
			m := bytes.Clone(pc.Welcome)
			binary.BigEndian.PutUint16(m, 2)
			return m
		}, want: []error{ErrUnsupportedVersion, ErrMalformed}},
		{name: "class8/§8.1 GroupContext of another protocol version", msg: change(func(*hostileWelcome) {}, sealOptions{fixTag: true, signer: a.id,
			rawInfo: func(raw []byte) []byte { binary.BigEndian.PutUint16(raw, 2); return raw }}), want: []error{ErrMalformed}},
		{name: "class8/§12.4.3.1 group ID already in use", msg: func(*testing.T) []byte { return pc.Welcome },
			opts: &JoinOptions{GroupExists: func(id []byte) bool { return bytes.Equal(id, alice.ID()) }}, want: []error{ErrGroupExists}},
		{name: "class8/§13.4 unsupported GroupContext extension", msg: change(func(h *hostileWelcome) {
			h.gi.GroupContext.Extensions = append(h.gi.GroupContext.Extensions, wire.Extension{ExtensionType: 0xff02})
		}, resigned), want: []error{ErrUnsupportedExtension}},
		{name: "class8/§12.1.8.1 GroupContext external_senders with trailing bytes", msg: change(func(h *hostileWelcome) {
			es := must[[]byte](t)(wire.Marshal(&wire.ExternalSenders{{SignatureKey: c.id.SignaturePublicKey(), Credential: c.id.credential()}}))
			h.gi.GroupContext.Extensions = append(h.gi.GroupContext.Extensions, wire.Extension{ExtensionType: wire.ExtensionTypeExternalSenders, ExtensionData: append(es, 0)})
		}, resigned), want: []error{ErrMalformed}},
		{name: "class8/§11.1 required capabilities the joiner lacks", msg: change(func(h *hostileWelcome) {
			h.gi.GroupContext.Extensions = append(h.gi.GroupContext.Extensions, wire.Extension{ExtensionType: wire.ExtensionType(rc.Type), ExtensionData: rc.Data})
		}, resigned), want: []error{ErrUnsupportedExtension}},
		{name: "class8/§12.4.3.1 PSK the joiner does not have", msg: change(func(h *hostileWelcome) {
			h.gs.PSKs = append(h.gs.PSKs, psk(wire.PSKTypeExternal, 0, nh))
		}, resigned), want: []error{ErrMissingPSK}},
		{name: "class8/§12.4.3.1 two reinit/branch resumption PSKs", msg: change(func(h *hostileWelcome) {
			h.gs.PSKs = append(h.gs.PSKs, psk(wire.PSKTypeResumption, wire.ResumptionPSKUsageReInit, nh), psk(wire.PSKTypeResumption, wire.ResumptionPSKUsageBranch, nh))
		}, resigned), want: []error{ErrMalformed}},
		{name: "class8/§8.4 PSK nonce shorter than KDF.Nh", msg: change(func(h *hostileWelcome) {
			h.gs.PSKs = append(h.gs.PSKs, psk(wire.PSKTypeExternal, 0, nh-1))
		}, resigned), want: []error{ErrMalformed}},
		{name: "class8/§8.4 PSK nonce longer than KDF.Nh", msg: change(func(h *hostileWelcome) {
			h.gs.PSKs = append(h.gs.PSKs, psk(wire.PSKTypeExternal, 0, nh+1))
		}, resigned), want: []error{ErrMalformed}},
		{name: "class8/§12.4.3.1 joiner secret of the wrong length", msg: change(func(*hostileWelcome) {},
			sealOptions{fixTag: true, signer: a.id, mangleSecrets: func(gs *wire.GroupSecrets) { gs.JoinerSecret = gs.JoinerSecret[:nh-1] }}),
			want: []error{ErrMalformed}},
		{name: "class8/§12.4.3.1 path secret that does not derive the tree's keys", msg: change(func(h *hostileWelcome) {
			h.gs.PathSecret = &wire.PathSecret{PathSecret: bytes.Repeat([]byte{8}, nh)}
		}, resigned), want: []error{ErrInvalidGroupInfo}},
		{name: "class8/§12.4.3.1 GroupSecrets encrypted to another init key", msg: change(func(*hostileWelcome) {},
			sealOptions{fixTag: true, signer: a.id, secretsTo: other.kp.KeyPackage().kp.InitKey}), want: []error{ErrDecrypt}},
		{name: "class8/§12.4.3.1 GroupSecrets bound to another encrypted GroupInfo", msg: change(func(*hostileWelcome) {},
			sealOptions{fixTag: true, signer: a.id, secretsContext: []byte("another")}), want: []error{ErrDecrypt}},
		{name: "class8/§12.4.3.1 GroupInfo encrypted under another welcome key", msg: change(func(*hostileWelcome) {},
			sealOptions{fixTag: true, signer: a.id, wrongGroupInfoKey: true}), want: []error{ErrDecrypt}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Join(tc.msg(t), []*PrivateKeyPackage{b.kp}, tc.cfg, tc.opts)
			if err == nil || g != nil {
				t.Fatalf("joined (group %v, error %v)", g != nil, err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("error %q does not match %q", err, w)
				}
			}
		})
	}

	t.Run("class8/§12.4.3.1 a Welcome for an existing group leaves that group alone", func(t *testing.T) {
		// A client already in the group (carol's state stands for it) is
		// sent a Welcome for the same group ID: refused, and the existing
		// state is not touched.
		carol := gs[1]
		before := state(t, carol)
		exists := func(id []byte) bool { return bytes.Equal(id, carol.ID()) }
		if _, err := Join(pc.Welcome, []*PrivateKeyPackage{b.kp}, nil, &JoinOptions{GroupExists: exists}); !errors.Is(err, ErrGroupExists) {
			t.Fatalf("join of an existing group: %v", err)
		}
		if !bytes.Equal(before, state(t, carol)) {
			t.Fatal("the existing group's state changed")
		}
	})
}

// Class 8 for reinitialization (RFC 9420 §11.2, §12.4.3.1): a Welcome with
// a reinit PSK must be for epoch 1 of the group the ReInit named, and the
// old group's state is not changed by joining or by failing to.
func TestHardeningReInitWelcome(t *testing.T) {
	a, b := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil)
	gs := newGroupOf(t, nil, a, b)
	newSuite := MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	prop := must[[]byte](t)(gs[1].ProposeReInit(ReInitParams{GroupID: []byte("new group"), CipherSuite: newSuite}))
	process(t, gs[0], prop)
	pc := must[*PendingCommit](t)(gs[0].Commit(nil))
	aliceOld, bobOld := pc.Next, process(t, gs[1], pc.Commit).Next
	alice2, bob2 := newTestClientSuite(t, newSuite, "alice", nil), newTestClientSuite(t, newSuite, "bob", nil)
	re := must[*PendingCommit](t)(aliceOld.ReInitGroup(alice2.id, []*KeyPackage{bob2.kp.KeyPackage()}))
	h := openHostile(t, re.Welcome, bob2.kp, nil, bobOld)
	// Control: re-sealed, it joins.
	checkAgree(t, re.Next, must[*Group](t)(Join(h.seal(t, bob2.kp, sealOptions{fixTag: true, signer: alice2.id}), []*PrivateKeyPackage{bob2.kp}, nil, &JoinOptions{ReInitFrom: bobOld})))

	join := func(t *testing.T, f func(h *hostileWelcome), opts *JoinOptions, want ...error) {
		c := *h
		c.gs.PSKs = append([]wire.PreSharedKeyID(nil), h.gs.PSKs...)
		f(&c)
		msg := c.seal(t, bob2.kp, sealOptions{fixTag: true, signer: alice2.id})
		rejectsUnchanged(t, bobOld, func() error { _, err := Join(msg, []*PrivateKeyPackage{bob2.kp}, nil, opts); return err }, want...)
	}
	t.Run("class8/§12.4.3.1 reinit Welcome for epoch 2", func(t *testing.T) {
		join(t, func(h *hostileWelcome) { h.gi.GroupContext.Epoch = 2 }, &JoinOptions{ReInitFrom: bobOld}, ErrInvalidGroupInfo)
	})
	t.Run("class8/§11.2 reinit Welcome for another group ID than the ReInit's", func(t *testing.T) {
		join(t, func(h *hostileWelcome) { h.gi.GroupContext.GroupID = []byte("other group") }, &JoinOptions{ReInitFrom: bobOld}, ErrInvalidGroupInfo)
	})
	t.Run("class8/§11.2 reinit Welcome without the old group", func(t *testing.T) {
		join(t, func(*hostileWelcome) {}, nil, ErrMissingPSK)
	})
	t.Run("class8/§12.4.3.1 a second resumption PSK of usage reinit", func(t *testing.T) {
		join(t, func(h *hostileWelcome) {
			second := h.gs.PSKs[0]
			second.PSKNonce = bytes.Repeat([]byte{1}, len(second.PSKNonce))
			h.gs.PSKs = append(h.gs.PSKs, second)
		}, &JoinOptions{ReInitFrom: bobOld}, ErrMalformed)
	})
}
