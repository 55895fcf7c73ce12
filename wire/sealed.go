package wire

// EnvelopeTypeSealed is the OutgoingMessage and Envelope type of a sealed
// sender message (Signal's Envelope.Type UNIDENTIFIED_SENDER): the content
// is a libsignal sealed sender message and the envelope names no sender.
const EnvelopeTypeSealed = 6

// AccessKeySize is the size of an unidentified access key.
const AccessKeySize = 16
