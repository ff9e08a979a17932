package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/gossip"
)

// cli runs the meshchat command line in this process with the given stdin
// and returns stdout, stderr (as main prints it) and the exit code.
func cli(t *testing.T, ctx context.Context, stdin string, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	if ctx == nil {
		ctx = context.Background()
	}
	err := root.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString("meshchat: " + oneLine(err) + "\n")
	}
	return out.String(), errOut.String(), exitCode(err)
}

// mustCLI runs cli and fails the test unless the command succeeded.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, nil, "", args...)
	if code != 0 {
		t.Fatalf("meshchat %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// startInProcessDaemon runs the daemon code in this process on 127.0.0.1
// with data directory dir, and waits until its control API answers. It is
// stopped at the end of the test.
func startInProcessDaemon(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- runDaemon(ctx, daemonOptions{
			dataDir:   dir,
			listen:    []string{"/ip4/127.0.0.1/tcp/0"},
			logFormat: "text",
			logLevel:  "warn",
		}, io.Discard, &logs, nil)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("daemon did not stop within 30s")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, code := cli(t, nil, "", "id", "--data-dir", dir)
		if code == 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("daemon exited early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestVersionCommand(t *testing.T) {
	out := mustCLI(t, "version")
	if !strings.HasPrefix(out, "meshchat "+version) {
		t.Fatalf("version output %q", out)
	}
	out = mustCLI(t, "--version")
	if !strings.HasPrefix(out, "meshchat "+version) {
		t.Fatalf("--version output %q", out)
	}
}

func TestHelpEverywhere(t *testing.T) {
	root := newRootCommand()
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		out, errOut, code := cli(t, nil, "", c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", c.Name(), code, out, errOut)
		}
	}
}

// TestUsageErrors checks that bad invocations fail with exit code 2 and one
// line on stderr that says what is wrong, before touching any daemon.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"no-such-command"}, "unknown command"},
		{[]string{"read", "--bogus", "x"}, "unknown flag: --bogus"},
		{[]string{"send"}, "missing TOPIC_ID"},
		{[]string{"add", "topic"}, "missing PEER_ID"},
		{[]string{"id", "extra"}, `unexpected argument "extra"`},
		{[]string{"id", "--json", "--addrs"}, "--json and --addrs exclude each other"},
		{[]string{"create", "--open", "--invite"}, "--open and --invite exclude each other"},
		{[]string{"join", "--timeout", "soon", "x"}, "invalid argument"},
		{[]string{"demo", "--nodes", "1"}, "--nodes must be between"},
		{[]string{"daemon", "--data-dir", dir, "--log-format", "xml"}, "bad --log-format"},
		{[]string{"daemon", "--data-dir", dir, "--log-level", "loud"}, "bad --log-level"},
		{[]string{"send", "--data-dir", dir, "topic"}, "nothing to send"},
		{[]string{"daemon", "--data-dir", dir, "--listen", "tcp:4001"}, "bad --listen"},
		{[]string{"daemon", "--data-dir", dir, "--bootstrap", "/ip4/127.0.0.1/tcp/4001"}, "bad --bootstrap"},
	} {
		out, errOut, code := cli(t, nil, "", tc.args...)
		if code != exitUsage {
			t.Errorf("meshchat %v: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, errOut)
		}
		if out != "" {
			t.Errorf("meshchat %v: stdout %q, want nothing", tc.args, out)
		}
		if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("meshchat %v: stderr %q, want one line containing %q", tc.args, errOut, tc.want)
		}
	}
}

// TestNoDaemon checks the message when no daemon runs for the data
// directory, given by flag or by environment.
func TestNoDaemon(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"id", "--data-dir", dir},
		{"groups", "--data-dir", dir},
		{"send", "--data-dir", dir, "sometopic", "hi"},
	} {
		_, errOut, code := cli(t, nil, "", args...)
		if code != exitFailure || strings.Count(errOut, "\n") != 1 ||
			!strings.Contains(errOut, "no meshchat daemon is running for "+dir) {
			t.Errorf("meshchat %v: exit %d, stderr %q", args, code, errOut)
		}
	}
	envDir := t.TempDir()
	t.Setenv(envDataDir, envDir)
	_, errOut, code := cli(t, nil, "", "id")
	if code != exitFailure || !strings.Contains(errOut, "no meshchat daemon is running for "+envDir) {
		t.Errorf("id with %s: exit %d, stderr %q", envDataDir, code, errOut)
	}
}

func TestResolveDataDir(t *testing.T) {
	t.Setenv(envDataDir, "")
	t.Setenv("XDG_DATA_HOME", "/xdg")
	if got, _ := resolveDataDir(""); got != "/xdg/meshchat" {
		t.Errorf("with XDG_DATA_HOME: %q", got)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, _ := resolveDataDir(""); got != "/home/u/.local/share/meshchat" {
		t.Errorf("without XDG_DATA_HOME: %q", got)
	}
	t.Setenv(envDataDir, "/env/dir")
	if got, _ := resolveDataDir(""); got != "/env/dir" {
		t.Errorf("with %s: %q", envDataDir, got)
	}
	if got, _ := resolveDataDir("/flag/dir"); got != "/flag/dir" {
		t.Errorf("with the flag: %q", got)
	}
	if got := resolveSocket("", "/flag/dir"); got != "/flag/dir/"+apiSocketName {
		t.Errorf("default socket %q", got)
	}
	t.Setenv(envAPI, "/run/m.sock")
	if got := resolveSocket("", "/flag/dir"); got != "/run/m.sock" {
		t.Errorf("socket from %s: %q", envAPI, got)
	}
}

// TestClientAgainstDaemon drives an in-process daemon through the command
// line: output shapes of id --json and read --json, errors for unknown and
// malformed topics, and the commands of a one-member group.
func TestClientAgainstDaemon(t *testing.T) {
	dir := t.TempDir()
	startInProcessDaemon(t, dir)

	// The socket is private to this user, and a second daemon is refused.
	info, err := os.Stat(filepath.Join(dir, apiSocketName))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, mode %v", err, info.Mode())
	}
	_, errOut, code := cli(t, nil, "", "daemon", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0")
	if code != exitFailure || !strings.Contains(errOut, "already running") {
		t.Errorf("second daemon: exit %d, stderr %q", code, errOut)
	}

	// id --json: {"peer_id", "addrs"}, every address ending in /p2p/<id>.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(mustCLI(t, "id", "--json", "--data-dir", dir)), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 || raw["peer_id"] == nil || raw["addrs"] == nil {
		t.Fatalf("id --json keys: %v", raw)
	}
	var id idInfo
	json.Unmarshal(raw["peer_id"], &id.PeerID)
	json.Unmarshal(raw["addrs"], &id.Addrs)
	if _, err := peer.Decode(id.PeerID); err != nil {
		t.Fatalf("peer_id %q: %v", id.PeerID, err)
	}
	if len(id.Addrs) == 0 {
		t.Fatal("no addrs")
	}
	for _, a := range id.Addrs {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(a, "/p2p/"+id.PeerID) {
			t.Errorf("addr %q", a)
		}
	}
	if got := strings.TrimSpace(mustCLI(t, "id", "--data-dir", dir)); got != id.PeerID {
		t.Errorf("id prints %q, want %q", got, id.PeerID)
	}

	// create prints the topic ID alone.
	topicOut := mustCLI(t, "create", "--data-dir", dir, "team")
	topic := strings.TrimSpace(topicOut)
	if _, err := gossip.ParseTopicID(topic); err != nil || topicOut != topic+"\n" {
		t.Fatalf("create printed %q: %v", topicOut, err)
	}
	if got := mustCLI(t, "groups", "--data-dir", dir); !strings.HasPrefix(got, topic+"\tepoch 0\t1 member\topen\tteam") {
		t.Errorf("groups: %q", got)
	}
	if got := strings.TrimSpace(mustCLI(t, "members", "--data-dir", dir, topic)); got != id.PeerID {
		t.Errorf("members: %q", got)
	}
	code1 := strings.TrimSpace(mustCLI(t, "invite", "--data-dir", dir, topic))
	if !strings.HasPrefix(code1, topic+".") {
		t.Errorf("invite code %q", code1)
	}

	// send (argument and stdin), then read --json.
	mustCLI(t, "send", "--data-dir", dir, topic, "hello", "world")
	if _, errOut, code := cli(t, nil, "line from stdin\n", "send", "--data-dir", dir, topic); code != 0 {
		t.Fatalf("send from stdin: %s", errOut)
	}
	lines := strings.Split(strings.TrimSpace(mustCLI(t, "read", "--json", "--data-dir", dir, topic)), "\n")
	if len(lines) != 2 {
		t.Fatalf("read --json: %d lines: %q", len(lines), lines)
	}
	for i, want := range []string{"hello world", "line from stdin"} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatalf("line %q: %v", lines[i], err)
		}
		for _, k := range []string{"sender", "text", "epoch", "time"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %q lacks %q", lines[i], k)
			}
		}
		if m["sender"] != id.PeerID || m["text"] != want || m["epoch"] != float64(0) || m["own"] != true {
			t.Errorf("line %d: %v", i, m)
		}
		if ts, _ := m["time"].(string); ts == "" {
			t.Errorf("time %v", m["time"])
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("time %q: %v", ts, err)
		}
	}
	if got := mustCLI(t, "read", "--limit", "1", "--data-dir", dir, topic); !strings.Contains(got, "me [epoch 0]: line from stdin") || strings.Contains(got, "hello") {
		t.Errorf("read --limit 1: %q", got)
	}

	// rotate moves to epoch 1.
	mustCLI(t, "rotate", "--data-dir", dir, topic)
	var gs []groupInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "groups", "--json", "--data-dir", dir)), &gs); err != nil || len(gs) != 1 {
		t.Fatalf("groups --json: %v %v", gs, err)
	}
	if gs[0].Epoch != 1 || gs[0].Topic != topic || len(gs[0].EpochAuthenticator) != 64 || gs[0].Removed {
		t.Errorf("after rotate: %+v", gs[0])
	}

	// chat through a pipe: a message, a command, /quit.
	out, errOut, code := cli(t, nil, "from chat\n/members\n/quit\nnot sent\n", "chat", "--data-dir", dir, topic)
	if code != 0 || !strings.Contains(errOut, "1 member:") || !strings.Contains(errOut, id.PeerID+"  (you)") {
		t.Errorf("chat: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	hist := mustCLI(t, "read", "--data-dir", dir, topic)
	if !strings.Contains(hist, "me [epoch 1]: from chat") || strings.Contains(hist, "not sent") {
		t.Errorf("history after chat: %q", hist)
	}

	// read --follow prints history, then live messages, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan string, 1)
	go func() {
		out, _, _ := cli(t, ctx, "", "read", "--follow", "--json", "--data-dir", dir, topic)
		followed <- out
	}()
	time.Sleep(300 * time.Millisecond)
	mustCLI(t, "send", "--data-dir", dir, topic, "live one")
	deadline := time.Now().Add(10 * time.Second)
	for {
		hist := mustCLI(t, "read", "--data-dir", dir, topic)
		if strings.Contains(hist, "live one") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case out := <-followed:
		if n := strings.Count(out, "\n"); n != 4 || !strings.Contains(out, `"text":"live one"`) {
			t.Errorf("read --follow printed %d lines: %q", n, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read --follow did not stop when interrupted")
	}

	// Errors: one line, exit 1.
	other := string(gossip.TopicIDForGroup([]byte("not a group of this node")))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send", other, "hi"}, "unknown group"},
		{[]string{"read", other}, "unknown group"},
		{[]string{"members", "not-a-topic"}, "is not a topic ID"},
		{[]string{"remove", topic, id.PeerID}, "cannot remove self"},
		{[]string{"remove", topic, "12D3KooWnotapeer"}, "is not a peer ID"},
		{[]string{"add", topic, id.PeerID}, "already a member"},
		{[]string{"join", "--timeout", "1s", "garbage"}, "malformed"},
	} {
		args := append([]string{tc.args[0], "--data-dir", dir}, tc.args[1:]...)
		out, errOut, code := cli(t, nil, "", args...)
		if code != exitFailure || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("meshchat %v: exit %d, stdout %q, stderr %q; want one line with %q", args, code, out, errOut, tc.want)
		}
	}
}

// TestCustomSocket runs the daemon with --api elsewhere than the data
// directory, reaches it with --api and with MESHCHAT_API, and checks that
// the socket is private and removed at shutdown.
func TestCustomSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "m.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runDaemon(ctx, daemonOptions{dataDir: dir, api: sock, listen: []string{"/ip4/127.0.0.1/tcp/0"},
			logFormat: "json", logLevel: "error"}, io.Discard, io.Discard, nil)
	}()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, code := cli(t, nil, "", "id", "--api", sock); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon with --api did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info, err := os.Stat(sock); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", err, info)
	}
	if _, err := os.Stat(filepath.Join(dir, apiSocketName)); !os.IsNotExist(err) {
		t.Errorf("a socket in the data directory too: %v", err)
	}
	t.Setenv(envAPI, sock)
	if _, errOut, code := cli(t, nil, "", "groups"); code != 0 {
		t.Errorf("groups with %s: %s", envAPI, errOut)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}
	done <- nil
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

// TestOwnerListenerRefusesOthers checks the SO_PEERCRED gate: a listener that
// belongs to another user drops our connections.
func TestOwnerListenerRefusesOthers(t *testing.T) {
	if !peerCredentials {
		t.Skip("no peer credentials on this platform")
	}
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := listenOwnerOnly(sock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acceptOnce := func(l net.Listener) <-chan net.Conn {
		ch := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				ch <- c
			}
			close(ch)
		}()
		return ch
	}
	dial := func() net.Conn {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Same user: accepted.
	accepted := acceptOnce(ln)
	c := dial()
	defer c.Close()
	select {
	case a := <-accepted:
		if a == nil {
			t.Fatal("accept failed")
		}
		a.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("own connection not accepted")
	}

	// The same socket as if it belonged to someone else: our connection
	// is closed, never handed to the server.
	other := &ownerListener{Listener: ln.(*ownerListener).Listener, uid: os.Getuid() + 1, log: slog.New(slog.DiscardHandler)}
	accepted = acceptOnce(other)
	c2 := dial()
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection of another user: read %v, want EOF (closed by the daemon)", err)
	}
	ln.Close()
	if a := <-accepted; a != nil {
		t.Errorf("connection of another user accepted")
	}
}
