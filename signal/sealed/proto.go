package sealed

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded protobuf field: bytes for length-delimited fields, num
// for varint and fixed64 fields.
type field struct {
	set   bool
	bytes []byte
	num   uint64
}

// decodeFields parses a proto2 message as prost does: the fields listed in
// want (number -> wire type) are kept, the last occurrence winning; unknown
// fields are skipped; a known field with another wire type or any malformed
// encoding fails.
func decodeFields(b []byte, want map[protowire.Number]protowire.Type) (map[protowire.Number]*field, bool) {
	out := make(map[protowire.Number]*field, len(want))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		wt, known := want[num]
		if !known {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return nil, false
			}
			b = b[m:]
			continue
		}
		if wt != typ {
			return nil, false
		}
		f := &field{set: true}
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, false
			}
			f.bytes = v
			b = b[m:]
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return nil, false
			}
			f.num = v
			b = b[m:]
		case protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return nil, false
			}
			f.num = v
			b = b[m:]
		default:
			return nil, false
		}
		out[num] = f
	}
	return out, true
}

// oneofLast returns which of the oneof members a, b was set last in the
// encoding (prost keeps the last one); 0 when neither.
func oneofLast(b []byte, a, c protowire.Number) protowire.Number {
	var last protowire.Number
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return last
		}
		b = b[n:]
		if num == a || num == c {
			last = num
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return last
		}
		b = b[m:]
	}
	return last
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
