package node

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/commitorder"
)

// TestRejoinCommitMeta: a commit's metadata with RejoinSince round-trips as
// type 8, one without as type 3; truncated, extended and all-zero
// RejoinSince encodings are rejected, and only an external commit may
// carry RejoinSince.
func TestRejoinCommitMeta(t *testing.T) {
	m := &commitMeta{Parent: commitorder.StateID{1}, RejoinSince: commitorder.StateID{2}}
	enc := m.marshal()
	if len(enc) != 4+64 || enc[3] != metaRejoinCommit {
		t.Fatalf("rejoin metadata encoded as %d bytes of type %d", len(enc), enc[3])
	}
	got, err := parseCommitMeta(enc)
	if err != nil || got.Parent != m.Parent || got.RejoinSince != m.RejoinSince {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	plain := (&commitMeta{Parent: commitorder.StateID{1}}).marshal()
	if len(plain) != 4+32 || plain[3] != metaCommit {
		t.Fatalf("plain metadata encoded as %d bytes of type %d", len(plain), plain[3])
	}
	if got, err := parseCommitMeta(plain); err != nil || !got.RejoinSince.IsZero() {
		t.Fatalf("plain round trip: %+v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"truncated":       enc[:len(enc)-1],
		"trailing byte":   append(bytes.Clone(enc), 0),
		"zero since":      append(bytes.Clone(enc[:36]), make([]byte, 32)...),
		"type 3, 64 byte": append([]byte{'m', 'c', 1, metaCommit}, enc[4:]...),
		"rejoin type, 32": append([]byte{'m', 'c', 1, metaRejoinCommit}, plain[4:]...),
		"version 2":       append([]byte{'m', 'c', 2, metaRejoinCommit}, enc[4:]...),
	} {
		if _, err := parseCommitMeta(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := m.checkSender(&mlsHeader{SenderType: senderTypeNewMemberCommit}); err != nil {
		t.Fatalf("external rejoin commit refused: %v", err)
	}
	if err := m.checkSender(&mlsHeader{SenderType: senderTypeMember}); err == nil {
		t.Fatal("member commit with RejoinSince accepted")
	}
	if err := (&commitMeta{Parent: m.Parent}).checkSender(&mlsHeader{SenderType: senderTypeMember}); err != nil {
		t.Fatalf("member commit refused: %v", err)
	}
}

// TestBranchEnvelopes: branch requests and responses round-trip and are
// parsed strictly: trailing bytes, a path not ending at the served state,
// a bad committer, a partial step, an empty path or GroupInfo, and a
// request sent as the other type are rejected.
func TestBranchEnvelopes(t *testing.T) {
	req, err := (&branchRequest{GroupID: []byte("group")}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !isBranchRequest(req) || isBranchRequest((&syncRequest{GroupID: []byte("g")}).marshal()) {
		t.Fatal("isBranchRequest does not tell the requests apart")
	}
	gotReq, err := parseBranchRequest(req)
	if err != nil || !bytes.Equal(gotReq.GroupID, []byte("group")) {
		t.Fatalf("request round trip: %+v, %v", gotReq, err)
	}
	if _, err := parseBranchRequest(append(bytes.Clone(req), 0)); err == nil {
		t.Fatal("request with a trailing byte accepted")
	}
	if _, err := parseBranchRequest([]byte{'m', 'c', 1, branchRequestType, 0}); err == nil {
		t.Fatal("request with an empty group ID accepted")
	}
	path := []commitorder.Step{
		{State: commitorder.StateID{1}, Epoch: 4},
		{State: commitorder.StateID{2}, Epoch: 5, Committer: commitorder.Committer{Leaf: 3}, CommitHash: [32]byte{9}},
		{State: commitorder.StateID{3}, Epoch: 6, Committer: commitorder.Committer{External: true}, CommitHash: [32]byte{8}, RejoinSince: commitorder.StateID{1}},
	}
	resp := &branchResponse{Epoch: 6, State: commitorder.StateID{3}, GroupInfo: []byte{0, 1, 0, 4}, Path: path}
	enc, err := resp.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBranchResponse(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 6 || got.State != resp.State || !bytes.Equal(got.GroupInfo, resp.GroupInfo) || len(got.Path) != 3 {
		t.Fatalf("response round trip: %+v", got)
	}
	for i := range path {
		if got.Path[i] != path[i] {
			t.Fatalf("step %d: %+v, want %+v", i, got.Path[i], path[i])
		}
	}
	if _, err := parseBranchResponse(append(bytes.Clone(enc), 0)); err == nil {
		t.Fatal("response with a trailing byte accepted")
	}
	if _, err := parseBranchResponse(req); err == nil {
		t.Fatal("request accepted as a response")
	}
	if _, err := parseBranchRequest(enc); err == nil {
		t.Fatal("response accepted as a request")
	}
	mutate := func(f func(r *branchResponse)) []byte {
		r := *resp
		r.Path = append([]commitorder.Step(nil), path...)
		f(&r)
		out, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, bad := range map[string][]byte{
		"wrong last state": mutate(func(r *branchResponse) { r.State = commitorder.StateID{2} }),
		"wrong last epoch": mutate(func(r *branchResponse) { r.Epoch = 7 }),
		"empty path":       mutate(func(r *branchResponse) { r.Path = nil }),
		"no GroupInfo":     mutate(func(r *branchResponse) { r.GroupInfo = nil }),
	} {
		if _, err := parseBranchResponse(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The external flag of the last step is at a fixed offset from the
	// end: 32+32+4+1 bytes.
	flag := len(enc) - (32 + 32 + 4 + 1)
	for name, f := range map[string]func(b []byte){
		"external flag 2":      func(b []byte) { b[flag] = 2 },
		"external with a leaf": func(b []byte) { b[flag+4] = 1 },
	} {
		b := bytes.Clone(enc)
		f(b)
		if _, err := parseBranchResponse(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A path whose length is not a multiple of a step.
	n := 3*pathStepSize - 1
	partial := append(bytes.Clone(enc[:len(enc)-3*pathStepSize-3]), byte(n>>16), byte(n>>8), byte(n))
	partial = append(partial, enc[len(enc)-3*pathStepSize:len(enc)-1]...)
	if _, err := parseBranchResponse(partial); err == nil {
		t.Error("partial step accepted")
	}
}
