package persistence

import (
	"github.com/google/uuid"

	"github.com/heraldhq/herald"
)

// ParseID parses a notification id. Herald's ids are UUIDs in canonical form (lowercase
// hex grouped 8-4-4-4-12), and only that form names a notification: any other spelling
// of the same UUID is not found, so one notification never has two names.
func ParseID(id string) ([16]byte, bool) {
	if len(id) != 36 {
		return [16]byte{}, false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return [16]byte{}, false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return [16]byte{}, false
			}
		}
	}
	u, err := uuid.Parse(id)
	return u, err == nil
}

// NotFound is the not_found error of a mark-read (or a read) of id: the store's answer
// for an id no notification of the user has, and the inbox's for one that cannot be
// (ParseID refuses it). Field is "id".
func NotFound(id string) *herald.Error {
	return &herald.Error{Code: herald.CodeNotFound, Message: "no notification " + id + " for this user", Field: "id"}
}
