package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the end-to-end tests.
const (
	e2eCommandTimeout = 90 * time.Second // one CLI invocation
	e2eWait           = 30 * time.Second // one condition polled for
	e2eStopTimeout    = 20 * time.Second // a daemon's clean shutdown
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

// meshchatBinary builds the meshchat command once per test run.
func meshchatBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the meshchat binary; skipped with -short")
	}
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "meshchat-e2e-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "meshchat")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// run runs the binary and returns stdout, stderr and the exit code.
func run(t *testing.T, bin string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), envDataDir+"=", envAPI+"=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("meshchat %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// must runs the binary and fails the test unless it succeeded.
func must(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, bin, "", args...)
	if code != 0 {
		t.Fatalf("meshchat %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// eventually polls cond every 100 ms until it holds, for at most e2eWait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", e2eWait, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemonProc is one "meshchat daemon" process.
type daemonProc struct {
	name    string
	dataDir string
	cmd     *exec.Cmd
	logs    *lockedBuffer
	banner  chan []string // the lines it printed on stdout
	exited  chan struct{}
	err     error // after exited
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon starts a daemon on 127.0.0.1 (TCP and QUIC) and waits until
// its control API answers. It is killed at the end of the test if still
// running; its logs are shown if the test failed.
func startDaemon(t *testing.T, bin, name, dataDir string, bootstrap ...string) *daemonProc {
	t.Helper()
	args := []string{"daemon", "--data-dir", dataDir,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--log-level", "debug"}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	d := &daemonProc{name: name, dataDir: dataDir, logs: &lockedBuffer{}, banner: make(chan []string, 1), exited: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), envDataDir+"=", envAPI+"=")
	d.cmd.Stderr = d.logs
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		var lines []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		d.banner <- lines
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("---- %s daemon log (%s) ----\n%s", name, dataDir, d.logs.String())
		}
	})
	deadline := time.Now().Add(e2eWait)
	for {
		if _, _, code := run(t, bin, "", "id", "--data-dir", dataDir); code == 0 {
			return d
		}
		select {
		case <-d.exited:
			t.Fatalf("%s daemon exited early: %v\n%s", name, d.err, d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s daemon did not answer within %v\n%s", name, e2eWait, d.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
		if d.err != nil {
			t.Fatalf("%s daemon exited with %v after SIGTERM", d.name, d.err)
		}
	case <-time.After(e2eStopTimeout):
		t.Fatalf("%s daemon did not stop within %v of SIGTERM", d.name, e2eStopTimeout)
	}
}

// groupsOf returns a daemon's groups (groups --json).
func groupsOf(t *testing.T, bin, dataDir string) []groupInfo {
	t.Helper()
	var gs []groupInfo
	if err := json.Unmarshal([]byte(must(t, bin, "groups", "--json", "--data-dir", dataDir)), &gs); err != nil {
		t.Fatalf("groups --json: %v", err)
	}
	return gs
}

// groupOn returns the daemon's view of the group topic.
func groupOn(t *testing.T, bin, dataDir, topic string) (groupInfo, bool) {
	t.Helper()
	for _, g := range groupsOf(t, bin, dataDir) {
		if g.Topic == topic {
			return g, true
		}
	}
	return groupInfo{}, false
}

// messagesOn returns the daemon's messages of the group (read --json).
func messagesOn(t *testing.T, bin, dataDir, topic string) []messageInfo {
	t.Helper()
	var ms []messageInfo
	for _, line := range strings.Split(strings.TrimSpace(must(t, bin, "read", "--json", "--data-dir", dataDir, topic)), "\n") {
		if line == "" {
			continue
		}
		var m messageInfo
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("read --json line %q: %v", line, err)
		}
		ms = append(ms, m)
	}
	return ms
}

func hasMessage(ms []messageInfo, sender, text string) bool {
	for _, m := range ms {
		if m.Sender == sender && m.Text == text {
			return true
		}
	}
	return false
}

// TestEndToEnd runs three daemons on 127.0.0.1 and drives them only through
// the meshchat binary: create, join by topic ID, send, read --json on every
// node, remove, rotate; then one daemon is stopped with SIGTERM and
// restarted on the same data directory, and it is still in the group at the
// current epoch and receives new messages.
func TestEndToEnd(t *testing.T) {
	bin := meshchatBinary(t)
	base := t.TempDir()
	dirA, dirB, dirC := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")

	startDaemon(t, bin, "A", dirA)
	var idA idInfo
	if err := json.Unmarshal([]byte(must(t, bin, "id", "--json", "--data-dir", dirA)), &idA); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, bin, "B", dirB, idA.Addrs...)
	c := startDaemon(t, bin, "C", dirC, idA.Addrs...)
	ids := map[string]string{}
	for name, dir := range map[string]string{"A": dirA, "B": dirB, "C": dirC} {
		ids[name] = strings.TrimSpace(must(t, bin, "id", "--data-dir", dir))
	}

	// A creates an open group; B and C join by topic ID.
	topic := strings.TrimSpace(must(t, bin, "create", "--open", "--data-dir", dirA, "e2e"))
	for _, dir := range []string{dirB, dirC} {
		if got := strings.TrimSpace(must(t, bin, "join", "--timeout", "60s", "--data-dir", dir, topic)); got != topic {
			t.Fatalf("join printed %q, want %q", got, topic)
		}
	}
	eventually(t, "all three at the same epoch with three members", func() bool {
		ga, _ := groupOn(t, bin, dirA, topic)
		gb, _ := groupOn(t, bin, dirB, topic)
		gc, _ := groupOn(t, bin, dirC, topic)
		return len(ga.Members) == 3 && ga.EpochAuthenticator == gb.EpochAuthenticator && ga.EpochAuthenticator == gc.EpochAuthenticator
	})

	// Everyone sends; read --json shows every message on every node.
	texts := map[string]string{"A": "hello from A", "B": "hello from B", "C": "hello from C"}
	dirs := map[string]string{"A": dirA, "B": dirB, "C": dirC}
	for name, text := range texts {
		must(t, bin, "send", "--data-dir", dirs[name], topic, text)
	}
	for reader, dir := range dirs {
		eventually(t, reader+" to read every message", func() bool {
			ms := messagesOn(t, bin, dir, topic)
			for sender, text := range texts {
				if !hasMessage(ms, ids[sender], text) {
					return false
				}
			}
			return true
		})
	}
	for _, m := range messagesOn(t, bin, dirB, topic) {
		if (m.Sender != ids["A"] && m.Sender != ids["B"] && m.Sender != ids["C"]) || m.Time.IsZero() || m.Topic != topic || m.Own != (m.Sender == ids["B"]) {
			t.Errorf("message on B: %+v", m)
		}
	}

	// B follows the group; its stream must end when B is removed.
	followCtx, cancelFollow := context.WithTimeout(context.Background(), e2eCommandTimeout)
	defer cancelFollow()
	follow := exec.CommandContext(followCtx, bin, "read", "--follow", "--json", "--data-dir", dirB, topic)
	var followOut, followErr bytes.Buffer
	follow.Stdout, follow.Stderr = &followOut, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followDone := make(chan error, 1)
	go func() { followDone <- follow.Wait() }()

	// A removes B: B learns it, and cannot read what A sends next.
	must(t, bin, "remove", "--data-dir", dirA, topic, ids["B"])
	eventually(t, "B to see its removal", func() bool {
		g, ok := groupOn(t, bin, dirB, topic)
		return ok && g.Removed
	})
	must(t, bin, "send", "--data-dir", dirA, topic, "after removal")
	eventually(t, "C to read the message sent after the removal", func() bool {
		return hasMessage(messagesOn(t, bin, dirC, topic), ids["A"], "after removal")
	})
	if _, errOut, code := run(t, bin, "", "send", "--data-dir", dirB, topic, "still here?"); code != exitFailure || !strings.Contains(errOut, "removed") {
		t.Errorf("send by a removed member: exit %d, stderr %q", code, errOut)
	}
	select {
	case err := <-followDone:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != exitFailure || !strings.Contains(followErr.String(), "removed from the group") {
			t.Errorf("read --follow on the removed member: %v, stderr %q", err, followErr.String())
		}
		if n := strings.Count(followOut.String(), "\n"); n < 3 || strings.Contains(followOut.String(), "after removal") {
			t.Errorf("read --follow on the removed member printed %d lines: %q", n, followOut.String())
		}
	case <-time.After(e2eWait):
		t.Error("read --follow did not end when its node was removed")
	}

	// C rotates; A and C agree on the new epoch.
	before, _ := groupOn(t, bin, dirC, topic)
	must(t, bin, "rotate", "--data-dir", dirC, topic)
	var current groupInfo
	eventually(t, "A and C to agree on the epoch after the rotation", func() bool {
		ga, _ := groupOn(t, bin, dirA, topic)
		gc, _ := groupOn(t, bin, dirC, topic)
		current = ga
		return ga.Epoch == before.Epoch+1 && ga.EpochAuthenticator == gc.EpochAuthenticator && len(ga.Members) == 2
	})
	if hasMessage(messagesOn(t, bin, dirB, topic), ids["A"], "after removal") {
		t.Error("the removed member B has the message sent after its removal")
	}

	// An invite-only group refuses a join by bare topic ID: join times out
	// with a clear reason.
	private := strings.TrimSpace(must(t, bin, "create", "--invite", "--data-dir", dirA, "private"))
	if out, errOut, code := run(t, bin, "", "join", "--timeout", "3s", "--data-dir", dirC, private); code != exitFailure || out != "" ||
		!strings.Contains(errOut, "not admitted within 3s") || !strings.Contains(errOut, "invite code") {
		t.Errorf("join of an invite-only group without a code: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// SIGTERM C, restart it on the same data directory.
	c.stop(t)
	if lines := <-c.banner; len(lines) < 2 || lines[0] != ids["C"] || !strings.HasSuffix(lines[1], "/p2p/"+ids["C"]) {
		t.Errorf("daemon banner on stdout: %q", lines)
	}
	if _, err := os.Stat(filepath.Join(dirC, apiSocketName)); !os.IsNotExist(err) {
		t.Errorf("control socket left behind after shutdown: %v", err)
	}
	startDaemon(t, bin, "C (restarted)", dirC, idA.Addrs...)
	if got := strings.TrimSpace(must(t, bin, "id", "--data-dir", dirC)); got != ids["C"] {
		t.Fatalf("restarted C has peer ID %s, want %s", got, ids["C"])
	}
	gc, ok := groupOn(t, bin, dirC, topic)
	if !ok || gc.Removed || gc.Epoch != current.Epoch || gc.EpochAuthenticator != current.EpochAuthenticator {
		t.Fatalf("restarted C: group %+v (found %v), want epoch %d authenticator %s", gc, ok, current.Epoch, current.EpochAuthenticator)
	}
	if !hasMessage(messagesOn(t, bin, dirC, topic), ids["A"], "hello from A") {
		t.Error("restarted C lost its history")
	}
	// A publishes to the peers it knows on the topic: wait until the
	// restarted C is one of them.
	eventually(t, "A to see the restarted C on the topic", func() bool {
		g, _ := groupOn(t, bin, dirA, topic)
		return slices.Contains(g.TopicPeers, ids["C"])
	})
	must(t, bin, "send", "--data-dir", dirA, topic, "welcome back")
	eventually(t, "restarted C to receive a new message", func() bool {
		return hasMessage(messagesOn(t, bin, dirC, topic), ids["A"], "welcome back")
	})
	must(t, bin, "send", "--data-dir", dirC, topic, "C is back")
	eventually(t, "A to receive from the restarted C", func() bool {
		return hasMessage(messagesOn(t, bin, dirA, topic), ids["C"], "C is back")
	})
}

// TestBinaryErrors checks, on the real binary, that failures print one line
// on stderr with the documented exit codes and never a stack trace.
func TestBinaryErrors(t *testing.T) {
	bin := meshchatBinary(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"read", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"id", "--data-dir", dir}, exitFailure, "no meshchat daemon is running"},
		{[]string{"send", "--data-dir", dir, "topic", "hi"}, exitFailure, "no meshchat daemon is running"},
	} {
		out, errOut, code := run(t, bin, "", tc.args...)
		if code != tc.code || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) ||
			strings.Contains(errOut, "goroutine") {
			t.Errorf("meshchat %v: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if out, _, code := run(t, bin, "", "--version"); code != 0 || !strings.HasPrefix(out, "meshchat ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}

// TestDemo runs the demo (the README's main job) with three nodes.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mesh of nodes; skipped with -short")
	}
	var out bytes.Buffer
	err := runDemo(context.Background(), &out, &out, demoOptions{nodes: 3, timeout: 30 * time.Second})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[1/7]", "[7/7] cleanup", "0 failed", "demo passed", "node2's group reports that it was removed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Error("demo output has a failed check")
	}
}
