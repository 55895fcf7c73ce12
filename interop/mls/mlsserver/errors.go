package mlsserver

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"sotto/mls"
)

// unimplemented reports an operation sotto/mls does not provide.
func unimplemented(what string) error {
	return status.Errorf(codes.Unimplemented, "mlsserver: %s is not supported by sotto/mls", what)
}

// unknownID reports a state or transaction id the server does not hold.
func unknownID(kind string, id uint32) error {
	return status.Errorf(codes.NotFound, "mlsserver: unknown %s id %d", kind, id)
}

// invalid reports a request the server cannot act on.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "mlsserver: "+format, args...)
}

// protocolError maps an error from sotto/mls to a gRPC status. sotto/mls
// never puts secret material in its errors, so the message is passed on.
func protocolError(op string, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, mls.ErrUnsupportedCipherSuite):
		code = codes.Unimplemented
	case errors.Is(err, mls.ErrDecode), errors.Is(err, mls.ErrInvalidSignature),
		errors.Is(err, mls.ErrDecrypt), errors.Is(err, mls.ErrInvalidMAC),
		errors.Is(err, mls.ErrInvalidKey), errors.Is(err, mls.ErrInvalidTree),
		errors.Is(err, mls.ErrInvalidMessage), errors.Is(err, mls.ErrGenerationTooFar),
		errors.Is(err, mls.ErrGenerationUsed):
		code = codes.InvalidArgument
	case errors.Is(err, mls.ErrRemoved), errors.Is(err, mls.ErrReInit):
		code = codes.FailedPrecondition
	}
	return status.Error(code, fmt.Sprintf("mlsserver: %s: %v", op, err))
}
