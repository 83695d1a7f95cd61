package wire

import "strconv"

// CloseCode is a WebSocket close code (RFC 6455, section 7.4). The range is 1000-4999:
// 1000-2999 are the protocol's own (the RFC and its extensions), 3000-3999 are
// registered with IANA for libraries and frameworks, and 4000-4999 are for private
// use, the application's. Herald sends a protocol code where the RFC has one for the
// reason, and otherwise a code of its own from 4000 up whose last three digits echo the
// HTTP status of the same refusal (4008 as 408, 4029 as 429). Codes the RFC reserves
// for reporting (1004, 1005, 1006, 1015) are never sent.
type CloseCode uint16

// The close codes Herald sends: the whole table. Each says what the client should do.
const (
	CloseGoingAway      CloseCode = 1001 // the server is shutting down; reconnect with since
	CloseTooManyFrames  CloseCode = 1008 // policy violation: client frames over the frame rate; reconnect at will
	CloseTooBig         CloseCode = 1009 // a client frame over the read limit (sent by the WebSocket library)
	CloseInternal       CloseCode = 1011 // an unexpected server error; reconnect with since
	CloseTryAgain       CloseCode = 1013 // storage unavailable; reconnect with since, after a pause
	CloseSlowConsumer   CloseCode = 4008 // the outbound queue overflowed, or a catching-up socket made no room in time; reconnect with since
	CloseTooManySockets CloseCode = 4029 // the user has as many sockets as allowed already
)

// The bounds of the close codes (RFC 6455, 7.4.2).
const (
	CloseCodeMin    CloseCode = 1000 // the lowest code a close frame may carry
	CloseCodeApp    CloseCode = 4000 // the first of the private-use codes, the application's
	CloseCodeMax    CloseCode = 4999 // the highest code a close frame may carry
	closeCodeLibMin CloseCode = 3000 // the first of the codes registered for libraries
)

// Valid reports whether c may be sent in a close frame: within 1000-4999, and not one
// the RFC reserves for reporting a close that had no frame (1004, 1005, 1006, 1015).
func (c CloseCode) Valid() bool {
	switch c {
	case 1004, 1005, 1006, 1015:
		return false
	}
	return c >= CloseCodeMin && c <= CloseCodeMax
}

// Application reports whether c is one of the private-use codes (4000-4999).
func (c CloseCode) Application() bool { return c >= CloseCodeApp && c <= CloseCodeMax }

// Protocol reports whether c is one of the protocol's own codes (1000-2999).
func (c CloseCode) Protocol() bool { return c >= CloseCodeMin && c < closeCodeLibMin }

func (c CloseCode) String() string {
	switch c {
	case CloseGoingAway:
		return "going away"
	case CloseTooManyFrames:
		return "too many frames"
	case CloseTooBig:
		return "frame too big"
	case CloseInternal:
		return "internal error"
	case CloseTryAgain:
		return "try again later"
	case CloseSlowConsumer:
		return "slow consumer"
	case CloseTooManySockets:
		return "too many sockets"
	}
	return "close code " + strconv.Itoa(int(c))
}
