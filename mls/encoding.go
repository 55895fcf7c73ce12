package mls

import (
	"fmt"

	"sotto/mls/internal/codec"
)

// encoder and decoder are implemented by every wire structure.
type encoder interface{ encode(w *codec.Writer) }
type decoder interface{ decode(r *codec.Reader) }

func marshal(v encoder) ([]byte, error) {
	var w codec.Writer
	w.Grow(256) // most structures fit; larger ones grow from there
	v.encode(&w)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return b, nil
}

// unmarshal decodes exactly b into v.
func unmarshal(b []byte, v decoder) error {
	r := codec.NewReader(b)
	v.decode(r)
	if err := r.Finish(); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

func invalid(r *codec.Reader, what string) {
	r.SetErr(fmt.Errorf("%w: %s", codec.ErrInvalidValue, what))
}

func encodeU16s(w *codec.Writer, v []uint16) {
	w.Vector(func(w *codec.Writer) {
		for _, x := range v {
			w.U16(x)
		}
	})
}

func decodeU16s(r *codec.Reader) []uint16 {
	var v []uint16
	r.Vector(func(r *codec.Reader) {
		if r.Len()%2 != 0 {
			invalid(r, "odd uint16 vector")
			return
		}
		v = make([]uint16, 0, r.Len()/2)
		for !r.Empty() {
			v = append(v, r.U16())
		}
	})
	return v
}

func encodeU32s(w *codec.Writer, v []uint32) {
	w.Vector(func(w *codec.Writer) {
		for _, x := range v {
			w.U32(x)
		}
	})
}

func decodeU32s(r *codec.Reader) []uint32 {
	var v []uint32
	r.Vector(func(r *codec.Reader) {
		if r.Len()%4 != 0 {
			invalid(r, "bad uint32 vector")
			return
		}
		v = make([]uint32, 0, r.Len()/4)
		for !r.Empty() {
			v = append(v, r.U32())
		}
	})
	return v
}

// Extension types of RFC 9420 §17.3.
const (
	extApplicationID   uint16 = 1
	extRatchetTree     uint16 = 2
	extRequiredCaps    uint16 = 3
	extExternalPub     uint16 = 4
	extExternalSenders uint16 = 5
)

// extension is Extension of RFC 9420 §7.2; unknown types are kept opaque.
type extension struct {
	typ  uint16
	data []byte
}

func encodeExtensions(w *codec.Writer, exts []extension) {
	w.Vector(func(w *codec.Writer) {
		for _, e := range exts {
			w.U16(e.typ)
			w.Opaque(e.data)
		}
	})
}

func decodeExtensions(r *codec.Reader) []extension {
	var exts []extension
	r.Elements(func(r *codec.Reader) {
		e := extension{typ: r.U16(), data: r.Opaque()}
		for _, x := range exts {
			if x.typ == e.typ {
				invalid(r, "duplicate extension")
				return
			}
		}
		exts = append(exts, e)
	})
	return exts
}

func findExtension(exts []extension, typ uint16) ([]byte, bool) {
	for _, e := range exts {
		if e.typ == typ {
			return e.data, true
		}
	}
	return nil, false
}

// Credential types of RFC 9420 §17.5.
const (
	credentialBasic uint16 = 1
	credentialX509  uint16 = 2
)

// credential is Credential of RFC 9420 §5.3. Only basic and x509 can be
// decoded: the encoding of other types is not self-delimiting.
type credential struct {
	typ          uint16
	identity     []byte   // basic
	certificates [][]byte // x509
}

func (c *credential) encode(w *codec.Writer) {
	w.U16(c.typ)
	switch c.typ {
	case credentialBasic:
		w.Opaque(c.identity)
	case credentialX509:
		w.Vector(func(w *codec.Writer) {
			for _, cert := range c.certificates {
				w.Opaque(cert)
			}
		})
	default:
		w.SetErr(fmt.Errorf("%w: credential type %d", codec.ErrInvalidValue, c.typ))
	}
}

func (c *credential) decode(r *codec.Reader) {
	c.typ = r.U16()
	switch c.typ {
	case credentialBasic:
		c.identity = r.Opaque()
	case credentialX509:
		r.Elements(func(r *codec.Reader) { c.certificates = append(c.certificates, r.Opaque()) })
	default:
		if r.Err() == nil {
			r.SetErr(fmt.Errorf("%w: unknown credential type %d", codec.ErrInvalidValue, c.typ))
		}
	}
}

// capabilities is Capabilities of RFC 9420 §7.2.
type capabilities struct {
	versions, cipherSuites, extensions, proposals, credentials []uint16
}

func (c *capabilities) encode(w *codec.Writer) {
	encodeU16s(w, c.versions)
	encodeU16s(w, c.cipherSuites)
	encodeU16s(w, c.extensions)
	encodeU16s(w, c.proposals)
	encodeU16s(w, c.credentials)
}

func (c *capabilities) decode(r *codec.Reader) {
	c.versions = decodeU16s(r)
	c.cipherSuites = decodeU16s(r)
	c.extensions = decodeU16s(r)
	c.proposals = decodeU16s(r)
	c.credentials = decodeU16s(r)
}

// Leaf node sources of RFC 9420 §7.2.
const (
	sourceKeyPackage uint8 = 1
	sourceUpdate     uint8 = 2
	sourceCommit     uint8 = 3
)

// leafNode is LeafNode of RFC 9420 §7.2.
type leafNode struct {
	encryptionKey []byte
	signatureKey  []byte
	credential    credential
	capabilities  capabilities
	source        uint8
	notBefore     uint64 // key_package
	notAfter      uint64 // key_package
	parentHash    []byte // commit
	extensions    []extension
	signature     []byte
}

func (l *leafNode) encodeTBSFields(w *codec.Writer) {
	w.Opaque(l.encryptionKey)
	w.Opaque(l.signatureKey)
	l.credential.encode(w)
	l.capabilities.encode(w)
	w.U8(l.source)
	switch l.source {
	case sourceKeyPackage:
		w.U64(l.notBefore)
		w.U64(l.notAfter)
	case sourceUpdate:
	case sourceCommit:
		w.Opaque(l.parentHash)
	default:
		w.SetErr(fmt.Errorf("%w: leaf node source %d", codec.ErrInvalidValue, l.source))
	}
	encodeExtensions(w, l.extensions)
}

func (l *leafNode) encode(w *codec.Writer) {
	l.encodeTBSFields(w)
	w.Opaque(l.signature)
}

func (l *leafNode) decode(r *codec.Reader) {
	l.encryptionKey = r.Opaque()
	l.signatureKey = r.Opaque()
	l.credential.decode(r)
	l.capabilities.decode(r)
	l.source = r.U8()
	switch l.source {
	case sourceKeyPackage:
		l.notBefore = r.U64()
		l.notAfter = r.U64()
	case sourceUpdate:
	case sourceCommit:
		l.parentHash = r.Opaque()
	default:
		invalid(r, "leaf node source")
	}
	l.extensions = decodeExtensions(r)
	l.signature = r.Opaque()
}

// tbs returns LeafNodeTBS; groupID and leafIndex are used for the update
// and commit sources.
func (l *leafNode) tbs(groupID []byte, leafIndex uint32) ([]byte, error) {
	var w codec.Writer
	l.encodeTBSFields(&w)
	if l.source == sourceUpdate || l.source == sourceCommit {
		w.Opaque(groupID)
		w.U32(leafIndex)
	}
	return w.Bytes()
}

func (l *leafNode) verify(s *suite, groupID []byte, leafIndex uint32) error {
	tbs, err := l.tbs(groupID, leafIndex)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return s.verifyWithLabel(l.signatureKey, "LeafNodeTBS", tbs, l.signature)
}

func (l *leafNode) sign(s *suite, priv, groupID []byte, leafIndex uint32) error {
	tbs, err := l.tbs(groupID, leafIndex)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	sig, err := s.signWithLabel(priv, "LeafNodeTBS", tbs)
	if err != nil {
		return err
	}
	l.signature = sig
	return nil
}

// keyPackage is KeyPackage of RFC 9420 §10.
type keyPackage struct {
	version     uint16
	cipherSuite uint16
	initKey     []byte
	leafNode    leafNode
	extensions  []extension
	signature   []byte
}

func (k *keyPackage) encodeTBS(w *codec.Writer) {
	w.U16(k.version)
	w.U16(k.cipherSuite)
	w.Opaque(k.initKey)
	k.leafNode.encode(w)
	encodeExtensions(w, k.extensions)
}

func (k *keyPackage) encode(w *codec.Writer) {
	k.encodeTBS(w)
	w.Opaque(k.signature)
}

func (k *keyPackage) decode(r *codec.Reader) {
	k.version = r.U16()
	k.cipherSuite = r.U16()
	k.initKey = r.Opaque()
	k.leafNode.decode(r)
	k.extensions = decodeExtensions(r)
	k.signature = r.Opaque()
}

func (k *keyPackage) verify(s *suite) error {
	var w codec.Writer
	k.encodeTBS(&w)
	tbs, err := w.Bytes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return s.verifyWithLabel(k.leafNode.signatureKey, "KeyPackageTBS", tbs, k.signature)
}

// ref returns the KeyPackageRef (RFC 9420 §5.2).
func (k *keyPackage) ref(s *suite) ([]byte, error) {
	b, err := marshal(k)
	if err != nil {
		return nil, err
	}
	return s.refHash("MLS 1.0 KeyPackage Reference", b), nil
}

// groupContext is GroupContext of RFC 9420 §8.1.
type groupContext struct {
	version                 uint16
	cipherSuite             uint16
	groupID                 []byte
	epoch                   uint64
	treeHash                []byte
	confirmedTranscriptHash []byte
	extensions              []extension
}

func (g *groupContext) encode(w *codec.Writer) {
	w.U16(g.version)
	w.U16(g.cipherSuite)
	w.Opaque(g.groupID)
	w.U64(g.epoch)
	w.Opaque(g.treeHash)
	w.Opaque(g.confirmedTranscriptHash)
	encodeExtensions(w, g.extensions)
}

func (g *groupContext) decode(r *codec.Reader) {
	g.version = r.U16()
	g.cipherSuite = r.U16()
	g.groupID = r.Opaque()
	g.epoch = r.U64()
	g.treeHash = r.Opaque()
	g.confirmedTranscriptHash = r.Opaque()
	g.extensions = decodeExtensions(r)
}

// protocolVersion10 is mls10.
const protocolVersion10 uint16 = 1
