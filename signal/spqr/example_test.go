package spqr_test

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"sotto/signal/spqr"
)

// Two sides start from the 32-byte key PQXDH gave them, then every message
// carries SPQR data and yields the same message key on both sides.
func Example() {
	authKey := bytes.Repeat([]byte{7}, 32) // from PQXDH in a real session
	alice, _ := spqr.InitialState(spqr.Params{Direction: spqr.AToB, Version: spqr.Version1, MinVersion: spqr.Version1, AuthKey: authKey})
	bob, _ := spqr.InitialState(spqr.Params{Direction: spqr.BToA, Version: spqr.Version1, MinVersion: spqr.Version1, AuthKey: authKey})

	alice, msg, sendKey, err := spqr.Send(alice, rand.Reader)
	if err != nil {
		panic(err)
	}
	bob, recvKey, err := spqr.Recv(bob, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(msg), len(sendKey), bytes.Equal(sendKey, recvKey))

	// A peer whose first message carries no SPQR data is refused (minimum
	// version 1), and so is one that stops sending it later.
	carol, _ := spqr.InitialState(spqr.Params{Direction: spqr.BToA, Version: spqr.Version1, MinVersion: spqr.Version1, AuthKey: authKey})
	_, _, err = spqr.Recv(carol, nil)
	fmt.Println(err)
	_, _, err = spqr.Recv(bob, nil)
	fmt.Println(err)
	// Output:
	// 37 32 true
	// spqr: peer does not speak the required version
	// spqr: version mismatch after negotiation
}
