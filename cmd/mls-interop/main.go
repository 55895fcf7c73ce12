// Command mls-interop serves Sotto's MLS implementation (sotto/mls) over the
// MLSClient gRPC service of the MLS working group's interop test-runner
// (github.com/mlswg/mls-implementations, interop/test-runner), on loopback
// only:
//
//	mls-interop -port 50051
//	test-runner -client localhost:50051 -config configs/welcome_join.json
//
// It runs until interrupted. All state is in memory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"google.golang.org/grpc"

	"sotto/interop/mls/mlsclient"
	"sotto/interop/mls/mlsserver"
)

// config is the command line.
type config struct {
	port    int
	verbose bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("mls-interop", flag.ContinueOnError)
	fs.IntVar(&c.port, "port", 50051, "TCP port to listen on (127.0.0.1 only; 0 picks a free port)")
	fs.BoolVar(&c.verbose, "v", false, "log every failed call")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("mls-interop: unexpected arguments %q", fs.Args())
	}
	if c.port < 0 || c.port > 65535 {
		return c, fmt.Errorf("mls-interop: port %d out of range", c.port)
	}
	return c, nil
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("mls-interop stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled. It prints "listening on ADDR" to
// stdout once the port is open, so a parent process can find a port it
// left to the system.
func run(ctx context.Context, c config, log *slog.Logger) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)))
	if err != nil {
		return fmt.Errorf("mls-interop: %w", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logFailures(log)))
	mlsclient.RegisterMLSClientServer(srv, mlsserver.New(log))
	fmt.Printf("listening on %s\n", lis.Addr())
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		srv.GracefulStop()
	}()
	err = srv.Serve(lis)
	<-done
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("mls-interop: %w", err)
	}
	return nil
}

// logFailures logs each failed call at debug level (-v). Errors from
// sotto/mls carry no secret material.
func logFailures(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			log.Debug("call failed", "method", info.FullMethod, "err", err)
		}
		return resp, err
	}
}
