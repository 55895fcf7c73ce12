package mls

import (
	"fmt"
)

// WireFormat is the kind of an MLSMessage (RFC 9420 §6).
type WireFormat uint16

// Wire formats.
const (
	WirePublicMessage  WireFormat = WireFormat(wireFormatPublicMessage)
	WirePrivateMessage WireFormat = WireFormat(wireFormatPrivateMessage)
	WireWelcome        WireFormat = WireFormat(wireFormatWelcome)
	WireGroupInfo      WireFormat = WireFormat(wireFormatGroupInfo)
	WireKeyPackage     WireFormat = WireFormat(wireFormatKeyPackage)
)

// MessageInfo is what an MLSMessage shows without any key: its wire
// format and, for group messages, the group, epoch and content kind.
type MessageInfo struct {
	WireFormat WireFormat
	GroupID    []byte
	Epoch      uint64
	Content    ContentKind // 0 for Welcome, GroupInfo and KeyPackage
	// AuthenticatedData is a group message's authenticated_data, as sent
	// (authenticated only once the message is processed).
	AuthenticatedData []byte
}

// Peek decodes an MLSMessage's public header, e.g. to route it to the
// right group and epoch before calling Handle.
func Peek(msg []byte) (*MessageInfo, error) {
	var m mlsMessage
	if err := unmarshal(msg, &m); err != nil {
		return nil, err
	}
	info := &MessageInfo{WireFormat: WireFormat(m.wireFormat)}
	var ct uint8
	switch {
	case m.public != nil:
		info.GroupID, info.Epoch, ct = m.public.content.groupID, m.public.content.epoch, m.public.content.contentType
		info.AuthenticatedData = append([]byte(nil), m.public.content.authenticatedData...)
	case m.private != nil:
		info.GroupID, info.Epoch, ct = m.private.groupID, m.private.epoch, m.private.contentType
		info.AuthenticatedData = append([]byte(nil), m.private.authenticatedData...)
	case m.groupInfo != nil:
		info.GroupID, info.Epoch = m.groupInfo.groupContext.groupID, m.groupInfo.groupContext.epoch
	}
	switch ct {
	case 0:
	case contentApplication:
		info.Content = ApplicationContent
	case contentProposal:
		info.Content = ProposalContent
	case contentCommit:
		info.Content = CommitContent
	default:
		return nil, fmt.Errorf("%w: content type", ErrDecode)
	}
	info.GroupID = append([]byte(nil), info.GroupID...)
	return info, nil
}
