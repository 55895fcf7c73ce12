package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux platform Go supports).
const clockTick = 10 * time.Millisecond

// processCPU returns the user plus system CPU time a process has used,
// read from /proc/PID/stat (pid 0: this process).
func processCPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU extracts utime+stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) is parenthesized and
// may contain spaces, so fields are counted after its closing ')'.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("sotto-load: malformed stat line")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("sotto-load: malformed stat line")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("sotto-load: malformed stat line")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// processSyscalls returns the read and write system calls a process has
// made and the bytes it caused to be written to storage (syscr, syscw and
// write_bytes of /proc/PID/io; pid 0: this process).
func processSyscalls(pid int) (reads, writes, written uint64, err error) {
	path := "/proc/self/io"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/io", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	return parseIOSyscalls(string(b))
}

func parseIOSyscalls(s string) (reads, writes, written uint64, err error) {
	found := 0
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch {
		case k == "syscr" && perr == nil:
			reads, found = n, found+1
		case k == "syscw" && perr == nil:
			writes, found = n, found+1
		case k == "write_bytes" && perr == nil:
			written, found = n, found+1
		}
	}
	if found != 3 {
		return 0, 0, 0, fmt.Errorf("sotto-load: malformed io file")
	}
	return reads, writes, written, nil
}

// cpuSample is the CPU time of the relay (when its pid is known) and of
// this load generator at one instant.
type cpuSample struct {
	relay, self     time.Duration
	relayOK, selfOK bool

	// read and write system calls (ioOK when both processes' are known)
	relayR, relayW, selfR, selfW uint64
	relayDisk                    uint64 // bytes the relay caused to be written to storage
	ioOK                         bool
}

func sampleCPU(relayPID int) cpuSample {
	var c cpuSample
	var err error
	c.self, err = processCPU(0)
	c.selfOK = err == nil
	if relayPID != 0 {
		c.relay, err = processCPU(relayPID)
		c.relayOK = err == nil && c.selfOK
		var err1, err2 error
		c.relayR, c.relayW, c.relayDisk, err1 = processSyscalls(relayPID)
		c.selfR, c.selfW, _, err2 = processSyscalls(0)
		c.ioOK = err1 == nil && err2 == nil
	}
	return c
}
