// A client-go leaderelection peer for leaderlock's real-server tier (issue 14) and the interop
// tests (issue 16). It campaigns on one coordination.k8s.io Lease with client-go's own
// leaderelection package and LeaseLock, and reports every step as one JSON line on stdout:
//
//	{"event":"version","clientGo":"v0.33.13","go":"go1.26.8"}
//	{"event":"new-leader","identity":"..."}   (client-go's OnNewLeader)
//	{"event":"started-leading"}
//	{"event":"stopped-leading"}
//	{"event":"exit"}
//
// It stops on SIGTERM/SIGINT or when stdin closes, and then releases the Lease (ReleaseOnCancel).
// The build script builds it once against each client-go release named there.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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
	cfg := &rest.Config{
		Host:            *server,
		BearerTokenFile: *tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: *caFile},
		Timeout:         5 * time.Second,
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
		ReleaseOnCancel: true,
		Name:            *name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { emit(map[string]any{"event": "started-leading"}) },
			OnStoppedLeading: func() { emit(map[string]any{"event": "stopped-leading"}) },
			OnNewLeader:      func(id string) { emit(map[string]any{"event": "new-leader", "identity": id}) },
		},
	})
	emit(map[string]any{"event": "exit"})
}
