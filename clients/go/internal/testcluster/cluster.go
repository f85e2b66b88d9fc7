// Package testcluster starts three-node clusters of dynamo-node processes on
// loopback for the tests of the client, as the Rust client's tests do
// (clients/rust/tests/live/support): n1, n2, n3 in zones z1, z2, z3, n = 3,
// r = w = 2, each node on its own IP 127.0.B.i behind a fault proxy, so a
// test can cut one off from the others (Cluster.Isolate).
package testcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReadyTimeout bounds the wait for a node to answer /readyz.
const ReadyTimeout = 60 * time.Second

// Binary is the dynamo-node to run: $DYNAMO_NODE_BIN (a relative path is
// taken from the module's directory, clients/go), else
// target/debug/dynamo-node of the repository holding this module. It is an
// error (never a reason to skip) when the file is missing.
func Binary() (string, error) {
	module, err := moduleDir()
	if err != nil {
		return "", err
	}
	path := os.Getenv("DYNAMO_NODE_BIN")
	if path == "" {
		path = filepath.Join(module, "..", "..", "target", "debug", "dynamo-node")
	} else if !filepath.IsAbs(path) {
		path = filepath.Join(module, path) // relative to the module, whichever package runs
	}
	path = filepath.Clean(path)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("the node binary %s is missing (set DYNAMO_NODE_BIN or build it with `cargo build -p dynamo-node` in the repository): %w", path, err)
	}
	return path, nil
}

// moduleDir is the directory of go.mod above the working directory (go test
// runs in the package's directory).
func moduleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(data), "module dynamo.dev/dynamo") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of dynamo.dev/dynamo not found above the working directory")
		}
		dir = parent
	}
}

// nodeIP is node i's (1..3) IP in a cluster whose B is b: every node of a
// cluster has its own loopback IP, 127.0.B.i (B random per cluster), and
// listens there: its client port, its internal port and the fault proxy in
// front of the internal port. Linux routes all of 127.0.0.0/8 to the
// loopback interface, so any such address can be bound without setup;
// where only 127.0.0.1 is configured (e.g. macOS) the clusters cannot
// start (see loopbackError).
func nodeIP(b, i int) string { return fmt.Sprintf("127.0.%d.%d", b, i) }

// freePort is a TCP port free on ip right now, preferably below Linux's
// ephemeral range (32768 and up), where outgoing connections (the nodes
// bind theirs to their own IP) cannot take it before the node listens on
// it.
func freePort(ip string) (int, error) {
	for range 50 {
		port := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port))); err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, loopbackError(ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// loopbackError explains a failure to listen on a node's IP.
func loopbackError(ip string, err error) error {
	return fmt.Errorf("listening on %s: %w (the test clusters give each node its own 127.0.B.i address, which needs every address of 127.0.0.0/8 on the loopback interface, as Linux has it; macOS, e.g., has only 127.0.0.1 unless aliases are added with ifconfig lo0 alias)", ip, err)
}

// Options shape a cluster.
type Options struct {
	// AuthDir is passed as --auth-dir (see WriteAuthDir).
	AuthDir string
	// TLS makes Start write a CA and a certificate for the nodes' IPs into
	// the cluster's directory (tls/, see WriteTLSDir) and pass it as
	// --tls-dir; the nodes then serve https:// and CAFile is its ca.crt.
	TLS bool
	// Args are extra flags for every node.
	Args []string
}

// Node is one dynamo-node process.
type Node struct {
	// ID and Zone are n1..n3 and z1..z3.
	ID, Zone string
	// IP is the node's own loopback address, 127.0.B.i.
	IP string
	// Client is the client API's host:port, Internal the internal one
	// (node-to-node stream and admin routes), both on IP.
	Client, Internal string
	// DataDir is its --data-dir, LogPath the file of its output.
	DataDir, LogPath string

	scheme string
	args   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// URL is the base URL of the node's client API.
func (n *Node) URL() string { return n.scheme + "://" + n.Client }

// AdminURL is the base URL of the node's internal listener.
func (n *Node) AdminURL() string { return n.scheme + "://" + n.Internal }

// Cluster is three nodes. Node-to-node traffic goes through a fault proxy
// in front of each node's internal port (see Isolate); clients reach the
// nodes directly.
type Cluster struct {
	// Dir holds the nodes' data directories and logs.
	Dir string
	// Nodes are n1, n2, n3.
	Nodes []*Node
	// CAFile is the CA of a TLS cluster ("" without TLS).
	CAFile string
	// HTTP is a client trusting the cluster's CA, for probes.
	HTTP *http.Client

	binary  string
	proxies []*faultProxy
}

// URLs are the client URLs of the nodes, in order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// errPortTaken marks a start that failed because a port picked as free
// was taken before the node listened on it.
var errPortTaken = errors.New("a port was taken before the node could listen on it")

// Start starts a cluster in dir and waits until every node is ready. A
// start that loses a port race is tried again with other ports.
func Start(dir string, opts Options) (*Cluster, error) {
	binary, err := Binary()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := start(dir, binary, opts)
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return c, err
		}
		for i := 1; i <= 3; i++ {
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("n%d", i)))
			os.Remove(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		}
	}
}

func start(dir, binary string, opts Options) (*Cluster, error) {
	c := &Cluster{Dir: dir, binary: binary, HTTP: &http.Client{Timeout: 5 * time.Second}}
	subnet := 1 + rand.IntN(254)
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	for i := 1; i <= 3; i++ {
		ip := nodeIP(subnet, i)
		client, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		internal, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, &Node{
			ID:       fmt.Sprintf("n%d", i),
			Zone:     fmt.Sprintf("z%d", i),
			IP:       ip,
			Client:   net.JoinHostPort(ip, fmt.Sprint(client)),
			Internal: net.JoinHostPort(ip, fmt.Sprint(internal)),
			DataDir:  filepath.Join(dir, fmt.Sprintf("n%d", i)),
			LogPath:  filepath.Join(dir, fmt.Sprintf("n%d.log", i)),
			scheme:   scheme,
		})
	}
	var tlsDir string
	if opts.TLS {
		tlsDir = filepath.Join(dir, "tls")
		ips := make([]net.IP, len(c.Nodes))
		for i, n := range c.Nodes {
			ips[i] = net.ParseIP(n.IP)
		}
		if err := WriteTLSDir(tlsDir, ips); err != nil {
			return nil, err
		}
		c.CAFile = filepath.Join(tlsDir, "ca.crt")
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		c.HTTP.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	// Every node gets the same --peer list, naming the proxies: nodes
	// gossip their ring documents, addresses included, and converge on one
	// of them, so per-node lists would not last.
	var peers []string
	for _, n := range c.Nodes {
		proxy, err := startProxy(n.IP, n.Internal)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.proxies = append(c.proxies, proxy)
		peers = append(peers, fmt.Sprintf("--peer=%s=%s,%s", n.ID, proxy.Addr(), n.Zone))
	}
	for _, n := range c.Nodes {
		n.args = append([]string{
			"serve",
			"--node-id=" + n.ID,
			"--zone=" + n.Zone,
			"--listen=" + n.Client,
			"--internal-listen=" + n.Internal,
			"--data-dir=" + n.DataDir,
			"--initial-cluster-state=new",
		}, peers...)
		if opts.AuthDir != "" {
			n.args = append(n.args, "--auth-dir="+opts.AuthDir)
		}
		if tlsDir != "" {
			n.args = append(n.args, "--tls-dir="+tlsDir)
		}
		n.args = append(n.args, opts.Args...)
		if err := c.start(n); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, n := range c.Nodes {
		if err := c.waitReady(n); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Isolate cuts node i off from the others (or heals the cut): its proxy
// refuses every connection and the others refuse node i's, closing those
// open. Clients still reach every node.
func (c *Cluster) Isolate(i int, cut bool) {
	c.proxies[i].setIsolated(cut)
	for j, p := range c.proxies {
		if j != i {
			p.setBlocked(c.Nodes[i].IP, cut)
		}
	}
}

// Proxies describes the fault proxies (open and refused connections), for
// a failing test's log.
func (c *Cluster) Proxies() string {
	var b strings.Builder
	for i, p := range c.proxies {
		fmt.Fprintf(&b, "%s proxy %v; ", c.Nodes[i].ID, p)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func (c *Cluster) start(n *Node) error {
	log, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.binary, n.args...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.Env = append(os.Environ(), "RUST_LOG="+envOr("RUST_LOG", "info"))
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	return nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func (c *Cluster) waitReady(n *Node) error {
	err := WaitUntil(context.Background(), ReadyTimeout, func() bool {
		select {
		case <-n.exited:
			return true
		default:
		}
		resp, err := c.HTTP.Get(n.URL() + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-n.exited:
		log := c.LogHead(n, 30)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("%s: %w", n.ID, errPortTaken)
		}
		return fmt.Errorf("%s exited at start; its log:\n%s", n.ID, log)
	default:
	}
	if err != nil {
		return fmt.Errorf("%s not ready: %w; its log:\n%s", n.ID, err, c.LogTail(n, 30))
	}
	return nil
}

// StopNode stops node i: SIGTERM, then SIGKILL after 10 s.
func (c *Cluster) StopNode(i int) {
	n := c.Nodes[i]
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Stop stops every node and the proxies.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.StopNode(i)
		}()
	}
	wg.Wait()
	for _, p := range c.proxies {
		p.close()
	}
}

// LogHead is the first lines of a node's log.
func (c *Cluster) LogHead(n *Node, lines int) string {
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[:min(lines, len(all))], "\n")
}

// LogTail is the last lines of a node's log.
func (c *Cluster) LogTail(n *Node, lines int) string {
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// WaitUntil polls check every 100 ms until it returns true, ctx is done or
// timeout passes.
func WaitUntil(ctx context.Context, timeout time.Duration, check func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		if check() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %v", timeout)
		case <-ticker.C:
		}
	}
}
