package testcluster

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Pool starts clusters lazily, once per name, for the tests of a package
// to share; TestMain stops them with StopAll after the tests ran.
type Pool struct {
	mu       sync.Mutex
	entries  map[string]*entry
	root     string
	keepLogs bool
}

type entry struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// NewPool is an empty pool.
func NewPool() *Pool { return &Pool{entries: map[string]*entry{}} }

// Get returns the cluster called name, started with what setup returns
// (setup gets the cluster's directory) on first use. A cluster that cannot
// start fails every test asking for it.
func (p *Pool) Get(t testing.TB, name string, setup func(dir string) (Options, error)) *Cluster {
	t.Helper()
	p.mu.Lock()
	if p.root == "" {
		root, err := os.MkdirTemp("", "dynamo-go-test-")
		if err != nil {
			p.mu.Unlock()
			t.Fatalf("temporary directory: %v", err)
		}
		p.root = root
	}
	e, ok := p.entries[name]
	if !ok {
		e = &entry{}
		p.entries[name] = e
	}
	root := p.root
	p.mu.Unlock()
	e.once.Do(func() {
		dir := filepath.Join(root, name)
		if e.err = os.MkdirAll(dir, 0o755); e.err != nil {
			return
		}
		opts, err := setup(dir)
		if err != nil {
			e.err = err
			return
		}
		e.cluster, e.err = Start(dir, opts)
	})
	if e.err != nil {
		t.Fatalf("cluster %s: %v", name, e.err)
	}
	return e.cluster
}

// KeepLogs keeps the clusters' directories (logs and data) after StopAll,
// e.g. because a test failed.
func (p *Pool) KeepLogs() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keepLogs = true
}

// StopAll stops every cluster started and removes their directories
// unless KeepLogs was called; it returns the directory kept ("" if none).
func (p *Pool) StopAll() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var wg sync.WaitGroup
	started := false
	for _, e := range p.entries {
		if e.cluster != nil {
			started = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.cluster.Stop()
			}()
		}
	}
	wg.Wait()
	if p.root == "" {
		return ""
	}
	if p.keepLogs && started {
		return p.root
	}
	os.RemoveAll(p.root)
	return ""
}
