package mls

import (
	"fmt"

	"sotto/mls/internal/codec"
)

// Proposal types of RFC 9420 §17.4.
const (
	proposalAdd                    uint16 = 1
	proposalUpdate                 uint16 = 2
	proposalRemove                 uint16 = 3
	proposalPSK                    uint16 = 4
	proposalReInit                 uint16 = 5
	proposalExternalInit           uint16 = 6
	proposalGroupContextExtensions uint16 = 7
)

// PSK types and resumption usages of RFC 9420 §8.4.
const (
	pskExternal   uint8 = 1
	pskResumption uint8 = 2

	resumptionApplication uint8 = 1
	resumptionReInit      uint8 = 2
	resumptionBranch      uint8 = 3
)

// preSharedKeyID is PreSharedKeyID of RFC 9420 §8.4.
type preSharedKeyID struct {
	pskType    uint8
	pskID      []byte // external
	usage      uint8  // resumption
	pskGroupID []byte // resumption
	pskEpoch   uint64 // resumption
	pskNonce   []byte
}

func (p *preSharedKeyID) encode(w *codec.Writer) {
	w.U8(p.pskType)
	switch p.pskType {
	case pskExternal:
		w.Opaque(p.pskID)
	case pskResumption:
		w.U8(p.usage)
		w.Opaque(p.pskGroupID)
		w.U64(p.pskEpoch)
	default:
		w.SetErr(fmt.Errorf("%w: psk type %d", codec.ErrInvalidValue, p.pskType))
	}
	w.Opaque(p.pskNonce)
}

func (p *preSharedKeyID) decode(r *codec.Reader) {
	p.pskType = r.U8()
	switch p.pskType {
	case pskExternal:
		p.pskID = r.Opaque()
	case pskResumption:
		p.usage = r.U8()
		p.pskGroupID = r.Opaque()
		p.pskEpoch = r.U64()
	default:
		invalid(r, "psk type")
	}
	p.pskNonce = r.Opaque()
}

// proposal is Proposal of RFC 9420 §12.1, one field set per type.
type proposal struct {
	typ        uint16
	keyPackage keyPackage     // add
	leafNode   leafNode       // update
	removed    uint32         // remove
	psk        preSharedKeyID // psk
	reInit     reInit         // reinit
	kemOutput  []byte         // external_init
	extensions []extension    // group_context_extensions
}

// reInit is ReInit of RFC 9420 §12.1.5.
type reInit struct {
	groupID     []byte
	version     uint16
	cipherSuite uint16
	extensions  []extension
}

// encodeBody writes the proposal without its type.
func (p *proposal) encodeBody(w *codec.Writer) {
	switch p.typ {
	case proposalAdd:
		p.keyPackage.encode(w)
	case proposalUpdate:
		p.leafNode.encode(w)
	case proposalRemove:
		w.U32(p.removed)
	case proposalPSK:
		p.psk.encode(w)
	case proposalReInit:
		w.Opaque(p.reInit.groupID)
		w.U16(p.reInit.version)
		w.U16(p.reInit.cipherSuite)
		encodeExtensions(w, p.reInit.extensions)
	case proposalExternalInit:
		w.Opaque(p.kemOutput)
	case proposalGroupContextExtensions:
		encodeExtensions(w, p.extensions)
	default:
		w.SetErr(fmt.Errorf("%w: proposal type %d", codec.ErrInvalidValue, p.typ))
	}
}

// decodeBody reads a proposal of type p.typ without its type.
func (p *proposal) decodeBody(r *codec.Reader) {
	switch p.typ {
	case proposalAdd:
		p.keyPackage.decode(r)
	case proposalUpdate:
		p.leafNode.decode(r)
	case proposalRemove:
		p.removed = r.U32()
	case proposalPSK:
		p.psk.decode(r)
	case proposalReInit:
		p.reInit.groupID = r.Opaque()
		p.reInit.version = r.U16()
		p.reInit.cipherSuite = r.U16()
		p.reInit.extensions = decodeExtensions(r)
	case proposalExternalInit:
		p.kemOutput = r.Opaque()
	case proposalGroupContextExtensions:
		p.extensions = decodeExtensions(r)
	default:
		if r.Err() == nil {
			r.SetErr(fmt.Errorf("%w: unknown proposal type %d", codec.ErrInvalidValue, p.typ))
		}
	}
}

func (p *proposal) encode(w *codec.Writer) {
	w.U16(p.typ)
	p.encodeBody(w)
}

func (p *proposal) decode(r *codec.Reader) {
	p.typ = r.U16()
	p.decodeBody(r)
}

// proposalOrRef is ProposalOrRef of RFC 9420 §12.4.
type proposalOrRef struct {
	isRef    bool
	proposal proposal
	ref      []byte
}

func (p *proposalOrRef) encode(w *codec.Writer) {
	if p.isRef {
		w.U8(2)
		w.Opaque(p.ref)
		return
	}
	w.U8(1)
	p.proposal.encode(w)
}

func (p *proposalOrRef) decode(r *codec.Reader) {
	switch r.U8() {
	case 1:
		p.proposal.decode(r)
	case 2:
		p.isRef = true
		p.ref = r.Opaque()
	default:
		invalid(r, "proposal or ref type")
	}
}

// hpkeCiphertext is HPKECiphertext of RFC 9420 §7.6.
type hpkeCiphertext struct {
	kemOutput  []byte
	ciphertext []byte
}

func (c *hpkeCiphertext) encode(w *codec.Writer) {
	w.Opaque(c.kemOutput)
	w.Opaque(c.ciphertext)
}

func (c *hpkeCiphertext) decode(r *codec.Reader) {
	c.kemOutput = r.Opaque()
	c.ciphertext = r.Opaque()
}

// updatePathNode is UpdatePathNode of RFC 9420 §7.6.
type updatePathNode struct {
	encryptionKey        []byte
	encryptedPathSecrets []hpkeCiphertext
}

// updatePath is UpdatePath of RFC 9420 §7.6.
type updatePath struct {
	leafNode leafNode
	nodes    []updatePathNode
}

func (u *updatePath) encode(w *codec.Writer) {
	u.leafNode.encode(w)
	w.Vector(func(w *codec.Writer) {
		for i := range u.nodes {
			n := &u.nodes[i]
			w.Opaque(n.encryptionKey)
			w.Vector(func(w *codec.Writer) {
				for j := range n.encryptedPathSecrets {
					n.encryptedPathSecrets[j].encode(w)
				}
			})
		}
	})
}

func (u *updatePath) decode(r *codec.Reader) {
	u.leafNode.decode(r)
	r.Elements(func(r *codec.Reader) {
		var n updatePathNode
		n.encryptionKey = r.Opaque()
		r.Elements(func(r *codec.Reader) {
			var c hpkeCiphertext
			c.decode(r)
			n.encryptedPathSecrets = append(n.encryptedPathSecrets, c)
		})
		u.nodes = append(u.nodes, n)
	})
}

// commit is Commit of RFC 9420 §12.4.
type commit struct {
	proposals []proposalOrRef
	path      *updatePath
}

func (c *commit) encode(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for i := range c.proposals {
			c.proposals[i].encode(w)
		}
	})
	w.Optional(c.path != nil, func(w *codec.Writer) { c.path.encode(w) })
}

func (c *commit) decode(r *codec.Reader) {
	r.Elements(func(r *codec.Reader) {
		var p proposalOrRef
		p.decode(r)
		c.proposals = append(c.proposals, p)
	})
	r.Optional(func(r *codec.Reader) {
		c.path = new(updatePath)
		c.path.decode(r)
	})
}

// encoders for the bare proposal bodies, as messages.json lists them.
type proposalBody struct{ p *proposal }

func (b proposalBody) encode(w *codec.Writer) { b.p.encodeBody(w) }
func (b proposalBody) decode(r *codec.Reader) { b.p.decodeBody(r) }
