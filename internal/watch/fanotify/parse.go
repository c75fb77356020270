package fanotify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire layout (include/uapi/linux/fanotify.h), native byte order:
//
//	fanotify_event_metadata: event_len u32, vers u8, reserved u8,
//	    metadata_len u16, mask u64, fd s32, pid s32            (24 bytes)
//	then info records until event_len:
//	fanotify_event_info_header: info_type u8, pad u8, len u16  (4 bytes)
//	fid records: fsid [2]s32, file_handle{handle_bytes u32,
//	    handle_type s32, f_handle[handle_bytes]}, and for the *_DFID_NAME
//	    types a NUL-terminated name.
const (
	metaLen     = 24
	infoHdrLen  = 4
	fsidLen     = 8
	fhHdrLen    = 8
	metaVersion = 3 // FANOTIFY_METADATA_VERSION
	// maxHandle is MAX_HANDLE_SZ: a longer handle is corrupt input.
	maxHandle = 128
)

// Info record types (FAN_EVENT_INFO_TYPE_*).
const (
	infoFID         = 1
	infoDFIDName    = 2
	infoDFID        = 3
	infoOldDFIDName = 10
	infoNewDFIDName = 12
)

var errShort = errors.New("truncated fanotify event")

// event is one decoded fanotify event. Handles and names are copies, so an
// event outlives the read buffer.
type event struct {
	mask uint64
	pid  int32
	// dir is the parent directory's handle and name the entry in it, from
	// a DFID_NAME (or DFID, with name "") record; dirOK says one was seen.
	dir   handle
	name  string
	dirOK bool
	// child is the object's own handle (FID record), if reported.
	child   handle
	childOK bool
}

// handle is a file system object's identity: fsid plus file handle, as a
// string so it can key maps.
type handle struct {
	fsid  [fsidLen]byte
	typ   int32
	bytes string
}

// key returns the map key of h.
func (h handle) key() string {
	return string(h.fsid[:]) + string(binary.NativeEndian.AppendUint32(nil, uint32(h.typ))) + h.bytes
}

// parseEvents decodes a buffer returned by read(2) on a fanotify FID-mode
// descriptor and calls fn for each event. It rejects malformed input with
// an error instead of trusting lengths.
func parseEvents(buf []byte, fn func(event)) error {
	for len(buf) > 0 {
		if len(buf) < metaLen {
			return errShort
		}
		evLen := int(binary.NativeEndian.Uint32(buf[0:]))
		vers := buf[4]
		mLen := int(binary.NativeEndian.Uint16(buf[6:]))
		if vers != metaVersion {
			return fmt.Errorf("parse fanotify event: metadata version %d, want %d", vers, metaVersion)
		}
		if evLen < metaLen || evLen > len(buf) || mLen < metaLen || mLen > evLen {
			return fmt.Errorf("parse fanotify event: bad lengths event=%d metadata=%d buffer=%d", evLen, mLen, len(buf))
		}
		ev := event{
			mask: binary.NativeEndian.Uint64(buf[8:]),
			pid:  int32(binary.NativeEndian.Uint32(buf[20:])),
		}
		if err := parseInfos(buf[mLen:evLen], &ev); err != nil {
			return err
		}
		fn(ev)
		buf = buf[evLen:]
	}
	return nil
}

func parseInfos(b []byte, ev *event) error {
	for len(b) > 0 {
		if len(b) < infoHdrLen {
			return errShort
		}
		typ := b[0]
		n := int(binary.NativeEndian.Uint16(b[2:]))
		if n < infoHdrLen || n > len(b) {
			return fmt.Errorf("parse fanotify info: bad length %d of %d", n, len(b))
		}
		rec := b[infoHdrLen:n]
		b = b[n:]
		switch typ {
		case infoFID, infoDFID, infoDFIDName, infoOldDFIDName, infoNewDFIDName:
		default:
			continue // pidfd, error, range, mnt: not requested, skipped
		}
		h, rest, err := parseFID(rec)
		if err != nil {
			return err
		}
		switch typ {
		case infoFID:
			ev.child, ev.childOK = h, true
		case infoDFID:
			if !ev.dirOK {
				ev.dir, ev.dirOK = h, true
			}
		default:
			// With several name records (FAN_RENAME), the first wins:
			// we do not request FAN_RENAME, so there is one.
			if !ev.dirOK || ev.name == "" {
				name := rest
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				ev.dir, ev.name, ev.dirOK = h, string(name), true
			}
		}
	}
	return nil
}

func parseFID(rec []byte) (handle, []byte, error) {
	var h handle
	if len(rec) < fsidLen+fhHdrLen {
		return h, nil, errShort
	}
	copy(h.fsid[:], rec)
	n := int(binary.NativeEndian.Uint32(rec[fsidLen:]))
	h.typ = int32(binary.NativeEndian.Uint32(rec[fsidLen+4:]))
	rest := rec[fsidLen+fhHdrLen:]
	if n > maxHandle || n > len(rest) {
		return h, nil, fmt.Errorf("parse fanotify file handle: %d bytes of %d", n, len(rest))
	}
	h.bytes = string(rest[:n])
	return h, rest[n:], nil
}
