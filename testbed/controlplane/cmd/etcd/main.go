// Command etcd is the upstream etcd server, built from the published
// go.etcd.io/etcd/server/v3 module at the version pinned in go.mod.
// It is the same as go.etcd.io/etcd/server/v3's own main package, but
// lives here so that `go build -o DIR/ ./cmd/etcd` names the binary etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
