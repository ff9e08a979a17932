package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Environment variables the commands read.
const (
	// envDataDir names the data directory when --data-dir is not given.
	envDataDir = "MESHCHAT_DATA_DIR"
	// envAPI names the control socket when --api is not given.
	envAPI = "MESHCHAT_API"
)

// apiSocketName is the control socket's file name inside the data directory.
const apiSocketName = "api.sock"

// Exit codes.
const (
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // bad flags or arguments; nothing was done
)

// usageError marks an error in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var u usageError
	if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra reports an unknown subcommand with a plain error.
		return exitUsage
	}
	return exitFailure
}

// oneLine flattens an error message to a single line (joined errors carry
// newlines) so that every failure prints as one line on stderr.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "meshchat",
		Short: "End-to-end encrypted group chat over a serverless libp2p mesh (MLS, RFC 9420)",
		Long: `meshchat runs a peer-to-peer chat node ("meshchat daemon") and talks to it
through a local control socket (every other command). Groups are secured
with MLS (RFC 9420); there is no server.

Identifiers (topic IDs, invite codes, peer IDs) are printed alone on stdout;
everything meant for humans goes to stderr. Exit status: 0 success, 1 failure,
2 bad usage.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(fmt.Sprintf("meshchat {{.Version}} (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	root.AddCommand(
		newVersionCommand(),
		newDaemonCommand(),
		newIDCommand(),
		newCreateCommand(),
		newInviteCommand(),
		newJoinCommand(),
		newSendCommand(),
		newReadCommand(),
		newMembersCommand(),
		newAddCommand(),
		newRemoveCommand(),
		newRotateCommand(),
		newGroupsCommand(),
		newChatCommand(),
		newDemoCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the meshchat version",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "meshchat %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// exactArgs accepts exactly the named positional arguments, with a usage
// error naming what is missing or extra.
func exactArgs(names ...string) cobra.PositionalArgs {
	return rangeArgs(len(names), names...)
}

// rangeArgs accepts between min and len(names) positional arguments.
func rangeArgs(min int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usagef("%s: missing %s (see '%s --help')", cmd.Name(), strings.Join(names[len(args):min], " "), cmd.CommandPath())
		case len(args) > len(names):
			return usagef("%s: unexpected argument %q (see '%s --help')", cmd.Name(), args[len(names)], cmd.CommandPath())
		}
		return nil
	}
}

// dataDirFlag registers --data-dir on cmd.
func dataDirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "data-dir", "", "node data directory (env "+envDataDir+"; default $XDG_DATA_HOME/meshchat, else ~/.local/share/meshchat)")
}

// resolveDataDir picks the data directory: the flag, then $MESHCHAT_DATA_DIR,
// then $XDG_DATA_HOME/meshchat, then ~/.local/share/meshchat.
func resolveDataDir(flag string) (string, error) {
	if flag != "" {
		return filepath.Abs(flag)
	}
	if env := os.Getenv(envDataDir); env != "" {
		return filepath.Abs(env)
	}
	if xdg := os.Getenv("XDG_DATA_HOME"); xdg != "" && filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "meshchat"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set --data-dir or %s (%v)", envDataDir, err)
	}
	return filepath.Join(home, ".local", "share", "meshchat"), nil
}

// resolveSocket picks the control socket path: the flag, then $MESHCHAT_API,
// then api.sock in the data directory.
func resolveSocket(flag, dataDir string) string {
	if flag != "" {
		if p, err := filepath.Abs(flag); err == nil {
			return p
		}
		return flag
	}
	if env := os.Getenv(envAPI); env != "" {
		if p, err := filepath.Abs(env); err == nil {
			return p
		}
		return env
	}
	return filepath.Join(dataDir, apiSocketName)
}
