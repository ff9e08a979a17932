package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/node"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"
)

// defaultListenAddrs is every interface, an OS-chosen port, TCP and QUIC, on
// IPv4 and IPv6 (the host starts if at least one of them works).
var defaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// Daemon time bounds.
const (
	startTimeout    = 30 * time.Second // node start-up, including bootstrap dials
	shutdownTimeout = 10 * time.Second // waiting for API requests to finish
	// maxSocketPath is the longest Unix socket path Linux accepts
	// (sockaddr_un.sun_path holds 108 bytes with the terminating NUL).
	maxSocketPath = 107
)

// daemonOptions are the daemon's flags.
type daemonOptions struct {
	dataDir   string
	listen    []string
	bootstrap []string
	api       string
	logFormat string
	logLevel  string
}

func newDaemonCommand() *cobra.Command {
	var opts daemonOptions
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run a meshchat node in the foreground",
		Long: `Run a meshchat node in the foreground until SIGINT or SIGTERM, then shut
down cleanly (group state flushed to the store, topics left, connections
closed).

Once the node is up and the control API listens, the daemon prints on stdout
its peer ID on the first line, then one full multiaddr (ending in
/p2p/<peer ID>) per line; give one of those to another node's --bootstrap.
Logs go to stderr.

The control API is HTTP with JSON bodies on a Unix socket, by default
api.sock in the data directory, with mode 0600; on Linux the daemon also
refuses connections from other users (SO_PEERCRED).`,
		Example: `  meshchat daemon --data-dir /tmp/alice --listen /ip4/127.0.0.1/tcp/0
  meshchat daemon --data-dir /tmp/bob --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A daemon whose stdout or stderr reader went away keeps
			// running (writes fail with EPIPE instead of killing it).
			signal.Ignore(syscall.SIGPIPE)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDaemon(ctx, opts, cmd.OutOrStdout(), cmd.ErrOrStderr(), stop)
		},
	}
	dataDirFlag(cmd, &opts.dataDir)
	cmd.Flags().StringArrayVar(&opts.listen, "listen", nil, "multiaddr to listen on, repeatable (default: all interfaces, OS-chosen port, TCP and QUIC)")
	cmd.Flags().StringArrayVar(&opts.bootstrap, "bootstrap", nil, "full multiaddr (ending in /p2p/<peer ID>) of a peer to join the mesh through, repeatable")
	cmd.Flags().StringVar(&opts.api, "api", "", "control socket path (env "+envAPI+"; default <data dir>/"+apiSocketName+")")
	cmd.Flags().StringVar(&opts.logFormat, "log-format", "text", "log format on stderr: text or json")
	cmd.Flags().StringVar(&opts.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// newLogger builds the daemon's logger from the flags.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("bad --log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("bad --log-format %q: want text or json", format)
}

// runDaemon runs a node and its control API until ctx ends. stop, if not
// nil, is called once ctx has ended, so that a second signal kills the
// process the default way.
func runDaemon(ctx context.Context, opts daemonOptions, stdout, stderr io.Writer, stop func()) error {
	log, err := newLogger(stderr, opts.logFormat, opts.logLevel)
	if err != nil {
		return err
	}
	if err := checkAddrs(opts.listen, opts.bootstrap); err != nil {
		return err
	}
	dataDir, err := resolveDataDir(opts.dataDir)
	if err != nil {
		return err
	}
	sock := resolveSocket(opts.api, dataDir)
	if len(sock) > maxSocketPath {
		return usagef("control socket path %s is %d bytes, more than Unix sockets allow (%d): choose a shorter one with --api", sock, len(sock), maxSocketPath)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if info, err := os.Stat(dataDir); err == nil && info.Mode().Perm()&0o077 != 0 {
		log.Warn("data directory is accessible to other users; consider chmod 700", "dir", dataDir, "mode", fmt.Sprintf("%04o", info.Mode().Perm()))
	}
	if err := claimSocket(sock); err != nil {
		return err
	}

	listen := opts.listen
	if len(listen) == 0 {
		listen = defaultListenAddrs
	}
	startCtx, cancelStart := context.WithTimeout(ctx, startTimeout)
	n, err := node.New(startCtx, node.Config{
		DataDir:        dataDir,
		ListenAddrs:    listen,
		BootstrapPeers: opts.bootstrap,
		Logger:         log,
	})
	cancelStart()
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	// From here on, every exit path closes the node (flushing its state).
	apiCtx, cancelAPI := context.WithCancel(context.Background())
	api, handler := newAPIServer(apiCtx, n, log)
	shutdown := func() {
		cancelAPI()
		if err := n.Close(); err != nil {
			log.Warn("close node", "err", err)
		}
		api.hub.wait()
	}

	ln, err := listenOwnerOnly(sock, log)
	if err != nil {
		shutdown()
		return err
	}
	defer os.Remove(sock)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return apiCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	log.Info("meshchat daemon running", "version", version, "peer_id", n.ID(), "data_dir", dataDir, "api", sock)
	var banner strings.Builder
	fmt.Fprintln(&banner, n.ID())
	for _, a := range n.Addrs() {
		fmt.Fprintln(&banner, a)
	}
	if _, err := io.WriteString(stdout, banner.String()); err != nil {
		log.Warn("print addresses", "err", err)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case serveErr = <-served:
		log.Error("control API stopped", "err", serveErr)
	}
	if stop != nil {
		stop()
	}
	// Followed streams end when apiCtx is cancelled; then the server
	// drains the remaining requests, and the node closes last.
	cancelAPI()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("control API shutdown", "err", err)
		srv.Close()
	}
	cancel()
	shutdown()
	log.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("control API: %w", serveErr)
	}
	return nil
}

// checkAddrs rejects malformed --listen and --bootstrap values before
// anything starts.
func checkAddrs(listen, bootstrap []string) error {
	for _, s := range listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return usagef("bad --listen %q: %v (example: /ip4/0.0.0.0/tcp/4001)", s, err)
		}
	}
	for _, s := range bootstrap {
		a, err := ma.NewMultiaddr(s)
		if err == nil {
			_, err = peer.AddrInfoFromP2pAddr(a)
		}
		if err != nil {
			return usagef("bad --bootstrap %q: %v (want a full multiaddr ending in /p2p/<peer ID>, as 'meshchat id --addrs' prints)", s, err)
		}
	}
	return nil
}

// claimSocket makes sure no other daemon serves sock: a live socket is an
// error, a stale one (left by a crash) is removed, anything else at that
// path is left alone and is an error.
func claimSocket(sock string) error {
	info, err := os.Lstat(sock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if info.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket path %s exists and is not a socket", sock)
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another meshchat daemon is already running on %s", sock)
	}
	if err := os.Remove(sock); err != nil {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	return nil
}

// listenOwnerOnly listens on the Unix socket sock with mode 0600 and accepts
// only connections from this process's user.
func listenOwnerOnly(sock string, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// Close removes the file; the daemon removes it itself too.
		ul.SetUnlinkOnClose(true)
	}
	return &ownerListener{Listener: ln, uid: os.Getuid(), log: log}, nil
}

// ownerListener drops connections from other users (where the platform
// tells who connects).
type ownerListener struct {
	net.Listener
	uid int
	log *slog.Logger
}

func (l *ownerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !peerCredentials {
			return c, err
		}
		uid, err := peerUID(c)
		if err == nil && uid == l.uid {
			return c, nil
		}
		l.log.Warn("refused a control connection from another user", "uid", uid, "err", err)
		c.Close()
	}
}
