package mls

import (
	"sotto/mls/internal/codec"
)

// groupInfo is GroupInfo of RFC 9420 §12.4.3.
type groupInfo struct {
	groupContext    groupContext
	extensions      []extension
	confirmationTag []byte
	signer          uint32
	signature       []byte
}

func (g *groupInfo) encodeTBS(w *codec.Writer) {
	g.groupContext.encode(w)
	encodeExtensions(w, g.extensions)
	w.Opaque(g.confirmationTag)
	w.U32(g.signer)
}

func (g *groupInfo) encode(w *codec.Writer) {
	g.encodeTBS(w)
	w.Opaque(g.signature)
}

func (g *groupInfo) decode(r *codec.Reader) {
	g.groupContext.decode(r)
	g.extensions = decodeExtensions(r)
	g.confirmationTag = r.Opaque()
	g.signer = r.U32()
	g.signature = r.Opaque()
}

func (g *groupInfo) tbs() ([]byte, error) {
	var w codec.Writer
	g.encodeTBS(&w)
	return w.Bytes()
}

// groupSecrets is GroupSecrets of RFC 9420 §12.4.3.
type groupSecrets struct {
	joinerSecret []byte
	pathSecret   []byte // nil when absent
	hasPath      bool
	psks         []preSharedKeyID
}

func (g *groupSecrets) encode(w *codec.Writer) {
	w.Opaque(g.joinerSecret)
	w.Optional(g.hasPath, func(w *codec.Writer) { w.Opaque(g.pathSecret) })
	w.Vector(func(w *codec.Writer) {
		for i := range g.psks {
			g.psks[i].encode(w)
		}
	})
}

func (g *groupSecrets) decode(r *codec.Reader) {
	g.joinerSecret = r.Opaque()
	g.hasPath = r.Optional(func(r *codec.Reader) { g.pathSecret = r.Opaque() })
	r.Elements(func(r *codec.Reader) {
		var p preSharedKeyID
		p.decode(r)
		g.psks = append(g.psks, p)
	})
}

// encryptedGroupSecrets is EncryptedGroupSecrets of RFC 9420 §12.4.3.
type encryptedGroupSecrets struct {
	newMember []byte
	secrets   hpkeCiphertext
}

// welcome is Welcome of RFC 9420 §12.4.3.
type welcome struct {
	cipherSuite        uint16
	secrets            []encryptedGroupSecrets
	encryptedGroupInfo []byte
}

func (m *welcome) encode(w *codec.Writer) {
	w.U16(m.cipherSuite)
	w.Vector(func(w *codec.Writer) {
		for i := range m.secrets {
			w.Opaque(m.secrets[i].newMember)
			m.secrets[i].secrets.encode(w)
		}
	})
	w.Opaque(m.encryptedGroupInfo)
}

func (m *welcome) decode(r *codec.Reader) {
	m.cipherSuite = r.U16()
	r.Elements(func(r *codec.Reader) {
		var e encryptedGroupSecrets
		e.newMember = r.Opaque()
		e.secrets.decode(r)
		m.secrets = append(m.secrets, e)
	})
	m.encryptedGroupInfo = r.Opaque()
}
