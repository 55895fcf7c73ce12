package session

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// pbField is one decoded protobuf field.
type pbField struct {
	num    protowire.Number
	typ    protowire.Type
	varint uint64
	bytes  []byte
}

// pbWalk calls fn for each field of b, failing on malformed input.
func pbWalk(b []byte, fn func(f pbField) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		f := pbField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("bad varint: %w", protowire.ParseError(m))
			}
			f.varint, n = v, m
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("bad bytes: %w", protowire.ParseError(m))
			}
			f.bytes, n = v, m
		case protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return fmt.Errorf("bad fixed64: %w", protowire.ParseError(m))
			}
			f.varint, n = v, m
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("bad field: %w", protowire.ParseError(m))
			}
			n = m
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// u32 checks that a varint fits 32 bits.
func u32(f pbField) (uint32, error) {
	if f.typ != protowire.VarintType || f.varint > 0xffffffff {
		return 0, fmt.Errorf("field %d: not a uint32", f.num)
	}
	return uint32(f.varint), nil
}

// wantBytes checks the wire type of a bytes field.
func wantBytes(f pbField) ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, fmt.Errorf("field %d: not bytes", f.num)
	}
	return f.bytes, nil
}
