package main

import (
	"strings"
	"testing"
)

func TestValidateWitnessURL(t *testing.T) {
	for _, ok := range []string{"", "http://127.0.0.1:7070", "https://witness.example.org/sotto"} {
		c := validConfig()
		c.Witness = ok
		if err := c.Validate(); err != nil {
			t.Errorf("-witness %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"127.0.0.1:7070", "ws://127.0.0.1:7070", "http://", "http://h/?x=1", "::"} {
		c := validConfig()
		c.Witness = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-witness") {
			t.Errorf("-witness %q accepted: %v", bad, err)
		}
	}
}
