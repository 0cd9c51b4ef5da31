// A client-go leaderelection peer for leaderlock's real-server tier (issue 14) and the interop
// tests (issue 16). It campaigns on one coordination.k8s.io Lease with client-go's own
// leaderelection package and LeaseLock, and reports every step as one JSON line on stdout:
//
//	{"event":"version","clientGo":"v0.33.13","go":"go1.26.8"}
//	{"event":"new-leader","identity":"..."}   (client-go's OnNewLeader)
//	{"event":"started-leading"}
//	{"event":"stopped-leading"}
//	{"event":"exit"}
//	{"event":"partitioned"} / {"event":"healed"}   (SIGUSR1 / SIGUSR2, below)
//
// It stops on SIGTERM/SIGINT or when stdin closes, and then releases the Lease (ReleaseOnCancel,
// unless -release-on-cancel=false).
//
// A network partition on demand (issue 16 item 3, "a failed renew"): after SIGUSR1 every new request
// to the API server is held until SIGUSR2 or until its context ends (then it fails, as a request into
// a partition does); requests held at SIGUSR2 then go through. client-go's renew then fails after
// RenewDeadline and its release runs against whatever the server holds once the partition heals.
// The build script builds it once against each client-go release named there.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

var outMu sync.Mutex

func emit(fields map[string]any) {
	fields["t"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(fields)
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Println(string(b))
}

// partition holds new API requests while it is on (SIGUSR1) and lets them through when it heals (SIGUSR2).
type partition struct {
	mu     sync.Mutex
	healed chan struct{} // nil: no partition; open: partitioned; closed: healed
}

func (p *partition) set(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.healed == nil {
		p.healed = make(chan struct{})
		emit(map[string]any{"event": "partitioned"})
	} else if !on && p.healed != nil {
		close(p.healed)
		p.healed = nil
		emit(map[string]any{"event": "healed"})
	}
}

func (p *partition) wait(req *http.Request) error {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	if healed == nil {
		return nil
	}
	select {
	case <-healed:
		return nil
	case <-req.Context().Done():
		return req.Context().Err()
	}
}

type partitionedTransport struct {
	p    *partition
	next http.RoundTripper
}

func (t partitionedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.p.wait(req); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(req)
}

func clientGoVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range info.Deps {
		if d.Path == "k8s.io/client-go" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

func main() {
	server := flag.String("server", "", "API server URL (a loopback address)")
	tokenFile := flag.String("token-file", "", "bearer token file")
	caFile := flag.String("ca-file", "", "CA bundle for the API server")
	namespace := flag.String("namespace", "default", "Lease namespace")
	name := flag.String("name", "", "Lease name")
	identity := flag.String("identity", "", "holder identity")
	leaseDuration := flag.Duration("lease-duration", 15*time.Second, "LeaseDuration")
	renewDeadline := flag.Duration("renew-deadline", 10*time.Second, "RenewDeadline")
	retryPeriod := flag.Duration("retry-period", 2*time.Second, "RetryPeriod")
	releaseOnCancel := flag.Bool("release-on-cancel", true, "ReleaseOnCancel")
	versionOnly := flag.Bool("version", false, "print the version line and exit")
	flag.Parse()

	emit(map[string]any{"event": "version", "clientGo": clientGoVersion(), "go": runtime.Version()})
	if *versionOnly {
		return
	}
	if *server == "" || *name == "" || *identity == "" {
		fmt.Fprintln(os.Stderr, "need -server, -name and -identity")
		os.Exit(2)
	}
	part := &partition{}
	cfg := &rest.Config{
		Host:            *server,
		BearerTokenFile: *tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: *caFile},
		Timeout:         5 * time.Second,
		WrapTransport:   func(rt http.RoundTripper) http.RoundTripper { return partitionedTransport{p: part, next: rt} },
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; cancel() }()
	usr := make(chan os.Signal, 4)
	signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range usr {
			part.set(sig == syscall.SIGUSR1)
		}
	}()
	// The harness holds stdin open; when it dies, stdin closes and the peer stops too.
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: *namespace, Name: *name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *identity},
	}
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   *leaseDuration,
		RenewDeadline:   *renewDeadline,
		RetryPeriod:     *retryPeriod,
		ReleaseOnCancel: *releaseOnCancel,
		Name:            *name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { emit(map[string]any{"event": "started-leading"}) },
			OnStoppedLeading: func() { emit(map[string]any{"event": "stopped-leading"}) },
			OnNewLeader:      func(id string) { emit(map[string]any{"event": "new-leader", "identity": id}) },
		},
	})
	emit(map[string]any{"event": "exit"})
}
