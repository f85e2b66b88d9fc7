package testcluster

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// faultProxy is a TCP proxy in front of one node's internal port, as
// testkit/src/proxy.rs of the repository: it listens on the node's own
// loopback IP and is the address every node is given for that node
// (--peer). Nodes dial their peers from their own IP (that of
// --internal-listen), so a connection's source IP tells which node opened
// it. Cutting node i off from the others: its proxy refuses everything,
// the others refuse node i's IP; both close what is open.
type faultProxy struct {
	target   string
	listener net.Listener

	mu       sync.Mutex
	isolated bool
	blocked  map[string]bool // source IPs refused
	open     map[*link]struct{}
	refused  int
	closed   bool
}

// link is a connection being forwarded; out is nil while it is dialled.
type link struct {
	source  string
	in, out net.Conn
}

// startProxy listens on ip (any free port) in front of target.
func startProxy(ip, target string) (*faultProxy, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, loopbackError(ip, err)
	}
	p := &faultProxy{target: target, listener: l, blocked: map[string]bool{}, open: map[*link]struct{}{}}
	go p.serve()
	return p, nil
}

// Addr is where the proxy listens.
func (p *faultProxy) Addr() string { return p.listener.Addr().String() }

func (p *faultProxy) serve() {
	for {
		conn, err := p.listener.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go p.forward(conn)
	}
}

func (p *faultProxy) refuses(source string) bool {
	return p.closed || p.isolated || p.blocked[source]
}

func (p *faultProxy) forward(in net.Conn) {
	source, _, _ := net.SplitHostPort(in.RemoteAddr().String())
	l := &link{source: source, in: in}
	p.mu.Lock()
	if p.refuses(source) {
		p.refused++
		p.mu.Unlock()
		in.Close()
		return
	}
	p.open[l] = struct{}{}
	p.mu.Unlock()
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	p.mu.Lock()
	if _, still := p.open[l]; !still || err != nil {
		// Cut while dialling, or the node is down.
		delete(p.open, l)
		p.mu.Unlock()
		in.Close()
		if out != nil {
			out.Close()
		}
		return
	}
	l.out = out
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	in.Close()
	out.Close()
	<-done
	p.mu.Lock()
	delete(p.open, l)
	p.mu.Unlock()
}

// closeRefused closes the open connections the rules now refuse; p.mu is
// held.
func (p *faultProxy) closeRefused() {
	for l := range p.open {
		if p.refuses(l.source) {
			l.in.Close()
			if l.out != nil {
				l.out.Close()
			}
			delete(p.open, l)
		}
	}
}

// setIsolated refuses (or again accepts) every connection.
func (p *faultProxy) setIsolated(isolated bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isolated = isolated
	p.closeRefused()
}

// setBlocked refuses (or again accepts) connections from source.
func (p *faultProxy) setBlocked(source string, blocked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if blocked {
		p.blocked[source] = true
	} else {
		delete(p.blocked, source)
	}
	p.closeRefused()
}

// String is what the proxy forwards and has refused.
func (p *faultProxy) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s -> %s: %d open, %d refused", p.Addr(), p.target, len(p.open), p.refused)
}

// close stops listening and closes every connection.
func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.closeRefused()
	p.mu.Unlock()
	p.listener.Close()
}
