package framing

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Class 1 (issue 9), RFC 9420 §6.1: a *Verified can only come out of
// signature verification. The types have no exported fields (no literal
// outside this package can fill them), and inside the package the only
// composite literal of Verified is in VerifyWithKey, after the signature
// check.
func TestHardeningVerifiedOnlyByVerifying(t *testing.T) {
	for _, v := range []any{Verified{}, Unverified{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() {
				t.Errorf("class1/§6.1 %s has exported field %s", typ.Name(), f.Name)
			}
		}
	}
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var makers []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if lit, ok := n.(*ast.CompositeLit); ok {
					if id, ok := lit.Type.(*ast.Ident); ok && id.Name == "Verified" {
						makers = append(makers, fn.Name.Name)
					}
				}
				return true
			})
		}
	}
	if !slices.Equal(makers, []string{"VerifyWithKey"}) {
		t.Fatalf("class1/§6.1 Verified is built in %v, want only in VerifyWithKey", makers)
	}
}

// Class 1 and 5 (issue 9), RFC 9420 §6.1, §9.2: a PrivateMessage whose AEAD
// opens but whose signature is not the sender's does not consume the
// ratchet generation it names. Every member can derive every member's
// message keys, so otherwise any member could make another's next message
// unreadable by sending a forgery first.
func TestHardeningForgedSignatureKeepsKey(t *testing.T) {
	g := newTestGroup(t, suite1, 3)
	sender, receiver := g.epoch(t), g.epoch(t)
	forger := g.epoch(t) // leaf 2's view of the epoch: it has leaf 0's keys too

	// Leaf 2 seals content claiming leaf 0 with leaf 0's next key, signed
	// with its own key.
	ac := g.signed(t, forger, g.signers[2], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), wire.ContentTypeApplication))
	forged, err := forger.ProtectPrivate(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := receiver.keys.SecretTree.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.receive(receiver, forged)
	wantErr(t, "class1/§6.1 forged signature", err, ErrBadSignature)
	after, err := receiver.keys.SecretTree.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("class5/§9.2 a forged message consumed the generation it named")
	}
	// The real message of that generation opens, once.
	real := g.privateFrom(t, sender, 0, wire.ContentTypeApplication)
	if _, err := g.receive(receiver, real); err != nil {
		t.Fatalf("real message after a forgery: %v", err)
	}
	_, err = g.receive(receiver, real)
	wantErr(t, "replay", err, ErrKeyConsumed)
}
