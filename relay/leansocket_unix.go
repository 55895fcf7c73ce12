//go:build unix

package relay

import "syscall"

const canRawWrite = true

// rawWrite is one write(2) on a non-blocking socket.
func rawWrite(fd uintptr, b []byte) (int, error) {
	n, err := syscall.Write(int(fd), b)
	if n < 0 {
		n = 0
	}
	return n, err
}

// rawRead is one read(2) on a non-blocking socket.
func rawRead(fd uintptr, b []byte) (int, error) {
	n, err := syscall.Read(int(fd), b)
	if n < 0 {
		n = 0
	}
	return n, err
}
