package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readme returns the repository's README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fencedAfter returns the body of the first fenced code block after marker.
func fencedAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, marker)
	if !ok {
		t.Fatalf("README has no %q", marker)
	}
	_, rest, ok = strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("no code block after %q", marker)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the info string
	body, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("unterminated code block after %q", marker)
	}
	return body
}

// TestReadmeWalkthrough runs the README's two-node walkthrough verbatim in
// bash, with the freshly built binary first on PATH.
func TestReadmeWalkthrough(t *testing.T) {
	bin := meshchatBinary(t)
	script := fencedAfter(t, readme(t), "<!-- walkthrough:begin -->")
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -eu\n"+script)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TMPDIR="+tmp, envDataDir+"=", envAPI+"=")
	// Its own process group, so that the daemons it starts in the
	// background die with it if it fails or hangs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // nothing may outlive the script
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(tmp, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("---- %s ----\n%s", l, b)
		}
		t.Fatalf("walkthrough: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{`"text":"hello Bob"`, `"text":"hi Alice"`, "me [epoch", "sent from a pipe", "\tremoved\n", "2 members:"} {
		if !strings.Contains(out.String()+errOut.String(), want) {
			t.Errorf("walkthrough output lacks %q\nstdout:\n%s\nstderr:\n%s", want, out.String(), errOut.String())
		}
	}
}

// TestReadmeEmbedding checks that the README's embedding example is the body
// of Example_embedding, which go test compiles and runs.
func TestReadmeEmbedding(t *testing.T) {
	want := strings.TrimSpace(fencedAfter(t, readme(t), "<!-- embedding -->"))
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "// README-BEGIN\n")
	body, _, _ = strings.Cut(body, "// README-END")
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(body, "\t\n"), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if got := strings.TrimSpace(strings.Join(lines, "\n")); got != want {
		t.Errorf("README embedding example and Example_embedding differ:\nREADME:\n%s\nexample:\n%s", want, got)
	}
}

// TestReadmeCommands checks that every "meshchat <command>" in the README is
// a real command.
func TestReadmeCommands(t *testing.T) {
	known := map[string]bool{}
	for _, c := range newRootCommand().Commands() {
		known[c.Name()] = true
	}
	re := regexp.MustCompile("meshchat ([a-z]+)")
	seen := 0
	for _, m := range re.FindAllStringSubmatch(readme(t), -1) {
		switch m[1] {
		case "is", "does", "uses": // prose
			continue
		}
		seen++
		if !known[m[1]] {
			t.Errorf("README mentions 'meshchat %s', which is not a command", m[1])
		}
	}
	if seen < 15 {
		t.Errorf("found only %d command mentions; is the README complete?", seen)
	}
}

// TestReadmeGoDoc runs every "go doc" command the README mentions.
func TestReadmeGoDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go doc; skipped with -short")
	}
	re := regexp.MustCompile("`(go doc [^`]+)`")
	found := 0
	for _, m := range re.FindAllStringSubmatch(readme(t), -1) {
		found++
		args := strings.Fields(m[1])
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil || len(out) == 0 {
			t.Errorf("%s: %v\n%s", m[1], err, out)
		}
	}
	if found == 0 {
		t.Error("README mentions no go doc command")
	}
}
