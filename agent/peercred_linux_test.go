package agent

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"sotto/agent/api"
)

// A connection from another uid is closed before anything is read from
// it. The test plays the other user by making the listener serve a uid
// that is not its caller's.
func TestSocketRefusesOtherUID(t *testing.T) {
	home := t.TempDir()
	ln, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	// Our own uid is served.
	c, err := net.Dial("unix", api.Socket(home))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sc := <-accepted; sc == nil {
		t.Fatal("own connection not accepted")
	} else {
		sc.Close()
	}

	ln.(*ownerListener).uid = os.Getuid() + 1 // as if we were another user
	refused := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			refused <- c
		}
		close(refused)
	}()
	other, err := net.Dial("unix", api.Socket(home))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_ = other.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := other.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the other uid's connection: %v, want it closed (EOF)", err)
	}
	ln.Close()
	if sc, ok := <-refused; ok && sc != nil {
		t.Fatal("the other uid's connection was handed to the server")
	}
}
