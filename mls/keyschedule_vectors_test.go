package mls

import (
	"testing"

	"sotto/mls/internal/vectortest"
)

type keyScheduleVector struct {
	CipherSuite       uint16 `json:"cipher_suite"`
	GroupID           hexb   `json:"group_id"`
	InitialInitSecret hexb   `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexb `json:"tree_hash"`
		CommitSecret            hexb `json:"commit_secret"`
		PSKSecret               hexb `json:"psk_secret"`
		ConfirmedTranscriptHash hexb `json:"confirmed_transcript_hash"`
		GroupContext            hexb `json:"group_context"`
		JoinerSecret            hexb `json:"joiner_secret"`
		WelcomeSecret           hexb `json:"welcome_secret"`
		InitSecret              hexb `json:"init_secret"`
		SenderDataSecret        hexb `json:"sender_data_secret"`
		EncryptionSecret        hexb `json:"encryption_secret"`
		ExporterSecret          hexb `json:"exporter_secret"`
		EpochAuthenticator      hexb `json:"epoch_authenticator"`
		ExternalSecret          hexb `json:"external_secret"`
		ConfirmationKey         hexb `json:"confirmation_key"`
		MembershipKey           hexb `json:"membership_key"`
		ResumptionPSK           hexb `json:"resumption_psk"`
		ExternalPub             hexb `json:"external_pub"`
		Exporter                struct {
			// The label is used as the text of its hex form, as the
			// generator (mlspp) does.
			Label   string `json:"label"`
			Context hexb   `json:"context"`
			Length  int    `json:"length"`
			Secret  hexb   `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

func TestKeyScheduleVectors(t *testing.T) {
	var vs []keyScheduleVector
	vectortest.Load(t, "key-schedule.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			initSecret := []byte(v.InitialInitSecret)
			for i, e := range v.Epochs {
				gc := groupContext{
					version: protocolVersion10, cipherSuite: v.CipherSuite, groupID: v.GroupID,
					epoch: uint64(i), treeHash: e.TreeHash, confirmedTranscriptHash: e.ConfirmedTranscriptHash,
				}
				gcBytes, err := marshal(&gc)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "group_context", gcBytes, e.GroupContext)
				es, err := s.epochFromInit(initSecret, e.CommitSecret, e.PSKSecret, gcBytes)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "joiner_secret", es.joinerSecret, e.JoinerSecret)
				eq(t, "welcome_secret", es.welcomeSecret, e.WelcomeSecret)
				eq(t, "init_secret", es.initSecret, e.InitSecret)
				eq(t, "sender_data_secret", es.senderDataSecret, e.SenderDataSecret)
				eq(t, "encryption_secret", es.encryptionSecret, e.EncryptionSecret)
				eq(t, "exporter_secret", es.exporterSecret, e.ExporterSecret)
				eq(t, "epoch_authenticator", es.epochAuthenticator, e.EpochAuthenticator)
				eq(t, "external_secret", es.externalSecret, e.ExternalSecret)
				eq(t, "confirmation_key", es.confirmationKey, e.ConfirmationKey)
				eq(t, "membership_key", es.membershipKey, e.MembershipKey)
				eq(t, "resumption_psk", es.resumptionPSK, e.ResumptionPSK)
				pub, err := s.externalPub(es.externalSecret)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "external_pub", pub, e.ExternalPub)
				out, err := s.exporter(es.exporterSecret, e.Exporter.Label, e.Exporter.Context, e.Exporter.Length)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "exporter", out, e.Exporter.Secret)
				initSecret = es.initSecret
			}
		})
	}
	c.Summary(t, "key-schedule.json")
}

type pskSecretVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexb `json:"psk_id"`
		PSK      hexb `json:"psk"`
		PSKNonce hexb `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexb `json:"psk_secret"`
}

func TestPSKSecretVectors(t *testing.T) {
	var vs []pskSecretVector
	vectortest.Load(t, "psk_secret.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			var in []pskInput
			for _, p := range v.PSKs {
				in = append(in, pskInput{id: preSharedKeyID{pskType: pskExternal, pskID: p.PSKID, pskNonce: p.PSKNonce}, psk: p.PSK})
			}
			out, err := s.pskSecret(in)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "psk_secret", out, v.PSKSecret)
		})
	}
	c.Summary(t, "psk_secret.json")
}
